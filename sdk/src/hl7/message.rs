//! [`Message`]: one HL7 v2 message as text plus a segment index.

use std::borrow::Cow;
use std::ops::Range;

use super::{Charset, Delimiters, Error, Path, charset, escape, plain_text, unescape};

/// One parsed HL7 v2 message.
///
/// Parsing normalises segment terminators to `\r` (accepting `\r`, `\n` and
/// `\r\n`), drops a leading UTF-8 BOM and empty segments, and otherwise keeps
/// the text byte for byte: [`Message::encode`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    text: String,
    delims: Delimiters,
    /// Byte range of each segment in `text`, without its terminator.
    segments: Vec<Range<usize>>,
}

/// A segment of a message: its three-letter id and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub id: &'a str,
    pub text: &'a str,
    delims: &'a Delimiters,
}

/// A field as a tree: repetitions of components of subcomponents, each
/// leaf decoded.
pub type FieldTree = Vec<Vec<Vec<String>>>;

impl<'a> Segment<'a> {
    /// The encoded text of each field, numbered from 1 as in HL7: for MSH,
    /// field 1 is the field separator and field 2 the encoding characters.
    pub fn fields(&self) -> Vec<&'a str> {
        let sep = self.delims.field;
        let mut parts: Vec<&'a str> = split(self.text, sep).skip(1).collect();
        if let Some(separator) = self.msh_separator() {
            parts.insert(0, separator);
        }
        parts
    }

    /// MSH-1 when this is an MSH segment whose fourth character is a
    /// one-byte field separator.
    fn msh_separator(&self) -> Option<&'a str> {
        if self.id == "MSH" {
            self.text.get(3..4)
        } else {
            None
        }
    }

    /// Every field as a tree of decoded values. MSH-1 and MSH-2 are single
    /// values, never split.
    pub fn tree(&self) -> Vec<FieldTree> {
        let d = self.delims;
        self.fields()
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                if self.msh_separator().is_some() && i < 2 {
                    return vec![vec![vec![f.to_string()]]];
                }
                split(f, d.repetition)
                    .map(|rep| {
                        split(rep, d.component)
                            .map(|c| {
                                split(c, d.subcomponent)
                                    .map(|s| unescape(s, d).into_owned())
                                    .collect()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }
}

/// `s` split by the byte `sep` (an ASCII delimiter).
fn split(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    s.split(sep as char)
}

/// Accessors for the delimiters that may appear inside an element.
type InnerDelimiters = &'static [fn(&Delimiters) -> u8];

/// The byte range of the `n`th (1-based) part of `s[range]` split by `sep`.
fn nth(s: &str, range: Range<usize>, sep: u8, n: usize) -> Option<Range<usize>> {
    let bytes = &s.as_bytes()[range.clone()];
    let mut start = 0;
    let mut index = 1;
    for i in memchr::memchr_iter(sep, bytes) {
        if index == n {
            return Some(range.start + start..range.start + i);
        }
        index += 1;
        start = i + 1;
    }
    (index == n).then(|| range.start + start..range.end)
}

/// `s` split by `sep`, with part `n` (1-based) replaced by `f(part)`, padding
/// with empty parts as needed.
fn replace_nth(s: &str, sep: u8, n: usize, f: impl FnOnce(&str) -> String) -> String {
    let sep = sep as char;
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.len() < n {
        parts.push("");
    }
    let replaced = f(parts[n - 1]);
    let mut out = String::with_capacity(s.len() + replaced.len() + n);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.push_str(if i == n - 1 { &replaced } else { p });
    }
    out
}

impl Message {
    /// Parses a message, reading the delimiters from MSH.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let bytes = text.as_bytes();
        let mut normalised = String::with_capacity(text.len() + 1);
        let mut segments = Vec::with_capacity(bytes.len() / 48 + 1);
        let mut start = 0;
        let ends = memchr::memchr2_iter(b'\r', b'\n', bytes).chain(std::iter::once(bytes.len()));
        for end in ends {
            if end > start {
                let at = normalised.len();
                normalised.push_str(&text[start..end]);
                segments.push(at..normalised.len());
                normalised.push('\r');
            }
            start = end + 1;
        }
        let first = segments.first().ok_or(Error::NoMsh)?;
        let (delims, _) = Delimiters::from_msh(normalised[first.clone()].as_bytes())?;
        Ok(Message {
            text: normalised,
            delims,
            segments,
        })
    }

    /// [`Message::parse`], refusing text longer than `max_bytes`.
    pub fn parse_limited(text: &str, max_bytes: usize) -> Result<Self, Error> {
        if text.len() > max_bytes {
            return Err(Error::TooLarge {
                size: text.len(),
                max: max_bytes,
            });
        }
        Self::parse(text)
    }

    /// Decodes received bytes in the character set MSH-18 declares (or
    /// `fallback` when MSH-18 is empty) and parses them. A UTF-8 BOM is
    /// dropped.
    pub fn decode(bytes: &[u8], fallback: Charset) -> Result<Self, Error> {
        Self::parse(&charset::decode_declared(bytes, fallback)?.1)
    }

    /// The message as bytes in `charset`, with MSH-18 set to name it (left
    /// as it is for UTF-8 when empty). Fails on the first character the
    /// charset cannot represent.
    pub fn encode_to(&self, charset: Charset) -> Result<Vec<u8>, Error> {
        let declared = self.get_raw("MSH-18").unwrap_or("");
        if (charset == Charset::Utf8 && declared.is_empty())
            || Charset::from_msh18(declared) == Some(charset)
        {
            return charset.encode(&self.text).map(|b| b.into_owned());
        }
        let mut copy = self.clone();
        copy.set_raw("MSH-18", charset.msh18())?;
        charset.encode(&copy.text).map(|b| b.into_owned())
    }

    /// The delimiters declared in MSH-1 and MSH-2.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delims
    }

    /// The message as text, every segment terminated by `\r`.
    pub fn encode(&self) -> String {
        self.text.clone()
    }

    /// The message text, every segment terminated by `\r`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// All segments in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        self.segments.iter().map(|r| {
            let text = &self.text[r.clone()];
            Segment {
                id: text.get(..3).unwrap_or(text),
                text,
                delims: &self.delims,
            }
        })
    }

    /// Index into `self.segments` of the `occurrence`th segment named `id`.
    fn find_segment(&self, id: &[u8; 3], occurrence: usize) -> Option<usize> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, r)| self.text.as_bytes()[(*r).clone()].starts_with(id))
            .nth(occurrence - 1)
            .map(|(i, _)| i)
    }

    /// The byte range of the element `path` names, and the delimiters that
    /// may still appear inside it.
    fn locate(&self, path: &Path) -> Option<(Range<usize>, InnerDelimiters)> {
        const FIELD: InnerDelimiters = &[|d| d.repetition, |d| d.component, |d| d.subcomponent];
        let seg = self.segments[self.find_segment(&path.segment, path.occurrence)?].clone();
        let d = &self.delims;
        let is_msh = &path.segment == b"MSH";
        let field = match (is_msh, path.field) {
            (true, 1) => {
                // A later MSH segment may be too short or malformed.
                let r = seg.start + 3..seg.start + 4;
                let whole = r.end <= seg.end && self.text.is_char_boundary(r.end);
                return whole.then_some((r, &[]));
            }
            (true, 2) => {
                let r = nth(&self.text, seg, d.field, 2)?;
                return Some((r, &[]));
            }
            (true, n) => nth(&self.text, seg, d.field, n)?,
            (false, n) => nth(&self.text, seg, d.field, n + 1)?,
        };
        let rep = nth(&self.text, field, d.repetition, path.repetition)?;
        let Some(c) = path.component else {
            return Some((rep, &FIELD[1..]));
        };
        let comp = nth(&self.text, rep, d.component, c)?;
        let Some(s) = path.subcomponent else {
            return Some((comp, &FIELD[2..]));
        };
        Some((nth(&self.text, comp, d.subcomponent, s)?, &[]))
    }

    /// The value at `path`, `None` when the message does not reach it.
    ///
    /// A leaf value (one holding no lower-level delimiters) comes back with
    /// its escape sequences decoded; a composite value comes back as encoded
    /// text, since decoding it would make its delimiters ambiguous.
    pub fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        let path: Path = path.parse().ok()?;
        self.get_path(&path)
    }

    /// [`Message::get`] with a parsed path.
    pub fn get_path(&self, path: &Path) -> Option<Cow<'_, str>> {
        let (range, inner) = self.locate(path)?;
        let raw = &self.text[range];
        let composite = inner
            .iter()
            .any(|d| raw.as_bytes().contains(&d(&self.delims)));
        if composite || (path.segment == *b"MSH" && path.field <= 2) {
            Some(Cow::Borrowed(raw))
        } else {
            Some(unescape(raw, &self.delims))
        }
    }

    /// Whether the value at `path` is the HL7 null `""` (delete the value
    /// at the receiver), as opposed to empty (leave it unchanged).
    pub fn is_null(&self, path: &str) -> bool {
        self.get_raw(path) == Some("\"\"")
    }

    /// The value at `path` with escapes decoded and formatting commands
    /// (`\.br\`, `\.sp\`, …) rendered as plain text.
    pub fn plain_text(&self, path: &str) -> Option<String> {
        self.get_raw(path).map(|raw| plain_text(raw, &self.delims))
    }

    /// The value at `path` as encoded text, never unescaped.
    pub fn get_raw(&self, path: &str) -> Option<&str> {
        let path: Path = path.parse().ok()?;
        self.locate(&path).map(|(r, _)| &self.text[r])
    }

    /// MSH-9 as written, e.g. `ADT^A04^ADT_A01`.
    pub fn message_type(&self) -> &str {
        self.get_raw("MSH-9").unwrap_or("")
    }

    /// MSH-10, the message control id.
    pub fn control_id(&self) -> Cow<'_, str> {
        self.get("MSH-10").unwrap_or(Cow::Borrowed(""))
    }

    /// Sets the leaf at `path` to `value`, escaping delimiters in it and
    /// creating segments, fields, repetitions and components as needed.
    pub fn set(&mut self, path: &str, value: &str) -> Result<(), Error> {
        let escaped = escape(value, &self.delims).into_owned();
        self.set_raw(path, &escaped)
    }

    /// Sets the element at `path` to already-encoded text, which may hold
    /// delimiters of the levels below it.
    pub fn set_raw(&mut self, path: &str, encoded: &str) -> Result<(), Error> {
        let p: Path = path.parse()?;
        let is_msh = &p.segment == b"MSH";
        if is_msh && p.field <= 2 {
            return Err(Error::BadPath(format!(
                "{path}: MSH-1 and MSH-2 hold the delimiters"
            )));
        }
        let index = loop {
            if let Some(i) = self.find_segment(&p.segment, p.occurrence) {
                break i;
            }
            self.append_segment(std::str::from_utf8(&p.segment).unwrap_or("ZZZ"));
        };
        let d = self.delims;
        let old = &self.text[self.segments[index].clone()];
        let field_index = if is_msh { p.field } else { p.field + 1 };
        let new = replace_nth(old, d.field, field_index, |field| {
            replace_nth(field, d.repetition, p.repetition, |rep| match p.component {
                None => encoded.to_string(),
                Some(c) => replace_nth(rep, d.component, c, |comp| match p.subcomponent {
                    None => encoded.to_string(),
                    Some(s) => replace_nth(comp, d.subcomponent, s, |_| encoded.to_string()),
                }),
            })
        });
        self.replace_segment(index, &new);
        Ok(())
    }

    /// Appends a segment given as encoded text (`OBX|1|TX|...`).
    pub fn append_segment(&mut self, text: &str) {
        let start = self.text.len();
        self.text.push_str(text);
        self.segments.push(start..self.text.len());
        self.text.push('\r');
    }

    fn replace_segment(&mut self, index: usize, new: &str) {
        let range = self.segments[index].clone();
        let delta = new.len() as isize - range.len() as isize;
        self.text.replace_range(range.clone(), new);
        self.segments[index] = range.start..range.start + new.len();
        for r in &mut self.segments[index + 1..] {
            *r = (r.start as isize + delta) as usize..(r.end as isize + delta) as usize;
        }
    }
}

