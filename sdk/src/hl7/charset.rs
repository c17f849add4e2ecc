//! Character sets: which one a message declares in MSH-18 (HL7 table 0211),
//! decoding received bytes to text and encoding text for a receiver.
//!
//! Supported: `ASCII`, `8859/1` to `8859/9`, `8859/15`, `UNICODE UTF-8`
//! (also `UNICODE`), `GB 18030-2000`, `BIG-5`, `KS X 1001` and
//! `ISO IR87`/`ISO IR159`/`ISO IR14` as Shift_JIS, plus the `ISO IR6`,
//! `ISO IR100`, `ISO IR101`, `ISO IR109`, `ISO IR110`, `ISO IR144`,
//! `ISO IR127`, `ISO IR126`, `ISO IR138` and `ISO IR148` aliases of ASCII
//! and the 8859 parts. `8859/9` is decoded as its superset windows-1254.
//! Bytes a charset cannot decode, and characters it cannot encode, are
//! errors naming the position: nothing is silently replaced.

use std::borrow::Cow;
use std::fmt;

use super::Error;

/// A character set a message can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    Ascii,
    /// ISO-8859-1, decoded byte for byte.
    Latin1,
    /// Another part of ISO 8859: 2 to 9, or 15.
    Iso8859(u8),
    Utf8,
    Gb18030,
    Big5,
    /// KS X 1001 as EUC-KR.
    EucKr,
    /// The Japanese sets as Shift_JIS.
    ShiftJis,
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "charsets")]
fn encoding(c: Charset) -> Option<&'static encoding_rs::Encoding> {
    use encoding_rs::*;
    Some(match c {
        Charset::Iso8859(2) => ISO_8859_2,
        Charset::Iso8859(3) => ISO_8859_3,
        Charset::Iso8859(4) => ISO_8859_4,
        Charset::Iso8859(5) => ISO_8859_5,
        Charset::Iso8859(6) => ISO_8859_6,
        Charset::Iso8859(7) => ISO_8859_7,
        Charset::Iso8859(8) => ISO_8859_8,
        Charset::Iso8859(9) => WINDOWS_1254,
        Charset::Iso8859(15) => ISO_8859_15,
        Charset::Gb18030 => GB18030,
        Charset::Big5 => BIG5,
        Charset::EucKr => EUC_KR,
        Charset::ShiftJis => SHIFT_JIS,
        _ => return None,
    })
}

impl Charset {
    /// The charset an MSH-18 value names; `None` for an unknown value.
    pub fn from_msh18(value: &str) -> Option<Charset> {
        let v = value.trim().to_ascii_uppercase();
        Some(match v.as_str() {
            "ASCII" | "ISO IR6" => Charset::Ascii,
            "8859/1" | "ISO IR100" => Charset::Latin1,
            "8859/2" | "ISO IR101" => Charset::Iso8859(2),
            "8859/3" | "ISO IR109" => Charset::Iso8859(3),
            "8859/4" | "ISO IR110" => Charset::Iso8859(4),
            "8859/5" | "ISO IR144" => Charset::Iso8859(5),
            "8859/6" | "ISO IR127" => Charset::Iso8859(6),
            "8859/7" | "ISO IR126" => Charset::Iso8859(7),
            "8859/8" | "ISO IR138" => Charset::Iso8859(8),
            "8859/9" | "ISO IR148" => Charset::Iso8859(9),
            "8859/15" => Charset::Iso8859(15),
            "UNICODE UTF-8" | "UNICODE" | "UTF-8" => Charset::Utf8,
            "GB 18030-2000" => Charset::Gb18030,
            "BIG-5" => Charset::Big5,
            "KS X 1001" => Charset::EucKr,
            "ISO IR87" | "ISO IR159" | "ISO IR14" => Charset::ShiftJis,
            _ => return None,
        })
        .filter(|c| c.available())
    }

