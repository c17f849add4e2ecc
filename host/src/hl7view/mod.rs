//! A message as people read it: each segment's fields with their names and
//! values, and the components of fields that have them. `interlink inspect`
//! prints it; the dashboard's message page shows it as a table.

mod field_names;

use interlink_sdk::hl7::{Charset, Message, Segment, charset, split_messages};
use serde::Serialize;

pub use field_names::{field_name, segment_name};

/// The messages in `bytes`, decoded in the charset MSH-18 declares (or
/// `fallback`), or the first problem with its position.
pub fn messages(bytes: &[u8], fallback: Charset) -> Result<Vec<Message>, String> {
    let (_, text) = charset::decode_declared(bytes, fallback).map_err(|e| match e {
        interlink_sdk::hl7::Error::UnsupportedCharset(_) => format!("position 0: {e}"),
        e => e.to_string(),
    })?;
    messages_in_text(&text)
}

/// The messages in `text`, already decoded (MSH-18 is not looked at), or
/// the first problem with its position.
pub fn messages_in_text(text: &str) -> Result<Vec<Message>, String> {
    let parts = split_messages(text);
    if parts.is_empty() {
        return Err("position 0: no MSH segment: this is not HL7".into());
    }
    parts
        .into_iter()
        .map(|part| {
            let at = part.as_ptr() as usize - text.as_ptr() as usize;
            Message::parse(part).map_err(|e| format!("position {at}: {e}"))
        })
        .collect()
}

/// A segment's non-empty fields.
#[derive(Debug, Serialize)]
pub struct SegmentView {
    /// `PID`.
    pub id: String,
    /// `Patient Identification`, when known.
    pub name: Option<&'static str>,
    pub fields: Vec<FieldView>,
}

/// One non-empty field.
#[derive(Debug, Serialize)]
pub struct FieldView {
    /// `PID-5`.
    pub label: String,
    /// `Patient Name`, or empty when unknown.
    pub name: &'static str,
    /// The value unescaped when the field is a single value, else as sent.
    pub value: String,
    /// The non-empty components (and subcomponents, repetitions) of a
    /// field that has more than one value: `PID-5.1`, `PID-3[2].1`, …
    pub parts: Vec<PartView>,
}

/// A component, subcomponent or repetition of a field.
#[derive(Debug, Serialize)]
pub struct PartView {
    /// `PID-5.1`, `PID-3[2].4.1`.
    pub path: String,
    pub value: String,
}

/// `seg` with its names.
pub fn segment(seg: &Segment<'_>) -> SegmentView {
    let fields = seg
        .fields()
        .into_iter()
        .zip(seg.tree())
        .enumerate()
        .filter(|(_, (raw, _))| !raw.is_empty())
        .map(|(i, (raw, tree))| {
            let n = i + 1;
            let label = format!("{}-{n}", seg.id);
            let name = field_name(seg.id, n).unwrap_or("");
            if tree.len() == 1 && tree[0].len() == 1 && tree[0][0].len() == 1 {
                let value = tree[0][0][0].clone();
                return FieldView {
                    label,
                    name,
                    value,
                    parts: Vec::new(),
                };
            }
            let mut parts = Vec::new();
            for (r, rep) in tree.iter().enumerate() {
                let rep_label = if tree.len() > 1 {
                    format!("{label}[{}]", r + 1)
                } else {
                    label.clone()
                };
                for (c, comp) in rep.iter().enumerate() {
                    for (s, sub) in comp.iter().enumerate() {
                        if sub.is_empty() {
                            continue;
                        }
                        let path = if comp.len() > 1 {
                            format!("{rep_label}.{}.{}", c + 1, s + 1)
                        } else {
                            format!("{rep_label}.{}", c + 1)
                        };
                        parts.push(PartView {
                            path,
                            value: sub.clone(),
                        });
                    }
                }
            }
            FieldView {
                label,
                name,
                value: raw.to_string(),
                parts,
            }
        })
        .collect();
    SegmentView {
        id: seg.id.to_string(),
        name: segment_name(seg.id),
        fields,
    }
}

/// Every segment of `msg`.
pub fn message(msg: &Message) -> Vec<SegmentView> {
    msg.segments().map(|s| segment(&s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_carry_their_names_and_components() {
        let raw =
            "MSH|^~\\&|A|B|C|D|20240101||ADT^A04|MSG1|P|2.5\rPID|1||123^^^H~456^^^X||DOE^JANE\r";
        let msg = &messages(raw.as_bytes(), Charset::Utf8).unwrap()[0];
        let segs = message(msg);
        let pid = &segs[1];
        assert_eq!(
            (pid.id.as_str(), pid.name),
            ("PID", Some("Patient Identification"))
        );
        let name = pid.fields.iter().find(|f| f.label == "PID-5").unwrap();
        assert_eq!(name.name, "Patient Name");
        let parts: Vec<_> = name
            .parts
            .iter()
            .map(|p| (p.path.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(parts, [("PID-5.1", "DOE"), ("PID-5.2", "JANE")]);
        let ids = pid.fields.iter().find(|f| f.label == "PID-3").unwrap();
        assert_eq!(ids.parts[0].path, "PID-3[1].1");
        let control = segs[0].fields.iter().find(|f| f.label == "MSH-10").unwrap();
        assert_eq!((control.value.as_str(), control.parts.len()), ("MSG1", 0));
    }

    #[test]
    fn decoded_text_is_not_decoded_again() {
        let text = "MSH|^~\\&|A|B|C|D|20240101||ADT^A04|MSG1|P|2.5||||||8859/1\rPID|1||123||MÜLLER^JÜRGEN\r";
        let latin1: Vec<u8> = text.chars().map(|c| c as u8).collect();
        for msgs in [
            messages_in_text(text).unwrap(),
            messages(&latin1, Charset::Utf8).unwrap(),
        ] {
            let segs = message(&msgs[0]);
            let name = segs[1].fields.iter().find(|f| f.label == "PID-5").unwrap();
            assert_eq!(name.value, "MÜLLER^JÜRGEN");
        }
    }
}
