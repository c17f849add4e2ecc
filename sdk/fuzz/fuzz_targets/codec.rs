//! Fuzz target for the HL7 codec: decode, parse, read every path, render,
//! set, encode and re-parse whatever the fuzzer makes. Any panic, hang or
//! runaway allocation is a bug; so is a message that does not survive its
//! own round trip.

#![no_main]

use interlink_sdk::hl7::{
    AckCode, AckError, AckMode, Batch, Charset, Message, Timestamp, ack, charset, split_messages,
};
use libfuzzer_sys::fuzz_target;

fn exercise(text: &str) {
    let _ = split_messages(text);
    let _ = Batch::parse(text).map(|b| b.encode());
    let _ = text
        .parse::<Timestamp>()
        .map(|t| (t.to_string(), t.in_zone("America/Chicago")));
    let Ok(mut m) = Message::parse(text) else {
        return;
    };

    // Round trip: what we write, we read back identically.
    let encoded = m.encode();
    let again = Message::parse(&encoded).expect("an encoded message parses");
    assert_eq!(again, m);
    assert_eq!(again.encode(), encoded);

    // Read the paths the message has (bounded, to keep runs fast).
    let mut seen: Vec<&str> = Vec::new();
    for seg in m.segments().take(8) {
        let valid_id = seg.id.len() == 3
            && seg
                .id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        let occurrence = seen.iter().filter(|s| **s == seg.id).count() + 1;
        seen.push(seg.id);
        let tree = seg.tree();
        if !valid_id {
            continue;
        }
        for (f, reps) in tree.iter().enumerate().take(12) {
            for (r, comps) in reps.iter().enumerate().take(3) {
                let field = format!("{}[{occurrence}]-{}[{}]", seg.id, f + 1, r + 1);
                let _ = m.get(&field);
                let _ = m.plain_text(&field);
                let _ = m.is_null(&field);
                for (c, subs) in comps.iter().enumerate().take(4) {
                    let _ = m.get(&format!("{field}.{}", c + 1));
                    for s in 0..subs.len().min(2) {
                        let _ = m.get(&format!("{field}.{}.{}", c + 1, s + 1));
                    }
                }
            }
        }
    }

    let _ = AckMode::of(&m);
    let _ = ack(
        &m,
        AckCode::AE,
        Some(&AckError::new(207, text.get(..40).unwrap_or(""))),
        "1",
    );
    let _ = m.encode_to(Charset::Latin1);
    let _ = m.encode_to(Charset::Gb18030);

    // A value set at a path reads back.
    let value = text.get(..text.len().min(64)).unwrap_or("");
    m.set("ZZZ[2]-3[2].2.2", value)
        .expect("setting a valid path");
    assert_eq!(m.get("ZZZ[2]-3[2].2.2").as_deref(), Some(value));
    let again = Message::parse(&m.encode()).expect("a modified message parses");
    assert_eq!(again, m);
}

fuzz_target!(|data: &[u8]| {
    let _ = charset::declared_charset(data);
    if let Ok(m) = Message::decode(data, Charset::Latin1) {
        exercise(m.as_str());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        exercise(text);
    }
});
