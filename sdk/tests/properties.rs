//! Property tests of the HL7 codec: escaping round-trips for any text and
//! any delimiters, parsed messages encode back to their input (modulo the
//! documented normalisations), and a value set at a path reads back.

use interlink_sdk::hl7::{Delimiters, Message, escape, unescape};
use proptest::prelude::*;

/// Five or six distinct delimiter characters, as MSH-1/MSH-2 would declare.
fn delimiters() -> impl Strategy<Value = Delimiters> {
    let pool: Vec<char> = "|^~\\&#$*@!%+:;/".chars().collect();
    (
        proptest::sample::subsequence(pool, 6).prop_shuffle(),
        any::<bool>(),
    )
        .prop_map(|(chars, trunc)| {
            let n = if trunc { 6 } else { 5 };
            let header: String =
                format!("MSH{}{}", chars[0], chars[1..n].iter().collect::<String>());
            Delimiters::from_msh(format!("{header}{}", chars[0]).as_bytes())
                .unwrap()
                .0
        })
}

/// What `Message::encode` is documented to return for accepted input.
fn normalise(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split(['\r', '\n'])
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}\r"))
        .collect()
}

fn leaf_path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["PID", "OBX", "ZZZ"]),
        1usize..3,
        1usize..12,
        1usize..4,
        prop::option::of((1usize..5, prop::option::of(1usize..4))),
    )
        .prop_map(|(seg, occ, field, rep, deeper)| {
            let mut p = format!("{seg}[{occ}]-{field}[{rep}]");
            if let Some((c, s)) = deeper {
                p.push_str(&format!(".{c}"));
                if let Some(s) = s {
                    p.push_str(&format!(".{s}"));
                }
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn escape_then_unescape_is_identity(text in any::<String>(), d in delimiters()) {
        let escaped = escape(&text, &d);
        let back = unescape(&escaped, &d).into_owned();
        prop_assert_eq!(back, text);
    }

    #[test]
    fn escaped_text_holds_no_bare_delimiters(text in any::<String>(), d in delimiters()) {
        let e = escape(&text, &d);
        let bare = [d.field, d.component, d.repetition, d.subcomponent, b'\r', b'\n'];
        prop_assert!(!e.bytes().any(|b| bare.contains(&b) || Some(b) == d.truncation));
    }

    #[test]
    fn accepted_messages_encode_back_to_their_input(
        body in "[A-Z0-9|^~\\\\&\r\n \"é#]{0,300}",
        bom in any::<bool>(),
    ) {
        let text = format!("{}MSH|^~\\&|{body}", if bom { "\u{feff}" } else { "" });
        if let Ok(m) = Message::parse(&text) {
            prop_assert_eq!(m.encode(), normalise(&text));
            prop_assert_eq!(Message::parse(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), path in leaf_path()) {
        if let Ok(mut m) = Message::parse(&text) {
            let _ = m.get(&path);
            let _ = m.set(&path, &text);
            let _ = m.encode();
        }
    }

    #[test]
    fn a_value_set_at_a_path_reads_back(
        sets in prop::collection::vec((leaf_path(), any::<String>()), 1..12),
    ) {
        let mut m = Message::parse("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1\r").unwrap();
        for (path, value) in &sets {
            m.set(path, value).unwrap();
            prop_assert_eq!(m.get(path).unwrap(), value.as_str(), "{}", path);
        }
        prop_assert_eq!(Message::parse(&m.encode()).unwrap(), m);
    }
}
