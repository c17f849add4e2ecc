//! The pure part of a listener's handling of one frame: character set,
//! decoding, parsing and the enhanced-mode decision, and the ACKs built
//! from them. Nothing here touches the journal, the network or the clock
//! beyond ACK control ids, so the fuzz target (`host/fuzz`) can drive it
//! with arbitrary bytes.

use interlink_sdk::hl7::{
    self, AckCode, AckCondition, AckError, AckMode, Charset, Message, charset,
};

/// The listener settings that decide how a frame is read.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Character set when MSH-18 is empty.
    pub encoding: Charset,
    /// Honour MSH-15/MSH-16.
    pub enhanced_mode: bool,
}

/// What a frame turned out to be.
pub enum Screened {
    /// Not a usable message: the AR to send, and why (for the log).
    Refused { ack: Vec<u8>, why: String },
    /// A message to journal.
    Accepted(Accepted),
}

/// A parsed message with what the listener needs to journal and answer it.
pub struct Accepted {
    pub message: Message,
    /// The decoded text.
    pub text: String,
    /// The bytes as received, when they are not `text`'s UTF-8.
    pub raw: Option<Vec<u8>>,
    pub charset: Charset,
    /// `MSH-3^MSH-4`, the sender for duplicate suppression.
    pub sender: String,
    /// MSH-10.
    pub control_id: String,
    /// In enhanced mode, when the sender wants the (accept) ACK.
    accept: Option<AckCondition>,
}

/// Reads one frame's bytes as a message, or refuses them with AR.
pub fn screen(bytes: Vec<u8>, reading: Reading) -> Screened {
    let (cs, text) = match charset::decode_declared(&bytes, reading.encoding) {
        Ok((cs, text)) => (cs, text.into_owned()),
        Err(e @ hl7::Error::UnsupportedCharset(_)) => return refused(&bytes, 207, e.to_string()),
        Err(e) => return refused(&bytes, 102, e.to_string()),
    };
    let message = match Message::parse(&text) {
        Ok(m) => m,
        Err(e) => return refused(&bytes, 100, e.to_string()),
    };
    // In enhanced mode the listener's ACK is the accept ACK (CA/CE/CR),
    // sent only when MSH-15 asks for it.
    let accept = match reading.enhanced_mode.then(|| AckMode::of(&message)) {
        Some(AckMode::Enhanced { accept, .. }) => Some(accept),
        _ => None,
    };
    let sender = format!(
        "{}^{}",
        message.get_raw("MSH-3").unwrap_or(""),
        message.get_raw("MSH-4").unwrap_or("")
    );
    let control_id = message.control_id().into_owned();
    let raw = (bytes != text.as_bytes()).then_some(bytes);
    Screened::Accepted(Accepted {
        message,
        text,
        raw,
        charset: cs,
        sender,
        control_id,
        accept,
    })
}

/// An AR for bytes that are not a usable message, built from whatever MSH
/// fields can be read, with `why` in ERR.
pub fn reject(bytes: &[u8], code: u16, why: String) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    hl7::reject(
        &text,
        AckCode::AR,
        &AckError::new(code, why),
        &hl7::new_control_id(),
    )
    .as_str()
    .as_bytes()
    .to_vec()
}

fn refused(bytes: &[u8], code: u16, why: String) -> Screened {
    Screened::Refused {
        ack: reject(bytes, code, why.clone()),
        why,
    }
}

impl Accepted {
    /// The listener's ACK with `code` (its commit form in enhanced mode),
    /// or `None` when MSH-15 says the sender does not want it.
    pub fn answer(&self, code: AckCode, error: Option<&AckError>) -> Option<Vec<u8>> {
        let code = if self.accept.is_some() {
            code.to_commit()
        } else {
            code
        };
        let wanted = self.accept.is_none_or(|a| a.wants(code));
        wanted.then(|| {
            self.encode(&hl7::ack(
                &self.message,
                code,
                error,
                &hl7::new_control_id(),
            ))
        })
    }

