//! DIMSE command sets (DICOM PS3.7 §9.3 and annex E): the group 0000
//! elements that head every DIMSE message, always in implicit VR little
//! endian. Only what the worklist SCP and the C-STORE destination use:
//! C-ECHO, C-FIND, C-CANCEL and C-STORE requests and responses.
//!
//! Reading never panics: a truncated or malformed command set is an error
//! naming what is wrong.

/// Command Field values.
pub const C_STORE_RQ: u16 = 0x0001;
pub const C_FIND_RQ: u16 = 0x0020;
pub const C_ECHO_RQ: u16 = 0x0030;
pub const C_CANCEL_RQ: u16 = 0x0FFF;
/// A response's Command Field is its request's with this bit set.
pub const RESPONSE: u16 = 0x8000;

/// Status values (PS3.7 annex C, and the services' own in PS3.4).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const PENDING: u16 = 0xFF00;
    pub const CANCELED: u16 = 0xFE00;
    /// Refused: out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: the identifier does not match the SOP class.
    pub const IDENTIFIER_MISMATCH: u16 = 0xA900;
    /// Failed: unable to process.
    pub const UNABLE_TO_PROCESS: u16 = 0xC000;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Unrecognized operation.
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
}

/// Command Data Set Type: no data set follows.
const NO_DATA_SET: u16 = 0x0101;
/// Command Data Set Type we write when one follows (any other value means
/// one does).
const DATA_SET: u16 = 0x0000;

/// Element numbers in group 0000.
const GROUP_LENGTH: u16 = 0x0000;
const AFFECTED_SOP_CLASS: u16 = 0x0002;
const COMMAND_FIELD: u16 = 0x0100;
const MESSAGE_ID: u16 = 0x0110;
const RESPONDED_TO: u16 = 0x0120;
const PRIORITY: u16 = 0x0700;
const DATA_SET_TYPE: u16 = 0x0800;
const STATUS: u16 = 0x0900;
const ERROR_COMMENT: u16 = 0x0902;
const AFFECTED_SOP_INSTANCE: u16 = 0x1000;

/// Longest Error Comment (VR LO).
const MAX_ERROR_COMMENT: usize = 64;

/// A command set as read: the elements the host looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    pub field: u16,
    /// A request's Message ID.
    pub message_id: Option<u16>,
    /// A response's Message ID Being Responded To (and a C-CANCEL's).
    pub responded_to: Option<u16>,
    pub sop_class: String,
    pub sop_instance: String,
    /// Whether a data set follows.
    pub has_data_set: bool,
    /// A response's status.
    pub status: Option<u16>,
    pub error_comment: Option<String>,
}

impl Command {
    /// Whether it is a request (not a response).
    pub fn is_request(&self) -> bool {
        self.field & RESPONSE == 0
    }
}