    /// A charset by its common name (`utf-8`, `iso-8859-1`, `latin1`,
    /// `gb18030`, …) or its MSH-18 value.
    pub fn from_name(name: &str) -> Option<Charset> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        let c = match n.as_str() {
            "utf-8" | "utf8" => Charset::Utf8,
            "ascii" | "us-ascii" => Charset::Ascii,
            "iso-8859-1" | "latin1" | "latin-1" => Charset::Latin1,
            "iso-8859-15" | "latin9" => Charset::Iso8859(15),
            "gb18030" => Charset::Gb18030,
            "big5" => Charset::Big5,
            "euc-kr" => Charset::EucKr,
            "shift-jis" | "sjis" => Charset::ShiftJis,
            _ => match n
                .strip_prefix("iso-8859-")
                .and_then(|p| p.parse::<u8>().ok())
            {
                Some(p @ 2..=9) => Charset::Iso8859(p),
                _ => return Charset::from_msh18(name),
            },
        };
        Some(c).filter(|c| c.available())
    }

    /// Whether this build can convert the charset (the multi-byte and
    /// non-Latin-1 8859 sets need the `charsets` feature).
    pub fn available(self) -> bool {
        match self {
            Charset::Ascii | Charset::Latin1 | Charset::Utf8 => true,
            #[cfg(feature = "charsets")]
            _ => encoding(self).is_some(),
            #[cfg(not(feature = "charsets"))]
            _ => false,
        }
    }

    /// The value for MSH-18.
    pub fn msh18(self) -> &'static str {
        match self {
            Charset::Ascii => "ASCII",
            Charset::Latin1 => "8859/1",
            Charset::Iso8859(2) => "8859/2",
            Charset::Iso8859(3) => "8859/3",
            Charset::Iso8859(4) => "8859/4",
            Charset::Iso8859(5) => "8859/5",
            Charset::Iso8859(6) => "8859/6",
            Charset::Iso8859(7) => "8859/7",
            Charset::Iso8859(8) => "8859/8",
            Charset::Iso8859(9) => "8859/9",
            Charset::Iso8859(_) => "8859/15",
            Charset::Utf8 => "UNICODE UTF-8",
            Charset::Gb18030 => "GB 18030-2000",
            Charset::Big5 => "BIG-5",
            Charset::EucKr => "KS X 1001",
            Charset::ShiftJis => "ISO IR87",
        }
    }

    /// A common name, as used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Ascii => "ascii",
            Charset::Latin1 => "iso-8859-1",
            Charset::Iso8859(2) => "iso-8859-2",
            Charset::Iso8859(3) => "iso-8859-3",
            Charset::Iso8859(4) => "iso-8859-4",
            Charset::Iso8859(5) => "iso-8859-5",
            Charset::Iso8859(6) => "iso-8859-6",
            Charset::Iso8859(7) => "iso-8859-7",
            Charset::Iso8859(8) => "iso-8859-8",
            Charset::Iso8859(9) => "iso-8859-9",
            Charset::Iso8859(_) => "iso-8859-15",
            Charset::Utf8 => "utf-8",
            Charset::Gb18030 => "gb18030",
            Charset::Big5 => "big5",
            Charset::EucKr => "euc-kr",
            Charset::ShiftJis => "shift_jis",
        }
    }

    /// Decodes bytes, failing at the first byte that is not valid.
    pub fn decode(self, bytes: &[u8]) -> Result<Cow<'_, str>, Error> {
        let bad = |position| Error::Undecodable {
            charset: self,
            position,
        };
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|e| bad(e.valid_up_to())),
            Charset::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
                Some(p) => Err(bad(p)),
                None => Ok(Cow::Borrowed(
                    std::str::from_utf8(bytes).expect("ASCII is UTF-8"),
                )),
            },
            Charset::Latin1 => match std::str::from_utf8(bytes) {
                Ok(s) if s.is_ascii() => Ok(Cow::Borrowed(s)),
                _ => Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect())),
            },
            #[cfg(feature = "charsets")]
            other => decode_with(encoding(other).expect("available charset"), bytes).map_err(bad),
            #[cfg(not(feature = "charsets"))]
            other => Err(Error::UnsupportedCharset(other.msh18().to_string())),
        }
    }

    /// Encodes text, failing at the first character the charset lacks.
    pub fn encode(self, text: &str) -> Result<Cow<'_, [u8]>, Error> {
        let lacks = |position: usize, ch: char| Error::Unencodable {
            charset: self,
            position,
            ch,
        };
        match self {
            Charset::Utf8 => Ok(Cow::Borrowed(text.as_bytes())),
            _ if text.is_ascii() && self != Charset::ShiftJis => Ok(Cow::Borrowed(text.as_bytes())),
            Charset::Ascii | Charset::Latin1 => {
                let limit = if self == Charset::Ascii { 0x7f } else { 0xff };
                text.char_indices()
                    .map(|(i, c)| {
                        if (c as u32) <= limit {
                            Ok(c as u8)
                        } else {
                            Err(lacks(i, c))
                        }
                    })
                    .collect::<Result<Vec<u8>, Error>>()
                    .map(Cow::Owned)
            }
            #[cfg(feature = "charsets")]
            other => encode_with(encoding(other).expect("available charset"), text)
                .map(Cow::Owned)
                .map_err(|(i, c)| lacks(i, c)),
            #[cfg(not(feature = "charsets"))]
            other => Err(Error::UnsupportedCharset(other.msh18().to_string())),
        }
    }
}

