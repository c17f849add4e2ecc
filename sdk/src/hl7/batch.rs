//! Splitting a file or stream that holds several messages.

/// Splits text holding one or more messages (concatenated, or wrapped in
/// FHS/BHS/BTS/FTS batch segments) into the text of each message. Each
/// message starts at an `MSH` segment; batch header and trailer segments are
/// dropped. Text before the first MSH is ignored.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_batches_and_concatenations() {
        let batch = "FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\rPID|2\rBTS|2\rFTS|1\r";
        assert_eq!(
            split_messages(batch),
            vec!["MSH|^~\\&|A\rPID|1\r", "MSH|^~\\&|B\rPID|2\r"]
        );
        let two = "MSH|^~\\&|A\nPID|1\nMSH|^~\\&|B\n";
        assert_eq!(
            split_messages(two),
            vec!["MSH|^~\\&|A\nPID|1\n", "MSH|^~\\&|B\n"]
        );
        assert!(split_messages("no hl7 here").is_empty());
    }
}
