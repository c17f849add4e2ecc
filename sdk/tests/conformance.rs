//! Conformance fixtures for the HL7 codec, written for this project: each
//! asserts exact values and the exact bytes the message encodes back to.

use interlink_sdk::hl7::{
    AckCode, AckError, Batch, Charset, Error, Message, ack, escape, plain_text, split_messages,
    unescape,
};

/// Parses, checks the round trip to the same text, and returns the message.
fn round_trip(text: &str) -> Message {
    let m = Message::parse(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(m.encode(), text, "re-encoded bytes differ");
    assert_eq!(Message::parse(&m.encode()).unwrap(), m);
    m
}

#[test]
fn every_escape_sequence() {
    let m = round_trip(
        "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|E1|P|2.5\r\
         OBX|1|FT|||pipe \\F\\ caret \\S\\ amp \\T\\ tilde \\R\\ backslash \\E\\ hex \\X41\\ cr \\X0D\\ end\r\
         OBX|2|FT|||\\H\\Bold\\N\\ line\\.br\\next\\.sp 2\\two\\.sk 2\\x\\.ce\\centre\\.in 1\\y\\.ti 1\\z\r\
         OBX|3|ST|||charset \\C2842\\ switch \\M2442\\ kept\r\
         OBX|4|ST|||unknown \\Q\\ unterminated \\E\r",
    );
    assert_eq!(
        m.get("OBX-5").unwrap(),
        "pipe | caret ^ amp & tilde ~ backslash \\ hex A cr \r end"
    );
    assert_eq!(
        m.get("OBX[2]-5").unwrap(),
        "\\H\\Bold\\N\\ line\\.br\\next\\.sp 2\\two\\.sk 2\\x\\.ce\\centre\\.in 1\\y\\.ti 1\\z"
    );
    assert_eq!(
        m.plain_text("OBX[2]-5").unwrap(),
        "Bold line\nnext\n\ntwo  x\ncentre y z"
    );
    assert_eq!(
        m.get("OBX[3]-5").unwrap(),
        "charset \\C2842\\ switch \\M2442\\ kept"
    );
    assert_eq!(m.get("OBX[4]-5").unwrap(), "unknown \\Q\\ unterminated \\E");
}

#[test]
fn odd_delimiters_and_the_truncation_character() {
    let text = "MSH#$*@!%#APP#FAC#R#RF#20260101##ADT$A04#T1#P#2.7\rPID#1##ID1$$$AUTH*ID2##O@E@Brien$Pat\rNTE#1##100@P@";
    let m = Message::parse(text).unwrap();
    assert_eq!(m.get("MSH-1").unwrap(), "#");
    assert_eq!(m.get("MSH-2").unwrap(), "$*@!%");
    assert_eq!(m.message_type(), "ADT$A04");
    assert_eq!(m.get("MSH-9.2").unwrap(), "A04");
    assert_eq!(m.get("PID-3[2]").unwrap(), "ID2");
    assert_eq!(m.get("PID-3.4").unwrap(), "AUTH");
    assert_eq!(m.get("PID-5.1").unwrap(), "O@Brien");
    assert_eq!(m.get("PID-5.1.1").unwrap(), "O@Brien");
    assert_eq!(m.get("NTE-3").unwrap(), "100%");
    assert_eq!(m.encode(), format!("{text}\r"));
    let d = m.delimiters();
    assert_eq!(escape("a#b$c*d!e%f@g", d), "a@F@b@S@c@R@d@T@e@P@f@E@g");
    assert_eq!(unescape("a@F@b@S@c@R@d@T@e@P@f@E@g", d), "a#b$c*d!e%f@g");
}

#[test]
fn segment_terminators_bom_and_trailing_parts() {
    let canonical = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|T1|P|2.5\rPID|1||X^^^|\r";
    for variant in [
        canonical.to_string(),
        canonical.replace('\r', "\n"),
        canonical.replace('\r', "\r\n"),
        format!("\u{feff}{canonical}"),
        format!("{canonical}\r\r\n\n"),
    ] {
        let m = Message::parse(&variant).unwrap();
        assert_eq!(m.encode(), canonical, "{variant:?}");
    }
    // Trailing delimiters are kept as they were.
    let m = round_trip(canonical);
    assert_eq!(m.get_raw("PID-3").unwrap(), "X^^^");
    assert_eq!(m.get("PID-3.4").unwrap(), "");
    assert_eq!(m.get("PID-3.5"), None);
    assert_eq!(m.get("PID-4").unwrap(), "");
    assert_eq!(m.get("PID-5"), None);
}

#[test]
fn empty_and_null_are_distinct() {
    let m = round_trip("MSH|^~\\&|A|B|C|D|20260101||ADT^A08|T1|P|2.5\rPID|1||ID||\"\"|||\"\"^Jr\r");
    assert_eq!(m.get("PID-4").unwrap(), "");
    assert!(!m.is_null("PID-4"));
    assert_eq!(m.get("PID-5").unwrap(), "\"\"");
    assert!(m.is_null("PID-5"));
    assert!(m.is_null("PID-8.1"));
    assert!(!m.is_null("PID-8"));
    assert!(!m.is_null("PID-99"));
}

#[test]
fn deep_repetitions_and_huge_fields() {
    let reps: Vec<String> = (1..=500)
        .map(|i| format!("ID{i}^^^AUTH{i}&1.2.{i}&ISO"))
        .collect();
    let huge = "x".repeat(5_000_000);
    let text = format!(
        "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|T1|P|2.5\rPID|1||{}\rOBX|1|ED|||{huge}\r",
        reps.join("~")
    );
    let m = round_trip(&text);
    assert_eq!(m.get("PID-3[500].1").unwrap(), "ID500");
    assert_eq!(m.get("PID-3[250].4.2").unwrap(), "1.2.250");
    assert_eq!(m.get("PID-3[501]"), None);
    assert_eq!(m.get("OBX-5").unwrap().len(), 5_000_000);
    assert_eq!(
        Message::parse_limited(&text, 1 << 20).unwrap_err(),
        Error::TooLarge {
            size: text.len(),
            max: 1 << 20
        }
    );
}

#[test]
fn charsets_from_msh18_with_real_bytes() {
    let mut latin1 =
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A04|T1|P|2.5||||||8859/1\rPID|1||1||M".to_vec();
    latin1.extend_from_slice(b"\xfcller^J\xfcrgen\r");
    let m = Message::decode(&latin1, Charset::Utf8).unwrap();
    assert_eq!(m.get("PID-5.1").unwrap(), "Müller");
    assert_eq!(m.get("PID-5.2").unwrap(), "Jürgen");
    assert_eq!(m.encode_to(Charset::Latin1).unwrap(), latin1);
    // The same message for a UTF-8 receiver declares UTF-8.
    let utf8 = m.encode_to(Charset::Utf8).unwrap();
    assert!(
        String::from_utf8(utf8)
            .unwrap()
            .contains("|UNICODE UTF-8\rPID|1||1||Müller^Jürgen\r")
    );

    let cases: &[(&str, &[u8], &str)] = &[
        ("8859/2", b"\xa3\xf3d\xbc", "Łódź"),
        ("8859/5", b"\xb8\xd2\xd0\xdd", "Иван"),
        ("8859/7", b"\xc1\xe8\xde\xed\xe1", "Αθήνα"),
        ("8859/15", b"\xa4", "€"),
        ("UNICODE UTF-8", "Zoë Ñandú".as_bytes(), "Zoë Ñandú"),
        ("GB 18030-2000", b"\xd5\xc5\xc8\xfd", "张三"),
        ("BIG-5", b"\xb1\x69\xa4\x54", "張三"),
        ("KS X 1001", b"\xc8\xab\xb1\xe6\xb5\xbf", "홍길동"),
        ("ASCII", b"Plain", "Plain"),
    ];
    for (msh18, bytes, text) in cases {
        let mut raw =
            format!("MSH|^~\\&|A|B|C|D|20260101||ADT^A04|T1|P|2.5||||||{msh18}\rPID|1||1||")
                .into_bytes();
        raw.extend_from_slice(bytes);
        raw.push(b'\r');
        let m = Message::decode(&raw, Charset::Ascii).unwrap_or_else(|e| panic!("{msh18}: {e}"));
        assert_eq!(m.get("PID-5").unwrap(), *text, "{msh18}");
        let charset = Charset::from_msh18(msh18).unwrap();
        assert_eq!(m.encode_to(charset).unwrap(), raw, "{msh18}");
    }
}

#[test]
fn charset_errors_name_the_position() {
    // Empty MSH-18: the caller's fallback applies.
    let raw = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A04|T1|P|2.5\rPID|1||1||M\xfcller\r";
    let m = Message::decode(raw, Charset::Latin1).unwrap();
    assert_eq!(m.get("PID-5").unwrap(), "Müller");
    let err = Message::decode(raw, Charset::Utf8).unwrap_err();
    assert_eq!(
        err,
        Error::Undecodable {
            charset: Charset::Utf8,
            position: 55
        }
    );
    assert_eq!(err.to_string(), "byte 55 is not valid utf-8");
    let bad = b"MSH|^~\\&|A|B|C|D|1||ADT^A04|T1|P|2.5||||||EBCDIC\r";
    assert_eq!(
        Message::decode(bad, Charset::Utf8).unwrap_err(),
        Error::UnsupportedCharset("EBCDIC".into())
    );
    // The position is in the text being written, MSH-18 already set.
    let euro = Message::parse("MSH|^~\\&|A\rNTE|1||5 €\r").unwrap();
    assert_eq!(
        euro.encode_to(Charset::Latin1).unwrap_err(),
        Error::Unencodable {
            charset: Charset::Latin1,
            position: 41,
            ch: '€'
        }
    );
}

#[test]
fn batches_good_and_bad() {
    let good = "FHS|^~\\&|LAB|HOSP|||20260101\r\
                BHS|^~\\&|LAB|HOSP|||20260101\r\
                MSH|^~\\&|LAB|HOSP|EHR|H|20260101||ORU^R01|1|P|2.5\rOBX|1|NM|GLU||5.4\r\
                MSH|^~\\&|LAB|HOSP|EHR|H|20260101||ORU^R01|2|P|2.5\rOBX|1|NM|GLU||6.1\r\
                BTS|2\r\
                BHS|^~\\&|LAB|HOSP|||20260101\r\
                MSH|^~\\&|LAB|HOSP|EHR|H|20260101||ORU^R01|3|P|2.5\rOBX|1|NM|K||4.0\r\
                BTS|1\r\
                FTS|2\r";
    let b = Batch::parse(good).unwrap();
    assert_eq!(b.groups.len(), 2);
    let ids: Vec<String> = b
        .messages()
        .map(|m| Message::parse(m).unwrap().control_id().into_owned())
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert_eq!(b.encode(), good);
    assert_eq!(split_messages(good).len(), 3);

    for (bad, why) in [
        (
            good.replace("BTS|2", "BTS|5"),
            "BTS says 5 messages, found 2",
        ),
        (
            good.replace("FTS|2", "FTS|1"),
            "FTS says 1 batches, found 2",
        ),
        (
            good.replace("BTS|1", "BTS|one"),
            "BTS says one messages, found 1",
        ),
    ] {
        assert_eq!(Batch::parse(&bad).unwrap_err(), Error::BadBatch(why.into()));
    }
    assert!(Batch::parse(&format!("{good}FHS|^~\\&\r")).is_err());
}

#[test]
fn acks_for_every_mode() {
    let orig = Message::parse(
        "MSH|^~\\&|MOD|US|INTERLINK|BF|20260101||ORU^R01^ORU_R01|X9|T|2.5.1|||AL|ER\rOBX|1\r",
    )
    .unwrap();
    let ca = ack(&orig, AckCode::CA, None, "K1");
    assert_eq!(
        ca.encode(),
        format!(
            "MSH|^~\\&|INTERLINK|BF|MOD|US|{}||ACK^R01^ACK|K1|T|2.5.1\rMSA|CA|X9\r",
            ca.get("MSH-7").unwrap()
        )
    );
    let ar = ack(
        &orig,
        AckCode::AR,
        Some(&AckError::new(200, "ORU^R01 is not accepted here")),
        "K2",
    );
    let segs: Vec<&str> = ar.segments().map(|s| s.text).collect();
    assert_eq!(segs[1], "MSA|AR|X9|ORU\\S\\R01 is not accepted here");
    assert_eq!(
        segs[2],
        "ERR|||200^Unsupported message type^HL70357|E||||ORU\\S\\R01 is not accepted here"
    );
}

#[test]
fn paths_set_and_create_structure() {
    let mut m = Message::parse("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|T1|P|2.5\rPID|1\r").unwrap();
    m.set("PID-5.1", "Doe").unwrap();
    m.set("PID-5.2", "Jane").unwrap();
    m.set("PID-3[2].4.2", "2.16.840").unwrap();
    m.set("OBX[2]-5", "a|b").unwrap();
    m.set("MSH-9.2", "A08").unwrap();
    assert_eq!(
        m.encode(),
        "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|T1|P|2.5\rPID|1||~^^^&2.16.840||Doe^Jane\rOBX\rOBX|||||a\\F\\b\r"
    );
    assert_eq!(m.get("OBX[2]-5").unwrap(), "a|b");
    assert_eq!(plain_text(r"x\.br\y", m.delimiters()), "x\ny");
}

#[test]
fn malformed_later_msh_segments_do_not_panic() {
    for text in [
        "MSH|^~\\&|A\rMSH\r",
        "MSH|^~\\&|A\rMSHÑ|x\r",
        "MSH|^~\\&|A\rMSH|\r",
    ] {
        let m = Message::parse(text).unwrap();
        for seg in m.segments() {
            let _ = seg.tree();
        }
        for p in ["MSH[2]-1", "MSH[2]-2", "MSH[2]-3", "MSH[2]-1.1"] {
            let _ = m.get(p);
        }
    }
    let m = Message::parse("MSH|^~\\&|A\rMSH\r").unwrap();
    assert_eq!(m.get("MSH[2]-1"), None);
}

#[test]
fn batch_errors_on_non_ascii_segments_do_not_panic() {
    let err = Batch::parse("Pû|1\r").unwrap_err();
    assert_eq!(
        err,
        Error::BadBatch("segment \"Pû|\" outside a message".into())
    );
}