    /// The application ACK (AA/AE/AR, whatever the acknowledgement mode).
    pub fn application(&self, code: AckCode, error: Option<&AckError>) -> Vec<u8> {
        self.encode(&hl7::ack(
            &self.message,
            code,
            error,
            &hl7::new_control_id(),
        ))
    }

    /// Text (an ACK) as bytes in the message's character set; characters it
    /// cannot carry become `?`: an ACK must always go out.
    pub fn encode(&self, ack: &Message) -> Vec<u8> {
        self.encode_text(ack.as_str())
    }

    /// [`Accepted::encode`] for text that is already an ACK (a bot's).
    pub fn encode_text(&self, text: &str) -> Vec<u8> {
        self.charset
            .encode(text)
            .map(|b| b.into_owned())
            .unwrap_or_else(|_| {
                text.chars()
                    .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                    .collect()
            })
    }
}

/// MSA-1 of an ACK as sent (AA, AE, AR, CA, CE, CR), read from its bytes
/// (whatever their charset: the segment and the code are ASCII), for the
/// counts of ACKs sent.
pub fn ack_code(ack: &[u8]) -> Option<&str> {
    let msa = ack
        .split(|&b| b == b'\r' || b == b'\n')
        .find(|seg| seg.starts_with(b"MSA") && seg.len() > 3)?;
    let sep = msa[3];
    let code = msa[4..].split(|&b| b == sep).next()?;
    std::str::from_utf8(code)
        .ok()
        .filter(|c| matches!(*c, "AA" | "AE" | "AR" | "CA" | "CE" | "CR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const READING: Reading = Reading {
        encoding: Charset::Utf8,
        enhanced_mode: true,
    };

    fn accepted(text: &str) -> Accepted {
        match screen(text.as_bytes().to_vec(), READING) {
            Screened::Accepted(a) => a,
            Screened::Refused { why, .. } => panic!("refused: {why}"),
        }
    }

    #[test]
    fn refuses_what_is_not_hl7_with_ar() {
        let Screened::Refused { ack, why } = screen(b"hello".to_vec(), READING) else {
            panic!("accepted");
        };
        let ack = Message::parse(std::str::from_utf8(&ack).unwrap()).unwrap();
        assert_eq!(ack.get_raw("MSA-1"), Some("AR"));
        assert!(!why.is_empty());
    }

    #[test]
    fn reads_the_code_of_an_ack() {
        let a = accepted("MSH|^~\\&|A|B|C|D|1||ADT^A04|O1|P|2.5.1\r");
        assert_eq!(ack_code(&a.answer(AckCode::AA, None).unwrap()), Some("AA"));
        assert_eq!(ack_code(&reject(b"junk", 207, "why".into())), Some("AR"));
        assert_eq!(ack_code(b"MSH|^~\\&\rMSA#CE#X\r"), Some("CE"));
        assert_eq!(ack_code(b"MSH|^~\\&\rMSA|ZZ|X\r"), None);
        assert_eq!(ack_code(b""), None);
    }

    #[test]
    fn enhanced_mode_answers_only_when_msh_15_asks() {
        let msh = "MSH|^~\\&|A|B|C|D|1||ADT^A04|E1|P|2.5.1|||";
        let a = accepted(&format!("{msh}ER|NE\r"));
        assert_eq!((a.sender.as_str(), a.control_id.as_str()), ("A^B", "E1"));
        assert!(a.answer(AckCode::AA, None).is_none());
        let refused = a.answer(AckCode::AR, None).unwrap();
        assert!(String::from_utf8(refused).unwrap().contains("MSA|CR|E1"));
        let original = accepted("MSH|^~\\&|A|B|C|D|1||ADT^A04|O1|P|2.5.1\r");
        let aa = original.answer(AckCode::AA, None).unwrap();
        assert!(String::from_utf8(aa).unwrap().contains("MSA|AA|O1"));
    }
}
