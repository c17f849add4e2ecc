//! DIMSE messages from P-DATA fragments: a command set (one or more
//! command fragments, the last one flagged) and, when the command says so,
//! a data set (data fragments, the last one flagged), all on one
//! presentation context. Sizes are capped, so a peer cannot make the host
//! buffer without bound; anything out of order is an error.

use dicom_ul::pdu::{PDataValue, PDataValueType};

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
