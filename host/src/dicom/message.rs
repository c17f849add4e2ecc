//! DIMSE messages from P-DATA fragments: a command set (one or more
//! command fragments, the last one flagged) and, when the command says so,
//! a data set (data fragments, the last one flagged), all on one
//! presentation context. Sizes are capped, so a peer cannot make the host
//! buffer without bound; anything out of order is an error. [`send`] and
//! [`receive`] put messages on an association and take them off, for the
//! SCP and the C-STORE client alike.

use std::collections::VecDeque;

use dicom_ul::Pdu;
use dicom_ul::association::AsyncAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::chain;
use super::command::{self, Command};

/// Largest command set accepted.
const MAX_COMMAND: usize = 64 * 1024;

/// A complete DIMSE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub context_id: u8,
    pub command: Command,
    /// The data set's bytes, in the context's transfer syntax.
    pub data_set: Option<Vec<u8>>,
}

/// Collects fragments until a message is complete.
pub struct Assembler {
    max_data_set: usize,
    context_id: Option<u8>,
    command_bytes: Vec<u8>,
    /// The command, once complete, waiting for its data set.
    command: Option<Command>,
    data_set: Vec<u8>,
    /// Fragments [`receive`] took off the wire after the message it
    /// returned, for the next one.
    queued: VecDeque<PDataValue>,
}

impl Assembler {
    /// Data sets larger than `max_data_set` bytes are refused.
    pub fn new(max_data_set: usize) -> Self {
        Assembler {
            max_data_set,
            context_id: None,
            command_bytes: Vec::new(),
            command: None,
            data_set: Vec::new(),
            queued: VecDeque::new(),
        }
    }

    /// Takes one fragment; a complete message when it is the last one.
    pub fn push(&mut self, pdv: PDataValue) -> Result<Option<Message>, String> {
        let context_id = *self.context_id.get_or_insert(pdv.presentation_context_id);
        if context_id != pdv.presentation_context_id {
            return Err(format!(
                "fragment on presentation context {} inside a message on context {context_id}",
                pdv.presentation_context_id
            ));
        }
        match (pdv.value_type, &self.command) {
            (PDataValueType::Command, None) => {
                if self.command_bytes.len() + pdv.data.len() > MAX_COMMAND {
                    return Err(format!("command set over {MAX_COMMAND} bytes"));
                }
                self.command_bytes.extend_from_slice(&pdv.data);
                if !pdv.is_last {
                    return Ok(None);
                }
                let command = command::parse(&std::mem::take(&mut self.command_bytes))?;
                if command.has_data_set {
                    self.command = Some(command);
                    return Ok(None);
                }
                Ok(Some(self.finish(command, None)))
            }
            (PDataValueType::Command, Some(_)) => {
                Err("command fragment where the data set was expected".into())
            }
            (PDataValueType::Data, None) => Err("data fragment before its command".into()),
            (PDataValueType::Data, Some(_)) => {
                if self.data_set.len() + pdv.data.len() > self.max_data_set {
                    return Err(format!("data set over {} bytes", self.max_data_set));
                }
                self.data_set.extend_from_slice(&pdv.data);
                if !pdv.is_last {
                    return Ok(None);
                }
                let command = self.command.take().expect("matched Some");
                let data = std::mem::take(&mut self.data_set);
                Ok(Some(self.finish(command, Some(data))))
            }
        }
    }

    fn finish(&mut self, command: Command, data_set: Option<Vec<u8>>) -> Message {
        Message {
            context_id: self.context_id.take().unwrap_or_default(),
            command,
            data_set,
        }
    }
}