#[cfg(feature = "charsets")]
fn decode_with(
    enc: &'static encoding_rs::Encoding,
    bytes: &[u8],
) -> Result<Cow<'static, str>, usize> {
    use encoding_rs::DecoderResult;
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len() * 3),
    );
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(Cow::Owned(out)),
        DecoderResult::Malformed(bad, after) => Err(read - bad as usize - after as usize),
        DecoderResult::OutputFull => Err(read),
    }
}

#[cfg(feature = "charsets")]
fn encode_with(enc: &'static encoding_rs::Encoding, text: &str) -> Result<Vec<u8>, (usize, char)> {
    use encoding_rs::EncoderResult;
    let mut encoder = enc.new_encoder();
    let mut out = Vec::with_capacity(
        encoder
            .max_buffer_length_from_utf8_without_replacement(text.len())
            .unwrap_or(text.len() * 4),
    );
    let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(text, &mut out, true);
    match result {
        EncoderResult::InputEmpty => Ok(out),
        EncoderResult::Unmappable(c) => Err((read - c.len_utf8(), c)),
        EncoderResult::OutputFull => Err((read, '\u{fffd}')),
    }
}

/// MSH-18 (its first repetition) of the first MSH segment in raw bytes, if
/// present; batch header segments before it are skipped. Only the MSH
/// segment is looked at, which HL7 requires to be ASCII-compatible.
pub fn declared_charset(bytes: &[u8]) -> Option<&str> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let msh = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .take(8)
        .find(|seg| seg.starts_with(b"MSH"))?;
    if msh.len() < 8 {
        return None;
    }
    let (sep, rep) = (msh[3], msh[5]);
    let field = msh.split(|&b| b == sep).nth(17)?;
    let first = field.split(|&b| b == rep).next()?;
    std::str::from_utf8(first)
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The charset raw bytes declare in MSH-18, or `fallback` when MSH-18 is
/// empty. An MSH-18 this module does not know is an error.
pub fn charset_of(bytes: &[u8], fallback: Charset) -> Result<Charset, Error> {
    match declared_charset(bytes) {
        None => Ok(fallback),
        Some(v) => Charset::from_msh18(v).ok_or_else(|| Error::UnsupportedCharset(v.to_string())),
    }
}

