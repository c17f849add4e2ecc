//! HL7 escape sequences: `\F\ \S\ \T\ \R\ \E\` (and `\P\` when a truncation
//! character is declared) are decoded and encoded. Everything else between
//! escape characters (`\X..\`, `\H\`, `\.br\`, charset switches) is kept
//! verbatim, and so is an escape character without a closing one.

use std::borrow::Cow;

use super::Delimiters;

/// Decodes the escape sequences of one leaf value.
pub fn unescape<'a>(text: &'a str, d: &Delimiters) -> Cow<'a, str> {
    let esc = d.escape;
    if !text.as_bytes().contains(&esc) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] != esc {
            i += 1;
            continue;
        }
        let Some(close) = bytes[i + 1..].iter().position(|&b| b == esc) else {
            break;
        };
        let code = &bytes[i + 1..i + 1 + close];
        let decoded = match code {
            b"F" => Some(d.field),
            b"S" => Some(d.component),
            b"T" => Some(d.subcomponent),
            b"R" => Some(d.repetition),
            b"E" => Some(d.escape),
            b"P" => d.truncation,
            _ => None,
        };
        let end = i + close + 2;
        if let Some(ch) = decoded {
            out.push_str(&text[copied..i]);
            out.push(ch as char);
            copied = end;
        }
        i = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Encodes delimiter characters (and CR/LF) in `text` so it can stand as one
/// leaf value.
pub fn escape<'a>(text: &'a str, d: &Delimiters) -> Cow<'a, str> {
    let special = |b: u8| {
        b == d.field
            || b == d.component
            || b == d.subcomponent
            || b == d.repetition
            || b == d.escape
            || Some(b) == d.truncation
            || b == b'\r'
            || b == b'\n'
    };
    if !text.bytes().any(special) {
        return Cow::Borrowed(text);
    }
    let e = d.escape as char;
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        let code = match ch as u32 {
            c if c > 0x7f => None,
            c => {
                let b = c as u8;
                if b == d.field {
                    Some("F")
                } else if b == d.component {
                    Some("S")
                } else if b == d.subcomponent {
                    Some("T")
                } else if b == d.repetition {
                    Some("R")
                } else if b == d.escape {
                    Some("E")
                } else if Some(b) == d.truncation {
                    Some("P")
                } else if b == b'\r' {
                    Some("X0D")
                } else if b == b'\n' {
                    Some("X0A")
                } else {
                    None
                }
            }
        };
        match code {
            Some(code) => {
                out.push(e);
                out.push_str(code);
                out.push(e);
            }
            None => out.push(ch),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_delimiters() {
        let d = Delimiters::default();
        let raw = r"a|b^c&d~e\f";
        let enc = escape(raw, &d);
        assert_eq!(enc, r"a\F\b\S\c\T\d\R\e\E\f");
        assert_eq!(unescape(&enc, &d), raw);
    }

    #[test]
    fn keeps_unknown_and_broken_escapes() {
        let d = Delimiters::default();
        assert_eq!(unescape(r"\.br\x\H\y", &d), r"\.br\x\H\y");
        assert_eq!(unescape(r"tail \E", &d), r"tail \E");
        assert_eq!(unescape(r"\E\\", &d), r"\\");
        assert!(matches!(unescape("plain", &d), Cow::Borrowed(_)));
    }
}
