//! DICOM destinations (`kind = "dicom"`): each message is a DICOM Part-10
//! file a bot sent as bytes. Delivery opens an association proposing the
//! file's SOP class in its transfer syntax, sends its data set as it is
//! (byte for byte) with C-STORE, and releases the association. Only a
//! success status (0x0000) or a warning (0xB000…, logged) delivers it; any
//! other status is a refusal and dead-letters it with the status; a file
//! that is not Part-10, or a receiver that takes neither its SOP class nor
//! its transfer syntax, too. Network errors, timeouts and rejected
//! associations are retried.

use std::time::Duration;

use dicom_object::FileMetaTable;
use dicom_ul::ClientAssociationOptions;
use dicom_ul::association::AsyncClientAssociation;
use dicom_ul::pdu::PresentationContextResultReason;
use tokio::net::TcpStream;

use super::{DeliveryError, Reason};
use crate::config::DicomDestination;
use crate::dicom::chain;
use crate::dicom::command::{self, C_STORE_RQ, RESPONSE, status};
use crate::dicom::message::{self, Assembler};

/// A Part-10 file's parts that C-STORE needs.
#[derive(Debug, PartialEq, Eq)]
struct Instance<'a> {
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
    /// The data set after the file meta group, as stored.
    data_set: &'a [u8],
}

/// Reads a Part-10 file: 128-byte preamble, `DICM`, the file meta group
/// (explicit VR little endian, led by its group length), the data set.
/// `FileMetaTable::from_reader` checks the group length element and reads
/// exactly the group, so the data set is what it leaves.
fn part10(bytes: &[u8]) -> Result<Instance<'_>, String> {
    let not = |why: &str| format!("not a DICOM Part-10 file: {why}");
    let mut rest = match bytes.get(128..) {
        Some(rest) if rest.starts_with(b"DICM") => rest,
        _ => return Err(not("no DICM after the 128-byte preamble")),
    };
    let meta = FileMetaTable::from_reader(&mut rest).map_err(|e| not(&e.to_string()))?;
    let data_set = rest;
    Ok(Instance {
        sop_class: meta.media_storage_sop_class_uid().to_string(),
        sop_instance: meta.media_storage_sop_instance_uid().to_string(),
        transfer_syntax: meta.transfer_syntax().to_string(),
        data_set,
    })
}

pub struct DicomSink {
    address: String,
    called_ae: String,
    calling_ae: String,
    connect_timeout: Duration,
    ack_timeout: Duration,
}

impl DicomSink {
    pub fn new(cfg: &DicomDestination) -> Self {
        DicomSink {
            address: format!("{}:{}", cfg.host, cfg.port),
            called_ae: cfg.called_ae.clone(),
            calling_ae: cfg.calling_ae.clone(),
            connect_timeout: Duration::from_secs(cfg.connect_timeout_s),
            ack_timeout: Duration::from_secs(cfg.ack_timeout_s),
        }
    }

    pub async fn deliver(&mut self, bytes: &[u8]) -> Result<(), DeliveryError> {
        let instance = part10(bytes).map_err(|why| DeliveryError::Permanent(why.into()))?;
        let transient = |what: &str, e: &dyn std::error::Error| {
            DeliveryError::Transient(format!("{what}: {}", chain(e)).into())
        };
        let options = ClientAssociationOptions::new()
            .calling_ae_title(self.calling_ae.clone())
            .called_ae_title(self.called_ae.clone())
            .with_presentation_context(
                instance.sop_class.clone(),
                vec![instance.transfer_syntax.clone()],
            )
            .connection_timeout(self.connect_timeout)
            .read_timeout(self.ack_timeout)
            .write_timeout(self.ack_timeout);
        let mut assoc = options
            .establish_async(self.address.as_str())
            .await
            .map_err(|e| transient(&format!("no association with {}", self.address), &e))?;
        let context = assoc.presentation_contexts().iter().find(|pc| {
            pc.reason == PresentationContextResultReason::Acceptance
                && pc.transfer_syntax.trim_end_matches('\0') == instance.transfer_syntax
        });
        let Some(context_id) = context.map(|pc| pc.id) else {
            let _ = assoc.abort().await;
            return Err(DeliveryError::Permanent(
                format!(
                    "the receiver takes neither SOP class {} in transfer syntax {}",
                    instance.sop_class, instance.transfer_syntax
                )
                .into(),
            ));
        };
        // dicom-ul bounds single reads and writes, not the data set's
        // P-DATA stream: a receiver that stops reading would hold the
        // destination forever without this.
        let limit = self.ack_timeout + transfer_allowance(instance.data_set.len());
        let result = tokio::time::timeout(limit, store(&mut assoc, context_id, &instance))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the C-STORE took more than {} s (ack_timeout_s plus 1 s per MiB)",
                    limit.as_secs()
                ))
            });
        match &result {
            Ok(_) => {
                let _ = assoc.release().await;
            }
            Err(_) => {
                let _ = assoc.abort().await;
            }
        }
        let (code, comment) = result.map_err(|why| DeliveryError::Transient(why.into()))?;
        verdict(code, comment)
    }
}

