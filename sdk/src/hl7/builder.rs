//! [`MessageBuilder`]: a new message with a sensible MSH.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Delimiters, Message, now_timestamp};

/// Starts a new message. MSH-7 defaults to now (UTC), MSH-10 to a unique id
/// made of the timestamp and a process-wide counter, MSH-11 to `P` and
/// MSH-12 to `2.5.1`.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    delims: Delimiters,
    message_type: String,
    sending: (String, String),
    receiving: (String, String),
    timestamp: Option<String>,
    control_id: Option<String>,
    processing_id: String,
    version: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh MSH-10: the current UTC time to the second and a process-wide
/// counter, 20 characters, unique within the process.
pub fn new_control_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    format!("{}{n:06}", super::format_timestamp(ms))
}

impl MessageBuilder {
    /// `message_type` is MSH-9 as encoded text, e.g. `ORU^R01^ORU_R01`.
    pub fn new(message_type: &str) -> Self {
        MessageBuilder {
            delims: Delimiters::default(),
            message_type: message_type.to_string(),
            sending: Default::default(),
            receiving: Default::default(),
            timestamp: None,
            control_id: None,
            processing_id: "P".into(),
            version: "2.5.1".into(),
        }
    }

    pub fn delimiters(mut self, d: Delimiters) -> Self {
        self.delims = d;
        self
    }

    /// MSH-3 and MSH-4, as encoded text.
    pub fn sending(mut self, application: &str, facility: &str) -> Self {
        self.sending = (application.into(), facility.into());
        self
    }

    /// MSH-5 and MSH-6, as encoded text.
    pub fn receiving(mut self, application: &str, facility: &str) -> Self {
        self.receiving = (application.into(), facility.into());
        self
    }

    /// MSH-7 as an HL7 timestamp.
    pub fn timestamp(mut self, ts: &str) -> Self {
        self.timestamp = Some(ts.into());
        self
    }

    pub fn control_id(mut self, id: &str) -> Self {
        self.control_id = Some(id.into());
        self
    }

    /// MSH-11; kept at `P` when given empty.
    pub fn processing_id(mut self, id: &str) -> Self {
        if !id.is_empty() {
            self.processing_id = id.into();
        }
        self
    }

    /// MSH-12; kept at `2.5.1` when given empty.
    pub fn version(mut self, v: &str) -> Self {
        if !v.is_empty() {
            self.version = v.into();
        }
        self
    }

    /// MSH-3 and MSH-4 as set.
    pub fn sender(&self) -> (&str, &str) {
        (&self.sending.0, &self.sending.1)
    }

    pub fn build(self) -> Message {
        let ts = self.timestamp.unwrap_or_else(now_timestamp);
        let id = self.control_id.unwrap_or_else(new_control_id);
        let f = self.delims.field as char;
        let msh = [
            self.delims.encoding_characters().as_str(),
            &self.sending.0,
            &self.sending.1,
            &self.receiving.0,
            &self.receiving.1,
            &ts,
            "",
            &self.message_type,
            &id,
            &self.processing_id,
            &self.version,
        ]
        .join(&f.to_string());
        Message::parse(&format!("MSH{f}{msh}\r")).expect("builder writes a valid MSH")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_msh() {
        let m = MessageBuilder::new("ORU^R01^ORU_R01")
            .sending("INTERLINK", "BF")
            .receiving("EHR", "HOSP")
            .timestamp("20260102030405")
            .control_id("X1")
            .build();
        assert_eq!(
            m.as_str(),
            "MSH|^~\\&|INTERLINK|BF|EHR|HOSP|20260102030405||ORU^R01^ORU_R01|X1|P|2.5.1\r"
        );
        let a = MessageBuilder::new("ADT^A01").build();
        let b = MessageBuilder::new("ADT^A01").build();
        assert_ne!(a.control_id(), b.control_id());
    }
}