/// Sends a DIMSE message on presentation context `context_id`: its
/// command and data set in one P-DATA PDU when they fit the peer's maximum
/// PDU length, else the data set after the command in as many PDUs as it
/// takes.
pub async fn send<S, A>(
    assoc: &mut A,
    context_id: u8,
    command: &[u8],
    data: Option<&[u8]>,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    A: AsyncAssociation<S> + Send,
{
    let pdv = |value_type, data: &[u8]| PDataValue {
        presentation_context_id: context_id,
        value_type,
        is_last: true,
        data: data.to_vec(),
    };
    // Each PDV item adds 6 bytes: its length, context ID and header.
    let both = 12 + command.len() + data.map_or(0, <[u8]>::len);
    let mut pdvs = vec![pdv(PDataValueType::Command, command)];
    let rest = match data {
        Some(d) if both <= assoc.peer_max_pdu_length() as usize => {
            pdvs.push(pdv(PDataValueType::Data, d));
            None
        }
        other => other,
    };
    AsyncAssociation::send(assoc, &Pdu::PData { data: pdvs })
        .await
        .map_err(|e| chain(&e))?;
    if let Some(data) = rest {
        let cannot = |e: std::io::Error| format!("cannot send the data set: {e}");
        let mut writer = assoc.send_pdata(context_id);
        writer.write_all(data).await.map_err(cannot)?;
        writer.finish().await.map_err(cannot)?;
    }
    Ok(())
}

/// Receives the next complete DIMSE message through `assembler`: P-DATA
/// PDUs until one completes it (fragments after it in the same PDU wait in
/// the assembler for the next call); any other PDU is an error.
pub async fn receive<S, A>(assoc: &mut A, assembler: &mut Assembler) -> Result<Message, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    A: AsyncAssociation<S> + Send,
{
    loop {
        while let Some(pdv) = assembler.queued.pop_front() {
            if let Some(message) = assembler.push(pdv)? {
                return Ok(message);
            }
        }
        let pdu = AsyncAssociation::receive(assoc)
            .await
            .map_err(|e| chain(&e))?;
        let Pdu::PData { data } = pdu else {
            return Err(format!("{} instead of P-DATA", pdu.short_description()));
        };
        assembler.queued.extend(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::command::{C_ECHO_RQ, C_FIND_RQ, request};

    fn pdv(context: u8, command: bool, last: bool, data: &[u8]) -> PDataValue {
        PDataValue {
            presentation_context_id: context,
            value_type: if command {
                PDataValueType::Command
            } else {
                PDataValueType::Data
            },
            is_last: last,
            data: data.to_vec(),
        }
    }

    #[test]
    fn fragments_make_messages() {
        let mut a = Assembler::new(1024);
        let echo = request(C_ECHO_RQ, 1, "1.2.840.10008.1.1", false);
        let (head, tail) = echo.split_at(10);
        assert_eq!(a.push(pdv(1, true, false, head)).unwrap(), None);
        let m = a.push(pdv(1, true, true, tail)).unwrap().unwrap();
        assert_eq!(
            (m.context_id, m.command.field, m.data_set),
            (1, C_ECHO_RQ, None)
        );

        let find = request(C_FIND_RQ, 2, "1.2.840.10008.5.1.4.31", true);
        assert_eq!(a.push(pdv(3, true, true, &find)).unwrap(), None);
        assert_eq!(a.push(pdv(3, false, false, b"ab")).unwrap(), None);
        let m = a.push(pdv(3, false, true, b"cd")).unwrap().unwrap();
        assert_eq!(
            (m.context_id, m.data_set.as_deref()),
            (3, Some(&b"abcd"[..]))
        );
    }

    /// A data set larger than the peer's PDUs goes after its command in
    /// several; a small one in the command's PDU; both arrive whole; two
    /// messages in one PDU are received one after the other. (On the
    /// multi-thread runtime, as the host's: dicom-ul's P-DATA writer blocks
    /// in place when dropped.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_cross_an_association_whole() {
        use crate::dicom::{IMPLICIT_VR_LE, MODALITY_WORKLIST_FIND};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let scp = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut assoc = dicom_ul::ServerAssociationOptions::new()
                .with_abstract_syntax(MODALITY_WORKLIST_FIND)
                .with_transfer_syntax(IMPLICIT_VR_LE)
                .max_pdu_length(4096)
                .establish_async(stream)
                .await
                .unwrap();
            let mut assembler = Assembler::new(1 << 20);
            let rq = receive(&mut assoc, &mut assembler).await.unwrap();
            let rsp = command::response(&rq.command, 0xFF00, true, None);
            send(&mut assoc, rq.context_id, &rsp, Some(b"ok"))
                .await
                .unwrap();
            let first = receive(&mut assoc, &mut assembler).await.unwrap();
            let second = receive(&mut assoc, &mut assembler).await.unwrap();
            (rq, first, second)
        });
        let mut assoc = dicom_ul::ClientAssociationOptions::new()
            .with_presentation_context(MODALITY_WORKLIST_FIND, vec![IMPLICIT_VR_LE])
            .max_pdu_length(4096)
            .establish_async(address.to_string().as_str())
            .await
            .unwrap();
        let find = request(C_FIND_RQ, 7, MODALITY_WORKLIST_FIND, true);
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        send(&mut assoc, 1, &find, Some(&big)).await.unwrap();
        let mut assembler = Assembler::new(1 << 20);
        let rsp = receive(&mut assoc, &mut assembler).await.unwrap();
        assert_eq!(rsp.command.status, Some(0xFF00));
        assert_eq!(rsp.data_set.as_deref(), Some(&b"ok"[..]));
        let echo = |id| {
            pdv(
                1,
                true,
                true,
                &request(C_ECHO_RQ, id, "1.2.840.10008.1.1", false),
            )
        };
        let two = Pdu::PData {
            data: vec![echo(8), echo(9)],
        };
        AsyncAssociation::send(&mut assoc, &two).await.unwrap();
        let (rq, first, second) = scp.await.unwrap();
        assert_eq!((rq.command.message_id, rq.data_set), (Some(7), Some(big)));
        assert_eq!(first.command.message_id, Some(8));
        assert_eq!(second.command.message_id, Some(9));
    }

    #[test]
    fn out_of_order_and_oversized_fragments_are_errors() {
        let find = request(C_FIND_RQ, 2, "1.2.840.10008.5.1.4.31", true);
        assert!(Assembler::new(8).push(pdv(1, false, true, b"x")).is_err());
        let mut a = Assembler::new(8);
        a.push(pdv(1, true, true, &find)).unwrap();
        assert!(a.push(pdv(2, false, true, b"x")).is_err());
        let mut a = Assembler::new(8);
        a.push(pdv(1, true, true, &find)).unwrap();
        assert!(a.push(pdv(1, true, true, &find)).is_err());
        let mut a = Assembler::new(8);
        a.push(pdv(1, true, true, &find)).unwrap();
        assert!(a.push(pdv(1, false, true, b"123456789")).is_err());
        let mut a = Assembler::new(8);
        assert!(
            a.push(pdv(1, true, false, &vec![0; MAX_COMMAND + 1]))
                .is_err()
        );
    }
}