/// What a C-STORE response status means for the message: success, or a
/// warning (0xBxxx, logged), delivers it; anything else is a refusal that
/// retrying will not change, quoting the receiver's error comment.
fn verdict(code: u16, comment: Option<String>) -> Result<(), DeliveryError> {
    match code {
        status::SUCCESS => Ok(()),
        code if code & 0xF000 == 0xB000 => {
            tracing::warn!(
                "C-STORE accepted with warning status 0x{code:04X}{}",
                comment
                    .as_deref()
                    .map(crate::phi::text)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        code => Err(DeliveryError::Permanent(Reason {
            text: format!("C-STORE refused with status 0x{code:04X}"),
            quote: comment,
        })),
    }
}

/// Time for sending `bytes` of data set on top of `ack_timeout_s`: 1 s per
/// MiB (a link slower than 1 MiB/s is taken for a stalled receiver).
fn transfer_allowance(bytes: usize) -> Duration {
    Duration::from_secs(bytes.div_ceil(1 << 20) as u64)
}

/// Sends the C-STORE request and its data set, and reads the response's
/// status and error comment.
async fn store(
    assoc: &mut AsyncClientAssociation<TcpStream>,
    context_id: u8,
    instance: &Instance<'_>,
) -> Result<(u16, Option<String>), String> {
    const MESSAGE_ID: u16 = 1;
    let rq = command::store_request(MESSAGE_ID, &instance.sop_class, &instance.sop_instance);
    message::send(assoc, context_id, &rq, Some(instance.data_set)).await?;
    let rsp = message::receive(assoc, &mut Assembler::new(64 * 1024))
        .await
        .map_err(|why| format!("no C-STORE response: {why}"))?
        .command;
    if rsp.field != C_STORE_RQ | RESPONSE || rsp.responded_to != Some(MESSAGE_ID) {
        return Err(format!("unexpected response 0x{:04X}", rsp.field));
    }
    let code = rsp.status.ok_or("C-STORE response without a status")?;
    Ok((code, rsp.error_comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal Part-10 file: preamble, DICM, meta group, data set.
    pub(crate) fn file(data_set: &[u8]) -> Vec<u8> {
        let meta = dicom_object::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.6.1")
            .media_storage_sop_instance_uid("1.2.3.4")
            .transfer_syntax(crate::dicom::EXPLICIT_VR_LE)
            .build()
            .unwrap();
        let mut out = vec![0; 128];
        out.extend_from_slice(b"DICM");
        meta.write(&mut out).unwrap();
        out.extend_from_slice(data_set);
        out
    }

    #[test]
    fn part10_files_give_their_data_set_as_stored() {
        let bytes = file(b"\x08\x00\x16\x00UI\x04\x001.2\x00");
        let i = part10(&bytes).unwrap();
        assert_eq!(i.sop_class, "1.2.840.10008.5.1.4.1.1.6.1");
        assert_eq!(i.sop_instance, "1.2.3.4");
        assert_eq!(i.transfer_syntax, crate::dicom::EXPLICIT_VR_LE);
        assert_eq!(i.data_set, b"\x08\x00\x16\x00UI\x04\x001.2\x00");
    }

    #[test]
    fn other_bytes_are_not_part10() {
        assert!(
            part10(b"MSH|^~\\&|")
                .unwrap_err()
                .contains("not a DICOM Part-10 file")
        );
        let bytes = file(b"");
        for cut in 0..bytes.len() {
            let _ = part10(&bytes[..cut]);
        }
        let mut broken = bytes.clone();
        broken[140] = 0xFF;
        assert!(part10(&broken).is_err());
    }

    #[test]
    fn success_and_warnings_deliver_and_other_statuses_refuse_quoting_the_receiver() {
        assert!(verdict(0x0000, None).is_ok());
        assert!(verdict(0xB007, Some("coerced".into())).is_ok());
        let Err(DeliveryError::Permanent(refused)) = verdict(0xA700, Some("disk full".into()))
        else {
            panic!("0xA700 is a refusal")
        };
        assert_eq!(refused.text, "C-STORE refused with status 0xA700");
        assert_eq!(refused.quote.as_deref(), Some("disk full"));
        assert!(matches!(
            verdict(0xC000, None),
            Err(DeliveryError::Permanent(_))
        ));
    }
}