/// Reads a command set.
pub fn parse(mut bytes: &[u8]) -> Result<Command, String> {
    let mut cmd = Command::default();
    let (mut field, mut data_set_type) = (None, None);
    while !bytes.is_empty() {
        let Some((head, rest)) = bytes.split_first_chunk::<8>() else {
            return Err("command set ends inside an element header".into());
        };
        let group = u16::from_le_bytes([head[0], head[1]]);
        let element = u16::from_le_bytes([head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if group != 0 {
            return Err(format!(
                "command set holds element ({group:04X},{element:04X}) outside group 0000"
            ));
        }
        if len > rest.len() {
            return Err(format!(
                "command element (0000,{element:04X}) is longer than the command set"
            ));
        }
        let (value, rest) = rest.split_at(len);
        bytes = rest;
        let us = || -> Result<u16, String> {
            <[u8; 2]>::try_from(value)
                .map(u16::from_le_bytes)
                .map_err(|_| format!("command element (0000,{element:04X}) is not 2 bytes"))
        };
        match element {
            COMMAND_FIELD => field = Some(us()?),
            MESSAGE_ID => cmd.message_id = Some(us()?),
            RESPONDED_TO => cmd.responded_to = Some(us()?),
            DATA_SET_TYPE => data_set_type = Some(us()?),
            STATUS => cmd.status = Some(us()?),
            AFFECTED_SOP_CLASS => cmd.sop_class = text(value),
            AFFECTED_SOP_INSTANCE => cmd.sop_instance = text(value),
            ERROR_COMMENT => cmd.error_comment = Some(text(value)),
            _ => {}
        }
    }
    cmd.field = field.ok_or("command set has no Command Field")?;
    cmd.has_data_set =
        data_set_type.ok_or("command set has no Command Data Set Type")? != NO_DATA_SET;
    Ok(cmd)
}

/// A string value without its padding.
fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// A command set being written: elements in any order, encoded sorted with
/// the group length first.
#[derive(Default)]
struct Writer(Vec<(u16, Vec<u8>)>);

impl Writer {
    fn us(mut self, element: u16, value: u16) -> Self {
        self.0.push((element, value.to_le_bytes().to_vec()));
        self
    }

    /// A UI value (padded with NUL) or another string (padded with a space).
    fn text(mut self, element: u16, value: &str, pad: u8) -> Self {
        let mut bytes = value.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(pad);
        }
        self.0.push((element, bytes));
        self
    }

    fn uid(self, element: u16, value: &str) -> Self {
        self.text(element, value, 0)
    }

    fn encode(mut self) -> Vec<u8> {
        self.0.sort_by_key(|(element, _)| *element);
        let mut body = Vec::new();
        for (element, value) in &self.0 {
            put_element(&mut body, *element, value);
        }
        let mut out = Vec::with_capacity(body.len() + 12);
        put_element(&mut out, GROUP_LENGTH, &(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}

fn put_element(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// A response to `request` (`field` with [`RESPONSE`] set) with `status`;
/// `data_set` says whether an identifier follows. An error comment is cut
/// to the 64 characters DICOM allows.
pub fn response(request: &Command, status: u16, data_set: bool, comment: Option<&str>) -> Vec<u8> {
    let mut w = Writer::default()
        .us(COMMAND_FIELD, request.field | RESPONSE)
        .us(RESPONDED_TO, request.message_id.unwrap_or(0))
        .us(DATA_SET_TYPE, if data_set { DATA_SET } else { NO_DATA_SET })
        .us(STATUS, status);
    if !request.sop_class.is_empty() {
        w = w.uid(AFFECTED_SOP_CLASS, &request.sop_class);
    }
    if !request.sop_instance.is_empty() {
        w = w.uid(AFFECTED_SOP_INSTANCE, &request.sop_instance);
    }
    if let Some(comment) = comment {
        let cut: String = comment
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '\\')
            .take(MAX_ERROR_COMMENT)
            .collect();
        w = w.text(ERROR_COMMENT, &cut, b' ');
    }
    w.encode()
}

/// A C-STORE request for an instance; its data set follows.
pub fn store_request(message_id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    Writer::default()
        .uid(AFFECTED_SOP_CLASS, sop_class)
        .us(COMMAND_FIELD, C_STORE_RQ)
        .us(MESSAGE_ID, message_id)
        .us(PRIORITY, 0)
        .us(DATA_SET_TYPE, DATA_SET)
        .uid(AFFECTED_SOP_INSTANCE, sop_instance)
        .encode()
}

/// A request as a peer sends it (for tests and the benchmark): `field`,
/// its Message ID (or, for C-CANCEL, the one it cancels) and SOP class.
pub fn request(field: u16, message_id: u16, sop_class: &str, data_set: bool) -> Vec<u8> {
    let id_element = if field == C_CANCEL_RQ {
        RESPONDED_TO
    } else {
        MESSAGE_ID
    };
    let mut w = Writer::default()
        .us(COMMAND_FIELD, field)
        .us(id_element, message_id)
        .us(DATA_SET_TYPE, if data_set { DATA_SET } else { NO_DATA_SET });
    if !sop_class.is_empty() {
        w = w.uid(AFFECTED_SOP_CLASS, sop_class);
    }
    if field == C_FIND_RQ {
        w = w.us(PRIORITY, 0);
    }
    w.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MWL: &str = "1.2.840.10008.5.1.4.31";

    #[test]
    fn requests_and_responses_round_trip() {
        let rq = parse(&request(C_FIND_RQ, 7, MWL, true)).unwrap();
        assert_eq!(
            (
                rq.field,
                rq.message_id,
                rq.sop_class.as_str(),
                rq.has_data_set
            ),
            (C_FIND_RQ, Some(7), MWL, true)
        );
        assert!(rq.is_request());
        let rsp = parse(&response(&rq, status::PENDING, true, None)).unwrap();
        assert_eq!(
            (rsp.field, rsp.responded_to, rsp.status, rsp.has_data_set),
            (0x8020, Some(7), Some(status::PENDING), true)
        );
        assert!(!rsp.is_request());
        // ErrorComment (LO): at most 64 characters, no backslash, ASCII.
        let long = "\\é\u{7}".to_string() + &"x".repeat(100);
        let failed = parse(&response(
            &rq,
            status::UNABLE_TO_PROCESS,
            false,
            Some(&long),
        ))
        .unwrap();
        assert_eq!(failed.error_comment, Some("x".repeat(64)));
        assert!(!failed.has_data_set);

        let cancel = parse(&request(C_CANCEL_RQ, 7, "", false)).unwrap();
        assert_eq!((cancel.field, cancel.responded_to), (C_CANCEL_RQ, Some(7)));
        let store = parse(&store_request(3, "1.2.3", "1.2.3.4.5")).unwrap();
        assert_eq!(
            (store.sop_class.as_str(), store.sop_instance.as_str()),
            ("1.2.3", "1.2.3.4.5")
        );
    }

    #[test]
    fn group_length_counts_the_rest() {
        let bytes = request(C_ECHO_RQ, 1, "1.2.840.10008.1.1", false);
        let length = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(length, bytes.len() - 12);
        assert_eq!(bytes.len() % 2, 0);
    }

    #[test]
    fn truncated_and_garbage_command_sets_are_errors() {
        let good = request(C_FIND_RQ, 7, MWL, true);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        assert!(parse(&good[..good.len() - 3]).is_err());
        assert!(parse(&[0x08, 0, 0x05, 0, 2, 0, 0, 0, b'a', b'b']).is_err());
        assert!(parse(&[0, 0, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse(&[0, 0, 0x00, 0x01, 3, 0, 0, 0, 1, 2, 3]).is_err());
        assert_eq!(parse(&[]).unwrap_err(), "command set has no Command Field");
    }
}