/// Received bytes as text: decoded in the character set MSH-18 declares (or
/// `fallback` when MSH-18 is empty), a UTF-8 BOM dropped. Returns the
/// character set with the text, so an answer can be written back in it.
/// This is the one way HL7 bytes are read, by the SDK and by the host.
pub fn decode_declared(bytes: &[u8], fallback: Charset) -> Result<(Charset, Cow<'_, str>), Error> {
    let charset = charset_of(bytes, fallback)?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    Ok((charset, charset.decode(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in [
            Charset::Ascii,
            Charset::Latin1,
            Charset::Iso8859(2),
            Charset::Iso8859(15),
            Charset::Utf8,
            Charset::Gb18030,
            Charset::Big5,
            Charset::EucKr,
        ] {
            assert_eq!(Charset::from_msh18(c.msh18()), Some(c));
            assert_eq!(Charset::from_name(c.name()), Some(c));
        }
        assert_eq!(Charset::from_msh18("ebcdic"), None);
    }

    #[test]
    fn decodes_real_bytes() {
        assert_eq!(Charset::Latin1.decode(b"M\xfcller").unwrap(), "Müller");
        assert_eq!(
            Charset::Iso8859(2).decode(b"\xa3\xf3d\xbc").unwrap(),
            "Łódź"
        );
        assert_eq!(
            Charset::Iso8859(5).decode(b"\xb8\xd2\xd0\xdd").unwrap(),
            "Иван"
        );
        assert_eq!(
            Charset::Iso8859(7).decode(b"\xc1\xe8\xde\xed\xe1").unwrap(),
            "Αθήνα"
        );
        assert_eq!(Charset::Iso8859(15).decode(b"\xa4").unwrap(), "€");
        assert_eq!(
            Charset::Gb18030.decode(b"\xd5\xc5\xc8\xfd").unwrap(),
            "张三"
        );
        assert_eq!(Charset::Utf8.decode("Zoë".as_bytes()).unwrap(), "Zoë");
    }

    #[test]
    fn undecodable_bytes_name_their_position() {
        assert_eq!(
            Charset::Utf8.decode(b"PID|M\xfcller").unwrap_err(),
            Error::Undecodable {
                charset: Charset::Utf8,
                position: 5
            }
        );
        assert_eq!(
            Charset::Ascii.decode(b"ab\xe9").unwrap_err(),
            Error::Undecodable {
                charset: Charset::Ascii,
                position: 2
            }
        );
        assert_eq!(
            Charset::Gb18030.decode(b"ab\xd5").unwrap_err(),
            Error::Undecodable {
                charset: Charset::Gb18030,
                position: 2
            }
        );
    }

    #[test]
    fn encodes_or_names_the_missing_character() {
        assert_eq!(
            Charset::Latin1.encode("Müller").unwrap().as_ref(),
            b"M\xfcller"
        );
        assert_eq!(
            Charset::Iso8859(2).encode("Łódź").unwrap().as_ref(),
            b"\xa3\xf3d\xbc"
        );
        assert_eq!(
            Charset::Latin1.encode("ab€").unwrap_err(),
            Error::Unencodable {
                charset: Charset::Latin1,
                position: 2,
                ch: '€'
            }
        );
        assert_eq!(
            Charset::Iso8859(5).encode("Иван ü").unwrap_err(),
            Error::Unencodable {
                charset: Charset::Iso8859(5),
                position: 9,
                ch: 'ü'
            }
        );
    }

    #[test]
    fn reads_msh18_from_bytes() {
        let m = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5||||||8859/1~UNICODE UTF-8\rPID|1\r";
        assert_eq!(declared_charset(m), Some("8859/1"));
        assert_eq!(charset_of(m, Charset::Utf8).unwrap(), Charset::Latin1);
        assert_eq!(
            charset_of(b"MSH|^~\\&|A\r", Charset::Ascii).unwrap(),
            Charset::Ascii
        );
        let bad = b"MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5||||||EBCDIC\r";
        assert_eq!(
            charset_of(bad, Charset::Utf8).unwrap_err(),
            Error::UnsupportedCharset("EBCDIC".into())
        );
        let batch = b"FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5||||||8859/15\r";
        assert_eq!(
            charset_of(batch, Charset::Utf8).unwrap(),
            Charset::Iso8859(15)
        );
    }
}
