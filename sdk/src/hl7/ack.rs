//! Acknowledgements for received messages.

use super::{Message, MessageBuilder};

/// MSA-1 acknowledgement codes, original (A*) and enhanced (C*) mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    AA,
    AE,
    AR,
    CA,
    CE,
    CR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    /// AA and CA; everything else asks the sender to act.
    pub fn is_positive(self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }
}

/// Builds the ACK for `original`: sender and receiver swapped, version and
/// processing id copied, MSA-2 set to the original's control id. A negative
/// code adds an ERR segment with HL7 error `207` (application internal
/// error), severity `E` and `text` in ERR-8.
pub fn ack(original: &Message, code: AckCode, text: &str, control_id: &str) -> Message {
    let get = |p: &str| original.get_raw(p).unwrap_or("").to_string();
    let trigger = original.get_raw("MSH-9.2").unwrap_or("");
    let mut msg = MessageBuilder::new(&format!("ACK^{trigger}^ACK"))
        .delimiters(*original.delimiters())
        .sending(&get("MSH-5"), &get("MSH-6"))
        .receiving(&get("MSH-3"), &get("MSH-4"))
        .control_id(control_id)
        .processing_id(&get("MSH-11"))
        .version(&get("MSH-12"))
        .build();
    let d = original.delimiters().field as char;
    let msa = format!("MSA{d}{}{d}{}", code.as_str(), get("MSH-10"));
    msg.append_segment(&msa);
    if !text.is_empty() {
        let _ = msg.set("MSA-3", text);
    }
    if !code.is_positive() {
        msg.append_segment(&format!(
            "ERR{d}{d}{d}207{c}Application internal error{c}HL70357{d}E",
            c = original.delimiters().component as char
        ));
        let _ = msg.set("ERR-8", text);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_swap_parties_and_reference_the_original() {
        let orig = Message::parse(
            "MSH|^~\\&|SND|SFAC|RCV|RFAC|20260101||ADT^A04^ADT_A01|C1|P|2.5.1\rPID|1\r",
        )
        .unwrap();
        let a = ack(&orig, AckCode::AA, "", "A1");
        assert_eq!(a.get("MSH-3").unwrap(), "RCV");
        assert_eq!(a.get("MSH-4").unwrap(), "RFAC");
        assert_eq!(a.get("MSH-5").unwrap(), "SND");
        assert_eq!(a.get("MSH-9").unwrap(), "ACK^A04^ACK");
        assert_eq!(a.get("MSH-12").unwrap(), "2.5.1");
        assert_eq!(a.get("MSA-1").unwrap(), "AA");
        assert_eq!(a.get("MSA-2").unwrap(), "C1");
        assert!(a.segments().all(|s| s.id != "ERR"));

        let n = ack(&orig, AckCode::AE, "bad | thing", "A2");
        assert_eq!(n.get("MSA-1").unwrap(), "AE");
        assert_eq!(n.get("ERR-3.1").unwrap(), "207");
        assert_eq!(n.get("ERR-4").unwrap(), "E");
        assert_eq!(n.get("ERR-8").unwrap(), "bad | thing");
    }
}
