//! One event's comparison: what the candidate did against what the live
//! bot did. Outcomes first (done → failed is a new failure, failed → done a
//! fixed one); when both succeeded, their outbound messages are paired per
//! destination in the order they were queued and each pair compared (HL7
//! with [`diff`], bytes by content, name and type, and the delay); an
//! unpaired live message is missing, an unpaired candidate one extra.

use serde::Serialize;

use super::diff::{FieldChange, IgnorePath, diff};
use crate::journal::shadow::LiveMessage;
use crate::journal::{Payload, Queued};
use interlink_sdk::hl7::Message;

/// How one event came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same outcome, same messages (failed both times counts as the same).
    Same,
    /// Both succeeded; the messages differ.
    Different,
    /// The live bot succeeded; the candidate fails.
    NewFailure,
    /// The live bot failed; the candidate succeeds.
    FixedFailure,
}

/// What became of one outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Both queued it, differently.
    Different,
    /// The live bot queued it; the candidate did not.
    Missing,
    /// The candidate queued it; the live bot did not.
    Extra,
}

/// One outbound message that is not the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageChange {
    pub destination: String,
    /// Which of the event's messages to that destination (from 0).
    pub index: usize,
    pub change: Change,
    /// For `different`: the paths and values that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// A message as compared: its destination, payload and delay.
struct Out<'a> {
    destination: &'a str,
    payload: &'a Payload,
    not_before_ms: i64,
}

/// The message changes between what the live bot queued and what the
/// candidate would have; empty when they are the same.
pub fn messages(
    live: &[LiveMessage],
    candidate: &[Queued],
    ignore: &[IgnorePath],
) -> Vec<MessageChange> {
    let live: Vec<Out> = live
        .iter()
        .map(|m| Out {
            destination: &m.destination,
            payload: &m.payload,
            not_before_ms: m.not_before_ms,
        })
        .collect();
    let candidate: Vec<Out> = candidate
        .iter()
        .map(|q| Out {
            destination: &q.destination,
            payload: &q.payload,
            not_before_ms: q.not_before_ms,
        })
        .collect();
    let mut destinations: Vec<&str> = live
        .iter()
        .chain(&candidate)
        .map(|o| o.destination)
        .collect();
    let mut seen = std::collections::HashSet::new();
    destinations.retain(|d| seen.insert(*d));
    let mut changes = Vec::new();
    for destination in destinations {
        let old: Vec<&Out> = live
            .iter()
            .filter(|o| o.destination == destination)
            .collect();
        let new: Vec<&Out> = candidate
            .iter()
            .filter(|o| o.destination == destination)
            .collect();
        for index in 0..old.len().max(new.len()) {
            let (change, fields) = match (old.get(index), new.get(index)) {
                (Some(a), Some(b)) => match one(a, b, ignore) {
                    fields if fields.is_empty() => continue,
                    fields => (Change::Different, fields),
                },
                (Some(_), None) => (Change::Missing, Vec::new()),
                (None, _) => (Change::Extra, Vec::new()),
            };
            changes.push(MessageChange {
                destination: destination.to_string(),
                index,
                change,
                fields,
            });
        }
    }
    changes
}

/// The differences between two messages to one destination.
fn one(a: &Out, b: &Out, ignore: &[IgnorePath]) -> Vec<FieldChange> {
    let mut fields = match (a.payload, b.payload) {
        (Payload::Hl7(x), Payload::Hl7(y)) if x == y => Vec::new(),
        (Payload::Hl7(x), Payload::Hl7(y)) => match (Message::parse(x), Message::parse(y)) {
            (Ok(x), Ok(y)) => diff(&x, &y, ignore),
            _ => vec![change("message", Some(x.clone()), Some(y.clone()))],
        },
        (
            Payload::Bytes {
                data: x,
                name: xn,
                content_type: xt,
                http: xh,
            },
            Payload::Bytes {
                data: y,
                name: yn,
                content_type: yt,
                http: yh,
            },
        ) => {
            let mut fields = Vec::new();
            if x != y {
                fields.push(change("data", Some(shown(x)), Some(shown(y))));
            }
            if xn != yn {
                fields.push(change("file_name", xn.clone(), yn.clone()));
            }
            if xt != yt {
                fields.push(change("content_type", xt.clone(), yt.clone()));
            }
            if xh != yh {
                let json = |h: &Option<_>| h.as_ref().map(|h| serde_json::json!(h).to_string());
                fields.push(change("http", json(xh), json(yh)));
            }
            fields
        }
        (x, y) => vec![change("payload", Some(kind(x)), Some(kind(y)))],
    };
    if a.not_before_ms != b.not_before_ms {
        let at = |t: i64| (t > 0).then(|| t.to_string());
        fields.push(change(
            "not_before_ms",
            at(a.not_before_ms),
            at(b.not_before_ms),
        ));
    }
    fields
}

fn change(path: &str, old: Option<String>, new: Option<String>) -> FieldChange {
    FieldChange {
        path: path.to_string(),
        old,
        new,
    }
}

fn kind(p: &Payload) -> String {
    match p {
        Payload::Hl7(_) => "hl7".into(),
        Payload::Bytes { .. } => "bytes".into(),
    }
}

/// Bytes as the report shows them: UTF-8 text up to 200 characters, else
/// their size.
fn shown(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if text.chars().count() <= 200 => text.to_string(),
        _ => format!("({} bytes)", data.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(destination: &str, text: &str) -> LiveMessage {
        LiveMessage {
            event_id: 1,
            destination: destination.into(),
            payload: Payload::Hl7(text.into()),
            not_before_ms: 0,
        }
    }

    fn queued(destination: &str, text: &str) -> Queued {
        Queued {
            destination: destination.into(),
            payload: Payload::Hl7(text.into()),
            not_before_ms: 0,
            order_hash: 0,
        }
    }

    const A: &str = "MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\rPID|1||7||DOE^J\r";

    #[test]
    fn messages_pair_up_per_destination_in_order() {
        let b = A.replace("DOE^J", "DOE^K");
        let got = messages(
            &[live("out", A), live("out", A), live("gone", A)],
            &[queued("out", A), queued("out", &b), queued("new", A)],
            &IgnorePath::defaults(),
        );
        let summary: Vec<(&str, usize, Change, Vec<&str>)> = got
            .iter()
            .map(|c| {
                let paths = c.fields.iter().map(|f| f.path.as_str()).collect();
                (c.destination.as_str(), c.index, c.change, paths)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("out", 1, Change::Different, vec!["PID-5.2"]),
                ("gone", 0, Change::Missing, vec![]),
                ("new", 0, Change::Extra, vec![]),
            ]
        );
    }

    #[test]
    fn bytes_and_delays_are_compared() {
        let bytes = |data: &str, name: &str| Payload::Bytes {
            data: data.as_bytes().to_vec(),
            name: Some(name.into()),
            content_type: Some("text/csv".into()),
            http: None,
        };
        let old = LiveMessage {
            payload: bytes("a,1\n", "x.csv"),
            ..live("files", "")
        };
        let new = Queued {
            payload: bytes("a,2\n", "x.csv"),
            not_before_ms: 5,
            ..queued("files", "")
        };
        let got = messages(std::slice::from_ref(&old), &[new], &[]);
        let paths: Vec<&str> = got[0].fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["data", "not_before_ms"]);
        let same = Queued {
            payload: bytes("a,1\n", "x.csv"),
            ..queued("files", "")
        };
        assert!(messages(&[old], &[same], &[]).is_empty());
    }
}
