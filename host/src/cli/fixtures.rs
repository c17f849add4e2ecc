//! What the input files of `interlink test` stand for, as the journal would
//! hold them: `*.http` files are HTTP requests to the bot, `*.tick` files
//! cron ticks, and anything else HL7 messages (one event per message) or,
//! when it is not HL7, one file event.
//!
//! An `.http` file holds one or more requests separated by lines of `###`,
//! each written as on the wire, with the path below the bot's mount point;
//! lines starting with `#` before a request line are comments:
//!
//! ```text
//! # a finalized exam
//! POST /exams
//! content-type: application/json
//!
//! {"accession": "BF000000000042"}
//! ###
//! GET /worklist?patient_id=MRN777
//! ```
//!
//! A `.tick` file holds one tick per line: when it was due (RFC 3339) and,
//! optionally, the schedule (default: the bot's first cron subscription),
//! e.g. `2026-11-24T09:05:00Z 0 */5 * * * *`. Lines starting with `#` are
//! comments. A tick also moves the test clock (`now-ms`) to its time.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::journal::StoredEvent;
use crate::runtime::http::Request;

/// One input event, before it gets its id and time.
pub enum Fixture {
    Hl7(String),
    File(Vec<u8>),
    Tick {
        at_ms: i64,
        schedule: Option<String>,
    },
    Http(Request),
}

impl Fixture {
    /// The event's kind in the journal.
    pub fn kind(&self) -> &'static str {
        match self {
            Fixture::Hl7(_) => "hl7",
            Fixture::File(_) => "file",
            Fixture::Tick { .. } => "tick",
            Fixture::Http(_) => crate::runtime::http::KIND,
        }
    }

    /// As a journal row: `id`, received at `now_ms` from `source` (the
    /// input file named `name`); `schedule` for a tick that names none.
    pub fn to_event(
        &self,
        id: i64,
        now_ms: i64,
        source: &str,
        name: &str,
        schedule: &str,
    ) -> StoredEvent {
        let (source, body) = match self {
            Fixture::Hl7(text) => (source.to_string(), text.as_bytes().to_vec()),
            Fixture::File(bytes) => (source.to_string(), bytes.clone()),
            Fixture::Tick { at_ms, schedule: s } => (
                s.clone().unwrap_or_else(|| schedule.to_string()),
                at_ms.to_string().into_bytes(),
            ),
            Fixture::Http(request) => (String::new(), request.to_envelope()),
        };
        StoredEvent {
            id,
            kind: self.kind().to_string(),
            source,
            name: Some(name.to_string()),
            body,
            received_at_ms: now_ms,
        }
    }
}

/// The events the file at `path` stands for.
pub fn read(path: &Path) -> Result<Vec<Fixture>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = || {
        String::from_utf8(bytes.clone()).with_context(|| format!("{} is not UTF-8", path.display()))
    };
    let parsed = match path.extension().and_then(|e| e.to_str()) {
        Some("http") => http_requests(&text()?),
        Some("tick") => ticks(&text()?),
        _ => Ok(hl7_or_file(bytes)),
    };
    parsed.with_context(|| format!("{}", path.display()))
}

fn hl7_or_file(bytes: Vec<u8>) -> Vec<Fixture> {
    let messages = std::str::from_utf8(&bytes)
        .map(interlink_sdk::hl7::split_messages)
        .unwrap_or_default();
    if messages.is_empty() {
        return vec![Fixture::File(bytes)];
    }
    messages
        .into_iter()
        .map(|m| Fixture::Hl7(m.to_string()))
        .collect()
}

fn http_requests(text: &str) -> Result<Vec<Fixture>> {
    let mut requests = Vec::new();
    let mut chunk = String::new();
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "###" {
            requests.push(std::mem::take(&mut chunk));
        } else {
            chunk.push_str(line);
        }
    }
    requests.push(chunk);
    requests
        .iter()
        .filter(|r| {
            r.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .enumerate()
        .map(|(i, r)| http_request(r).with_context(|| format!("request {}", i + 1)))
        .collect()
}

fn http_request(text: &str) -> Result<Fixture> {
    let mut text = text.trim_start_matches(['\r', '\n']);
    while text.starts_with('#') {
        text = text
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .trim_start_matches(['\r', '\n']);
    }
    let (head, body) = match text.find("\n\n").or_else(|| text.find("\r\n\r\n")) {
        Some(at) => {
            let sep = if text[at..].starts_with("\n\n") { 2 } else { 4 };
            (&text[..at], &text[at + sep..])
        }
        None => (text, ""),
    };
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut words = first.split_whitespace();
    let (Some(method), Some(path)) = (words.next(), words.next()) else {
        bail!("the first line must be `METHOD /path`, not {first:?}");
    };
    if !path.starts_with('/') {
        bail!("the path {path:?} must start with / (below the bot's mount point)");
    }
    let headers = lines
        .map(|l| match l.split_once(':') {
            Some((k, v)) => Ok((k.trim().to_ascii_lowercase(), v.trim().to_string())),
            None => bail!("header line {l:?} has no `:`"),
        })
        .collect::<Result<Vec<_>>>()?;
    let body = body.strip_suffix('\n').unwrap_or(body);
    let body = body.strip_suffix('\r').unwrap_or(body);
    Ok(Fixture::Http(Request {
        method: method.to_ascii_uppercase(),
        path: path.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
    }))
}

fn ticks(text: &str) -> Result<Vec<Fixture>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (at, schedule) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            let at_ms = parse_time(at)?;
            let schedule = Some(schedule.trim().to_string()).filter(|s| !s.is_empty());
            Ok(Fixture::Tick { at_ms, schedule })
        })
        .collect()
}

/// An RFC 3339 time (`2026-11-24T09:05:00Z`) in ms since the epoch.
pub fn parse_time(text: &str) -> Result<i64> {
    crate::instant::parse(text).with_context(|| {
        format!(
            "{text:?} is not an RFC 3339 time like 2026-11-24T09:05:00Z (or ms since the epoch)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_http_requests() {
        let text = "# an exam\nPOST /exams\nContent-Type: application/json\n\n{\"a\": 1}\n###\n\nGET /worklist?x=1\n";
        let got = http_requests(text).unwrap();
        let [Fixture::Http(post), Fixture::Http(get)] = &got[..] else {
            panic!("two requests")
        };
        assert_eq!(
            (post.method.as_str(), post.path.as_str()),
            ("POST", "/exams")
        );
        assert_eq!(
            post.headers,
            [("content-type".into(), "application/json".into())]
        );
        assert_eq!(post.body, b"{\"a\": 1}");
        assert_eq!(
            (get.method.as_str(), get.path.as_str()),
            ("GET", "/worklist?x=1")
        );
        assert!(get.body.is_empty());
        assert!(http_requests("GET worklist").is_err());
    }

    #[test]
    fn reads_ticks() {
        let got =
            ticks("# rotation\n2026-11-24T09:05:00Z\n2026-11-24T10:00:00+01:00 0 0 * * * *\n")
                .unwrap();
        let at: Vec<_> = got
            .iter()
            .map(|f| match f {
                Fixture::Tick { at_ms, schedule } => (*at_ms, schedule.clone()),
                _ => panic!("a tick"),
            })
            .collect();
        assert_eq!(
            at,
            [
                (1_795_511_100_000, None),
                (1_795_510_800_000, Some("0 0 * * * *".into()))
            ]
        );
        assert!(ticks("tomorrow").is_err());
    }
}
