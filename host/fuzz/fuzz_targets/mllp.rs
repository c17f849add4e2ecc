//! Fuzz target for an MLLP listener's input side: arbitrary bytes, split
//! into reads of fuzzer-chosen sizes, go through the framing
//! (`host/src/mllp/frame.rs`) and every complete frame through the listener's
//! answer (`host/src/triggers/mllp/answer.rs`). Nothing may panic, the
//! buffer must stay bounded, and every frame must get an ACK (an AR for
//! what is refused) unless enhanced mode's MSH-15 says the sender wants
//! none.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/mllp/frame.rs"]
mod mllp;

#[allow(dead_code)]
#[path = "../../src/triggers/mllp/answer.rs"]
mod answer;

use answer::{Reading, Screened, reject, screen};
use interlink_sdk::hl7::{AckCode, AckError, AckMode, Charset, Message};
use libfuzzer_sys::fuzz_target;
use mllp::{Deframer, Frame};

/// Frame limit: small, so oversized frames are reachable with 4 KiB inputs.
const LIMIT: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let reading = Reading {
        encoding: if flags & 1 == 0 {
            Charset::Utf8
        } else {
            Charset::Latin1
        },
        enhanced_mode: flags & 2 != 0,
    };
    let read_size = usize::from(flags >> 2) + 1;
    let mut frames = Deframer::new(LIMIT);
    for chunk in data.chunks(read_size) {
        frames.push(chunk);
        while let Some(frame) = frames.next_frame() {
            answer(frame, reading);
        }
    }
    frames.finish();
    assert!(frames.next_frame().is_none());
});

fn answer(frame: Frame, reading: Reading) {
    match frame {
        Frame::TooLarge { limit } => {
            assert_eq!(limit, LIMIT);
            assert_ack(&utf8(&reject(b"", 207, "too large".into())), "AR");
        }
        Frame::Message(bytes) => {
            assert!(bytes.len() <= LIMIT);
            match screen(bytes, reading) {
                Screened::Refused { ack, why } => {
                    assert!(!why.is_empty());
                    assert_ack(&utf8(&ack), "AR");
                }
                Screened::Accepted(accepted) => {
                    let enhanced = reading.enhanced_mode
                        && AckMode::of(&accepted.message) != AckMode::Original;
                    let (ok, not_ok) = if enhanced { ("CA", "CR") } else { ("AA", "AR") };
                    let stored = accepted.answer(AckCode::AA, None);
                    let not_stored =
                        accepted.answer(AckCode::AR, Some(&AckError::new(207, "not stored")));
                    if !enhanced {
                        assert!(stored.is_some() && not_stored.is_some());
                    }
                    // The ACK sent after the commit is a message with the
                    // right code; the others (journal failure, bot failure)
                    // are built the same way.
                    if let Some(ack) = stored {
                        assert_ack(&accepted.charset.decode(&ack).unwrap(), ok);
                    }
                    if let Some(ack) = not_stored {
                        assert!(has_msa(&ack, not_ok));
                    }
                    let failed = AckError::new(207, "processing failed (event 1)");
                    let ack = accepted.application(AckCode::AE, Some(&failed));
                    assert!(has_msa(&ack, "AE"));
                }
            }
        }
    }
}

/// A refusal is built as UTF-8 whatever the input was.
fn utf8(ack: &[u8]) -> String {
    String::from_utf8(ack.to_vec()).expect("a refusal is UTF-8")
}

/// `text` is an HL7 ACK with MSA-1 = `code`.
fn assert_ack(text: &str, code: &str) {
    let msg = Message::parse(text).unwrap_or_else(|e| panic!("ACK does not parse: {e}: {text:?}"));
    assert_eq!(msg.get_raw("MSA-1"), Some(code), "{text:?}");
}

/// `ack` starts with MSH and has MSA-1 = `code` (whatever the separator).
fn has_msa(ack: &[u8], code: &str) -> bool {
    ack.starts_with(b"MSH")
        && ack
            .windows(6)
            .any(|w| &w[..3] == b"MSA" && &w[4..] == code.as_bytes())
}
