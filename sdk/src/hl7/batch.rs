//! Files and streams that hold several messages: plain concatenations, and
//! HL7 batches (`FHS`/`BHS` … `BTS`/`FTS`) whose trailer counts are checked.

use super::{Error, MessageBuilder};

/// Splits text holding one or more messages (concatenated, or wrapped in
/// FHS/BHS/BTS/FTS batch segments) into the text of each message, without
/// checking batch counts. Each message starts at an `MSH` segment; batch
/// header and trailer segments are dropped, and so is text before the first
/// MSH.
pub fn split_messages(text: &str) -> Vec<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    for line in text.split_inclusive(['\r', '\n']) {
        let id = line.get(..3).unwrap_or("");
        let is_batch = matches!(id, "FHS" | "BHS" | "BTS" | "FTS");
        if id == "MSH" || is_batch {
            if let Some(s) = start.take() {
                out.push(&text[s..pos]);
            }
            if id == "MSH" {
                start = Some(pos);
            }
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out.retain(|m| !m.trim().is_empty());
    out
}

/// One `BHS` … `BTS` group of messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchGroup {
    /// The `BHS` segment, when the group has one.
    pub header: Option<String>,
    /// Each message's text, segments terminated by `\r`.
    pub messages: Vec<String>,
    /// The `BTS` segment, when the group has one.
    pub trailer: Option<String>,
}

/// A batch file: optional `FHS`/`FTS` around one or more groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub file_header: Option<String>,
    pub groups: Vec<BatchGroup>,
    pub file_trailer: Option<String>,
}

/// Field `n` (1-based, after the segment id) of a batch segment.
fn field(segment: &str, n: usize) -> &str {
    let sep = segment.as_bytes().get(3).copied().unwrap_or(b'|') as char;
    segment.split(sep).nth(n).unwrap_or("")
}

/// Checks a trailer's count field against what was found.
fn check_count(trailer: &Option<String>, found: usize, what: &str) -> Result<(), Error> {
    let Some(t) = trailer else { return Ok(()) };
    let declared = field(t, 1).split('^').next().unwrap_or("").trim();
    if declared.is_empty() {
        return Ok(());
    }
    match declared.parse::<usize>() {
        Ok(n) if n == found => Ok(()),
        _ => Err(Error::BadBatch(format!(
            "{} says {declared} {what}, found {found}",
            t.get(..3).unwrap_or("")
        ))),
    }
}

