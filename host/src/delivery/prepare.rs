//! Turning a bot's message into the bytes a destination gets. HL7 gets
//! MSH-4/MSH-6 overrides applied, MSH-7 rendered in the destination's time
//! zone, MSH-18 set to match the encoding when not UTF-8, and the text
//! encoded in the destination's character set; bytes go as they are.

use std::borrow::Cow;

use interlink_sdk::hl7::{Message, Timestamp};

use super::DeliveryError;
use crate::config::DestinationConfig;
use crate::journal::Payload;

/// The bytes for the wire (a bytes payload's own, not copied) and, for
/// HL7, the message's MSH-10 (which the ACK must name).
pub fn for_destination<'p>(
    cfg: &DestinationConfig,
    payload: &'p Payload,
) -> Result<(Cow<'p, [u8]>, String), DeliveryError> {
    // Refused when the bot sent it; the destination changed kind since.
    let bytes = matches!(payload, Payload::Bytes { .. });
    if let Some(why) = cfg.refuses(bytes) {
        let kind = cfg.kind_name();
        return Err(DeliveryError::Permanent(
            format!("{:?} is {kind}, which {why}", cfg.name).into(),
        ));
    }
    match payload {
        Payload::Hl7(text) => hl7(cfg, text).map(|(bytes, id)| (Cow::Owned(bytes), id)),
        Payload::Bytes { data, .. } => Ok((Cow::Borrowed(data), String::new())),
    }
}

fn hl7(cfg: &DestinationConfig, text: &str) -> Result<(Vec<u8>, String), DeliveryError> {
    let permanent = |e: interlink_sdk::hl7::Error| DeliveryError::Permanent(e.to_string().into());
    let mut msg = Message::parse(text).map_err(permanent)?;
    if let Some(f) = &cfg.sending_facility {
        msg.set("MSH-4", f).map_err(permanent)?;
    }
    if let Some(f) = &cfg.receiving_facility {
        msg.set("MSH-6", f).map_err(permanent)?;
    }
    if let Some(tz) = &cfg.timezone
        && let Some(local) = msg.get("MSH-7").and_then(|t| t.parse::<Timestamp>().ok())
    {
        let local = local.in_zone(tz).map_err(permanent)?;
        msg.set("MSH-7", &local.to_string()).map_err(permanent)?;
    }
    let bytes = msg.encode_to(cfg.encoding).map_err(|e| {
        DeliveryError::Permanent(format!("cannot encode for {:?}: {e}", cfg.name).into())
    })?;
    Ok((bytes, msg.control_id().into_owned()))
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
        let out = hl7(
            &cfg,
            "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID|1||1||Müller\r",
        )
        .unwrap();
        assert_eq!(
            out.0,
            b"MSH|^~\\&|A|BF|C|EPIC|20260101||ADT^A04|1|P|2.5||||||8859/1\rPID|1||1||M\xfcller\r"
        );
        assert_eq!(out.1, "1");
    }

    #[test]
    fn renders_msh7_in_the_destination_time_zone() {
        let cfg = dest("timezone='America/Chicago'");
        let (out, _) = hl7(
            &cfg,
            "MSH|^~\\&|A|B|C|D|20260701150000+0000||ORU^R01|9|P|2.5\r",
        )
        .unwrap();
        assert_eq!(
            out,
            b"MSH|^~\\&|A|B|C|D|20260701100000-0500||ORU^R01|9|P|2.5\r"
        );
        // Without an offset the time is taken as UTC.
        let (out, _) = hl7(&cfg, "MSH|^~\\&|A|B|C|D|202601151200||ORU^R01|9|P|2.5\r").unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("|202601150600-0600|")
        );
    }

    #[test]
    fn unencodable_text_is_permanent() {
        let cfg = dest("encoding='iso-8859-1'");
        let err = hl7(&cfg, "MSH|^~\\&|A\rNTE|1||€\r").unwrap_err();
        assert!(matches!(err, DeliveryError::Permanent(_)), "{err}");
    }

    #[test]
    fn bytes_go_as_they_are_but_not_over_mllp() {
        let bytes = Payload::Bytes {
            data: b"a;b\r\n".to_vec(),
            name: None,
            content_type: None,
            http: None,
        };
        let (out, control_id) = for_destination(&dest("encoding='iso-8859-1'"), &bytes).unwrap();
        assert_eq!((&out[..], control_id.as_str()), (&b"a;b\r\n"[..], ""));
        let mllp = Config::parse(
            "[[destination]]\nname='m'\nkind='mllp'\nhost='127.0.0.1'\nport=9",
            std::path::Path::new("/"),
        )
        .unwrap()
        .destinations
        .remove(0);
        let err = for_destination(&mllp, &bytes).unwrap_err();
        assert!(matches!(err, DeliveryError::Permanent(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "\"m\" is mllp, which takes HL7 text only; bytes go to a folder, SFTP, http or \
             DICOM destination"
        );
        let pacs = Config::parse(
            "[[destination]]\nname='p'\nkind='dicom'\nhost='127.0.0.1'\nport=9\ncalled_ae='PACS'",
            std::path::Path::new("/"),
        )
        .unwrap()
        .destinations
        .remove(0);
        let hl7 = Payload::Hl7("MSH|^~\\&|A\r".into());
        let err = for_destination(&pacs, &hl7).unwrap_err();
        assert!(matches!(err, DeliveryError::Permanent(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "\"p\" is dicom, which takes DICOM Part-10 files as bytes, not HL7 text"
        );
        assert_eq!(&for_destination(&pacs, &bytes).unwrap().0[..], b"a;b\r\n");
    }
}
