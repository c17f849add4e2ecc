//! HL7 escape sequences.
//!
//! Decoding a value ([`unescape`]) turns `\F\ \S\ \T\ \R\ \E\` (and `\P\`
//! when MSH-2 declares a truncation character) back into the delimiter, and
//! `\Xhh…\` hex data into text (as UTF-8 when the bytes are valid UTF-8,
//! otherwise one character per byte, ISO-8859-1). Formatting commands
//! (`\H\ \N\ \.br\ \.sp n\ \.in n\ \.ti n\ \.sk n\ \.ce\ \.fi\ \.nf\`) and
//! charset switches (`\Cxxyy\ \Mxxyyzz\`) are kept verbatim; [`plain_text`]
//! renders the formatting commands as plain text instead. An escape that is
//! unknown, malformed or not closed is kept verbatim: decoding never fails.
//!
//! Encoding ([`escape`]) writes the five delimiters (and the truncation
//! character) as their escapes and CR/LF as `\X0D\`/`\X0A\`, so any text can
//! stand as one value.

use std::borrow::Cow;

use super::Delimiters;

/// Decodes the escape sequences of one leaf value.
pub fn unescape<'a>(text: &'a str, d: &Delimiters) -> Cow<'a, str> {
    decode(text, d, false)
}

/// Decodes a value and renders formatting commands as plain text: `.br`
/// and `.ce` become a line break, `.sp n` n line breaks, `.sk n` and
/// `.in n`/`.ti n` n spaces; `\H\`, `\N\`, `.fi`, `.nf` and charset switches
/// are dropped.
pub fn plain_text(text: &str, d: &Delimiters) -> String {
    decode(text, d, true).into_owned()
}

fn hex_text(hex: &[u8]) -> Option<String> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = hex
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect();
    let bytes = bytes?;
    Some(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    })
}

/// The number after a formatting command (`.sp 2` → 2), 1 when absent.
fn count(arg: &[u8]) -> usize {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.trim().trim_start_matches('+').parse::<usize>().ok())
        .unwrap_or(1)
        .min(100)
}

fn decode<'a>(text: &'a str, d: &Delimiters, plain: bool) -> Cow<'a, str> {
    let esc = d.escape;
    let bytes = text.as_bytes();
    let Some(first) = memchr::memchr(esc, bytes) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    let mut i = first;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] != esc {
            i += 1;
            continue;
        }
        let Some(close) = memchr::memchr(esc, &bytes[i + 1..]) else {
            break;
        };
        let code = &bytes[i + 1..i + 1 + close];
        let end = i + close + 2;
        let single = |c: u8| Some((c as char).to_string());
        let replacement: Option<String> = match code {
            b"F" => single(d.field),
            b"S" => single(d.component),
            b"T" => single(d.subcomponent),
            b"R" => single(d.repetition),
            b"E" => single(d.escape),
            b"P" => d.truncation.and_then(single),
            [b'X', hex @ ..] => hex_text(hex),
            _ if !plain => None,
            b"H" | b"N" | b".fi" | b".nf" => Some(String::new()),
            [b'C' | b'M', ..] => Some(String::new()),
            b".br" | b".ce" => Some("\n".into()),
            [b'.', b's', b'p', arg @ ..] => Some("\n".repeat(count(arg))),
            [b'.', b's', b'k', arg @ ..]
            | [b'.', b'i', b'n', arg @ ..]
            | [b'.', b't', b'i', arg @ ..] => Some(" ".repeat(count(arg))),
            _ => None,
        };
        if let Some(r) = replacement {
            out.push_str(&text[copied..i]);
            out.push_str(&r);
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
    let code = |b: u8| -> Option<&'static str> {
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
    };
    // Delimiters are ASCII, so scanning bytes never splits a character.
    let bytes = text.as_bytes();
    let Some(first) = bytes.iter().position(|&b| code(b).is_some()) else {
        return Cow::Borrowed(text);
    };
    let e = d.escape as char;
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    let mut copied = first;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if let Some(c) = code(b) {
            out.push_str(&text[copied..i]);
            out.push(e);
            out.push_str(c);
            out.push(e);
            copied = i + 1;
        }
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_delimiters() {
        let d = Delimiters::default();
        let raw = "a|b^c&d~e\\f\r\ng";
        let enc = escape(raw, &d);
        assert_eq!(enc, r"a\F\b\S\c\T\d\R\e\E\f\X0D\\X0A\g");
        assert_eq!(unescape(&enc, &d), raw);
    }

    #[test]
    fn truncation_character_has_its_escape() {
        let (d, _) = Delimiters::from_msh(b"MSH|^~\\&#|").unwrap();
        assert_eq!(escape("a#b", &d), r"a\P\b");
        assert_eq!(unescape(r"a\P\b", &d), "a#b");
        // Without a declared truncation character, \P\ is kept verbatim.
        assert_eq!(unescape(r"a\P\b", &Delimiters::default()), r"a\P\b");
    }

    #[test]
    fn hex_data_decodes_as_utf8_or_latin1() {
        let d = Delimiters::default();
        assert_eq!(unescape(r"x\X0D0A\y", &d), "x\r\ny");
        assert_eq!(unescape(r"\XC3BC\", &d), "ü");
        assert_eq!(unescape(r"\XFC\", &d), "ü");
        assert_eq!(unescape(r"\X0\", &d), r"\X0\");
        assert_eq!(unescape(r"\XZZ\", &d), r"\XZZ\");
    }

    #[test]
    fn keeps_formatting_unknown_and_broken_escapes() {
        let d = Delimiters::default();
        assert_eq!(
            unescape(r"\.br\x\H\y\N\\C2842\", &d),
            r"\.br\x\H\y\N\\C2842\"
        );
        assert_eq!(unescape(r"tail \E", &d), r"tail \E");
        assert_eq!(unescape(r"\E\\", &d), r"\\");
        assert_eq!(unescape(r"\Q\", &d), r"\Q\");
        assert!(matches!(unescape("plain", &d), Cow::Borrowed(_)));
    }

    #[test]
    fn renders_formatting_as_plain_text() {
        let d = Delimiters::default();
        let ft = r"\H\Impression\N\:\.br\Normal.\.sp 2\Signed\.sk 3\Dr\S\X";
        assert_eq!(plain_text(ft, &d), "Impression:\nNormal.\n\nSigned   Dr^X");
        assert_eq!(plain_text(r"a\.ce\b\.in 2\c", &d), "a\nb  c");
    }
}