impl Batch {
    /// Parses batch text. Messages outside any `BHS` form an implicit group.
    /// `BTS-1` must match the number of messages in its group and `FTS-1`
    /// the number of groups, when they are filled in.
    pub fn parse(text: &str) -> Result<Batch, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut batch = Batch::default();
        let mut group: Option<BatchGroup> = None;
        let mut message: Option<String> = None;
        let finish_message = |message: &mut Option<String>, group: &mut Option<BatchGroup>| {
            if let Some(m) = message.take() {
                group
                    .get_or_insert_with(BatchGroup::default)
                    .messages
                    .push(m);
            }
        };
        for seg in text.split(['\r', '\n']).filter(|s| !s.is_empty()) {
            match seg.get(..3).unwrap_or("") {
                "FHS" => {
                    if batch.file_header.is_some() || !batch.groups.is_empty() || group.is_some() {
                        return Err(Error::BadBatch("FHS is not the first segment".into()));
                    }
                    batch.file_header = Some(seg.to_string());
                }
                "BHS" => {
                    finish_message(&mut message, &mut group);
                    if let Some(g) = group.take() {
                        batch.groups.push(g);
                    }
                    group = Some(BatchGroup {
                        header: Some(seg.to_string()),
                        ..Default::default()
                    });
                }
                "BTS" => {
                    finish_message(&mut message, &mut group);
                    let mut g = group.take().unwrap_or_default();
                    g.trailer = Some(seg.to_string());
                    check_count(&g.trailer, g.messages.len(), "messages")?;
                    batch.groups.push(g);
                }
                "FTS" => {
                    finish_message(&mut message, &mut group);
                    if let Some(g) = group.take() {
                        batch.groups.push(g);
                    }
                    batch.file_trailer = Some(seg.to_string());
                }
                "MSH" => {
                    finish_message(&mut message, &mut group);
                    message = Some(format!("{seg}\r"));
                }
                _ => match &mut message {
                    Some(m) => {
                        m.push_str(seg);
                        m.push('\r');
                    }
                    None => {
                        return Err(Error::BadBatch(format!(
                            "segment {:?} outside a message",
                            seg.chars().take(3).collect::<String>()
                        )));
                    }
                },
            }
        }
        finish_message(&mut message, &mut group);
        if let Some(g) = group.take() {
            batch.groups.push(g);
        }
        check_count(&batch.file_trailer, batch.groups.len(), "batches")?;
        Ok(batch)
    }

    /// A file with one group holding `messages`, with FHS/BHS headers (from
    /// `sender`) and BTS/FTS trailers carrying the counts.
    pub fn build(messages: Vec<String>, sender: &MessageBuilder) -> Batch {
        let ts = super::now_timestamp();
        let (app, fac) = sender.sender();
        let header = |id: &str| format!("{id}|^~\\&|{app}|{fac}|||{ts}");
        let count = messages.len();
        Batch {
            file_header: Some(header("FHS")),
            groups: vec![BatchGroup {
                header: Some(header("BHS")),
                messages,
                trailer: Some(format!("BTS|{count}")),
            }],
            file_trailer: Some("FTS|1".into()),
        }
    }

    /// Every message, in order.
    pub fn messages(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| g.messages.iter().map(String::as_str))
    }

    /// The batch as text, every segment terminated by `\r`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            if !s.ends_with('\r') {
                out.push('\r');
            }
        };
        if let Some(h) = &self.file_header {
            line(h);
        }
        for g in &self.groups {
            if let Some(h) = &g.header {
                line(h);
            }
            for m in &g.messages {
                line(m);
            }
            if let Some(t) = &g.trailer {
                line(t);
            }
        }
        if let Some(t) = &self.file_trailer {
            line(t);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "FHS|^~\\&|LAB|X\rBHS|^~\\&|LAB|X\rMSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\rPID|2\rBTS|2\rFTS|1\r";

    #[test]
    fn splits_batches_and_concatenations() {
        assert_eq!(
            split_messages(FILE),
            vec!["MSH|^~\\&|A\rPID|1\r", "MSH|^~\\&|B\rPID|2\r"]
        );
        let two = "MSH|^~\\&|A\nPID|1\nMSH|^~\\&|B\n";
        assert_eq!(
            split_messages(two),
            vec!["MSH|^~\\&|A\nPID|1\n", "MSH|^~\\&|B\n"]
        );
        assert!(split_messages("no hl7 here").is_empty());
    }

    #[test]
    fn parses_checks_and_rebuilds_batches() {
        let b = Batch::parse(FILE).unwrap();
        assert_eq!(b.groups.len(), 1);
        assert_eq!(
            b.messages().collect::<Vec<_>>(),
            vec!["MSH|^~\\&|A\rPID|1\r", "MSH|^~\\&|B\rPID|2\r"]
        );
        assert_eq!(b.encode(), FILE);
        let crlf = FILE.replace('\r', "\r\n");
        assert_eq!(Batch::parse(&crlf).unwrap(), b);
    }

    #[test]
    fn wrong_counts_and_stray_segments_are_errors() {
        let wrong = FILE.replace("BTS|2", "BTS|3");
        assert_eq!(
            Batch::parse(&wrong).unwrap_err(),
            Error::BadBatch("BTS says 3 messages, found 2".into())
        );
        let wrong = FILE.replace("FTS|1", "FTS|2");
        assert!(Batch::parse(&wrong).is_err());
        assert!(Batch::parse("PID|1\rMSH|^~\\&|A\r").is_err());
        // Empty counts are not checked; groups without BHS are implicit.
        let b = Batch::parse("MSH|^~\\&|A\rBTS|\rMSH|^~\\&|B\rBTS\r").unwrap();
        assert_eq!(b.groups.len(), 2);
    }

    #[test]
    fn builds_batches_with_counts() {
        let sender = MessageBuilder::new("ORU^R01").sending("INTERLINK", "BF");
        let b = Batch::build(
            vec!["MSH|^~\\&|A\r".into(), "MSH|^~\\&|B\r".into()],
            &sender,
        );
        let text = b.encode();
        assert!(text.starts_with("FHS|^~\\&|INTERLINK|BF|||"));
        assert!(text.ends_with("MSH|^~\\&|B\rBTS|2\rFTS|1\r"));
        assert_eq!(Batch::parse(&text).unwrap(), b);
    }
}
