//! Turning a bot's message into the bytes a destination gets: MSH-4/MSH-6
//! overrides applied, MSH-18 set to match the encoding when not UTF-8, and
//! the text encoded in the destination's character set.

use interlink_sdk::hl7::Message;

use super::DeliveryError;
use crate::config::{DestinationConfig, Encoding};

pub fn for_destination(cfg: &DestinationConfig, text: &str) -> Result<Vec<u8>, DeliveryError> {
    let mut msg = Message::parse(text)
        .map_err(|e| DeliveryError::Permanent(format!("not an HL7 message: {e}")))?;
    let set = |msg: &mut Message, path: &str, value: &str| {
        msg.set(path, value)
            .map_err(|e| DeliveryError::Permanent(format!("cannot set {path}: {e}")))
    };
    if let Some(f) = &cfg.sending_facility {
        set(&mut msg, "MSH-4", f)?;
    }
    if let Some(f) = &cfg.receiving_facility {
        set(&mut msg, "MSH-6", f)?;
    }
    if cfg.encoding == Encoding::Latin1 {
        set(&mut msg, "MSH-18", "8859/1")?;
    }
    cfg.encoding
        .encode(msg.as_str())
        .map_err(|e| DeliveryError::Permanent(format!("cannot encode for {:?}: {e:#}", cfg.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn dest(extra: &str) -> DestinationConfig {
        let text = format!("[[destination]]\nname='d'\nkind='folder'\ndir='x'\n{extra}");
        Config::parse(&text, std::path::Path::new("/"))
            .unwrap()
            .destinations
            .remove(0)
    }

    #[test]
    fn applies_overrides_and_encoding() {
        let cfg = dest("sending_facility='BF'\nreceiving_facility='EPIC'\nencoding='iso-8859-1'");
        let out = for_destination(
            &cfg,
            "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID|1||1||Müller\r",
        )
        .unwrap();
        assert_eq!(
            out,
            b"MSH|^~\\&|A|BF|C|EPIC|20260101||ADT^A04|1|P|2.5||||||8859/1\rPID|1||1||M\xfcller\r"
        );
    }

    #[test]
    fn unencodable_text_is_permanent() {
        let cfg = dest("encoding='iso-8859-1'");
        let err = for_destination(&cfg, "MSH|^~\\&|A\rNTE|1||€\r").unwrap_err();
        assert!(matches!(err, DeliveryError::Permanent(_)), "{err}");
    }
}