/// Reading values the way most bots want them.
impl Message {
    /// The value at `path`, unescaped and trimmed; `None` when it is
    /// absent or empty (HL7's "leave as is"). See [`Message::is_null`] for
    /// the null `""`.
    pub fn value(&self, path: &str) -> Option<String> {
        self.get(path)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|ADT1|GOOD HEALTH|LAB|FAC|20260101120000||ADT^A04^ADT_A01|MSG00001|P|2.5\r\
EVN|A04|20260101120000\r\
PID|1||123456^^^MRN~987^^^SSN||M\\S\\ller^Hans^^^Dr||19800101|M\r\
OBX|1|TX|||first\r\
OBX|2|TX|||second&sub\r";

    #[test]
    fn reads_paths() {
        let m = Message::parse(ADT).unwrap();
        assert_eq!(m.get("MSH-1").unwrap(), "|");
        assert_eq!(m.get("MSH-2").unwrap(), "^~\\&");
        assert_eq!(m.get("MSH-3").unwrap(), "ADT1");
        assert_eq!(m.message_type(), "ADT^A04^ADT_A01");
        assert_eq!(m.get("MSH-9.2").unwrap(), "A04");
        assert_eq!(m.control_id(), "MSG00001");
        assert_eq!(m.get("PID-3").unwrap(), "123456^^^MRN");
        assert_eq!(m.get("PID-3[2].1").unwrap(), "987");
        assert_eq!(m.get("PID-3[2].4").unwrap(), "SSN");
        assert_eq!(m.get("PID-5.1").unwrap(), "M^ller");
        assert_eq!(m.get("OBX[2]-5").unwrap(), "second&sub");
        assert_eq!(m.get("OBX[2]-5.1.2").unwrap(), "sub");
        assert_eq!(m.get("PID-99"), None);
        assert_eq!(m.get("ZZZ-1"), None);
        assert_eq!(m.get("PID-3[3]"), None);
    }

    #[test]
    fn normalises_terminators_and_round_trips() {
        let lf = ADT.replace('\r', "\r\n");
        let m = Message::parse(&format!("\u{feff}{lf}\n\n")).unwrap();
        assert_eq!(m.encode(), ADT);
        assert_eq!(Message::parse(ADT).unwrap().encode(), ADT);
    }

    #[test]
    fn sets_values_creating_structure() {
        let mut m = Message::parse(ADT).unwrap();
        m.set("MSH-5", "EHR").unwrap();
        m.set("PID-5.1", "O'Brien^Jr").unwrap();
        m.set("ZBF-3[2].2.2", "x").unwrap();
        m.set("EVN-1", "A08").unwrap();
        assert_eq!(m.get("MSH-5").unwrap(), "EHR");
        assert_eq!(m.get_raw("PID-5.1").unwrap(), "O'Brien\\S\\Jr");
        assert_eq!(m.get("PID-5.1").unwrap(), "O'Brien^Jr");
        assert_eq!(m.get("PID-5.2").unwrap(), "Hans");
        assert_eq!(m.segments().last().unwrap().text, "ZBF|||~^&x");
        assert_eq!(m.get("EVN-1").unwrap(), "A08");
        assert_eq!(m.get("OBX[2]-1").unwrap(), "2");
        assert!(m.set("MSH-2", "x").is_err());
        let again = Message::parse(&m.encode()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn rejects_non_hl7() {
        assert_eq!(Message::parse("hello"), Err(Error::NoMsh));
        assert_eq!(Message::parse(""), Err(Error::NoMsh));
        assert_eq!(Message::parse("\r\n"), Err(Error::NoMsh));
    }

    #[test]
    fn value_is_trimmed_and_none_when_empty() {
        let msg =
            Message::parse("MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\rPID|1||  MRN1 ^^^X||\\F\\DOE|||\r")
                .unwrap();
        assert_eq!(msg.value("PID-3.1").as_deref(), Some("MRN1"));
        assert_eq!(msg.value("PID-5").as_deref(), Some("|DOE"));
        assert_eq!(msg.value("PID-7"), None);
        assert_eq!(msg.value("PV1-3"), None);
    }
}
