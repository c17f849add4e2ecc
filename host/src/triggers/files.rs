//! What file sources (drop folders and SFTP) share: journaling a file with
//! its ledger entry unless the ledger already has it. A file that starts
//! like HL7 (`MSH`, `FHS` or `BHS`) becomes one hl7 item per message and
//! must decode and parse as HL7; any other file becomes one file item.
//!
//! [`prepare`] (hashing, the ledger lookup, splitting) blocks: folders run
//! it on tokio's blocking pool, SFTP sources on their own thread. [`submit`]
//! hands the result to the journal's writer.

use std::sync::Mutex;

use interlink_sdk::hl7::Charset;
use sha2::{Digest, Sha256};

use crate::intake::{Hl7Item, Inbound, Intake, Provenance};
use crate::journal::{LedgerEntry, Reader};
use crate::phi;

/// What [`prepare`] made of a file.
pub enum Prepared {
    /// New: its items and ledger entry, for [`submit`].
    New(Ready),
    /// The ledger already has it (kept, or the host stopped before it was
    /// disposed of): nothing to journal, the source may dispose of it.
    Before,
    /// It starts like HL7 but is not, for this reason; nothing journaled.
    NotHl7(String),
}

/// A new file's items and ledger entry, ready to journal.
pub struct Ready {
    entry: LedgerEntry,
    items: Vec<Inbound>,
}

/// A file a source has read.
pub struct TakenFile<'a> {
    pub source: &'a str,
    /// Its name, or its path below the source's directory.
    pub name: &'a str,
    pub bytes: Vec<u8>,
    pub mtime_ms: i64,
}

/// Hashes `file`, looks it up in the ledger and splits it into items.
/// Blocks (SQLite read, hashing).
pub fn prepare(
    reader: &Mutex<Reader>,
    file: TakenFile<'_>,
    encoding: Charset,
) -> anyhow::Result<Prepared> {
    let TakenFile {
        source,
        name,
        bytes,
        mtime_ms,
    } = file;
    let entry = ledger_entry(source, name, &bytes, mtime_ms);
    if reader.lock().expect("reader lock").file_taken(&entry)? {
        return Ok(Prepared::Before);
    }
    Ok(match items(name, bytes, encoding) {
        Ok(items) => Prepared::New(Ready { entry, items }),
        Err(why) => Prepared::NotHl7(why),
    })
}

/// Journals a new file's items and its ledger entry in one commit.
pub async fn submit(intake: &Intake, ready: Ready) -> anyhow::Result<()> {
    let Ready { entry, items } = ready;
    let (source, name, size) = (entry.source.clone(), entry.name.clone(), entry.size);
    let count = items.len();
    let ids = intake
        .submit(&source, items, Some(Provenance::File(entry)))
        .await?;
    tracing::info!(source, file = %phi::file(&name), size, events = count, first_event = ids.first().copied().unwrap_or(0), "journaled");
    Ok(())
}

/// The ledger entry that records `bytes`, named `name`, as taken.
fn ledger_entry(source: &str, name: &str, bytes: &[u8], mtime_ms: i64) -> LedgerEntry {
    LedgerEntry {
        source: source.to_string(),
        name: name.to_string(),
        size: bytes.len() as i64,
        mtime_ms,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

/// The items of one file, or why a file that looks like HL7 is not.
fn items(name: &str, bytes: Vec<u8>, fallback: Charset) -> Result<Vec<Inbound>, String> {
    if !looks_like_hl7(&bytes) {
        return Ok(vec![Inbound::File {
            name: name.to_string(),
            contents: bytes,
        }]);
    }
    let text = interlink_sdk::hl7::charset::charset_of(&bytes, fallback)
        .and_then(|charset| charset.decode(&bytes).map(|t| t.into_owned()))
        .map_err(|e| format!("cannot decode: {e}"))?;
    interlink_sdk::hl7::split_messages(&text)
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let item = Hl7Item::new(m.to_string(), None, Some(name.to_string()));
            match item.not_hl7() {
                Some(why) => Err(format!("message {}: {why}", i + 1)),
                None => Ok(Inbound::Hl7(item)),
            }
        })
        .collect()
}

fn looks_like_hl7(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    matches!(bytes.get(start..start + 3), Some(b"MSH" | b"FHS" | b"BHS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "MSH|^~\\&|LAB|H|IL|H|20260101||ORU^R01|1|P|2.5\rPID|1||7\r";

    #[test]
    fn a_batch_is_one_item_per_message() {
        let file = format!("FHS|^~\\&\rBHS|^~\\&\r{MSG}{MSG}BTS|2\rFTS|1\r");
        let items = items("b.hl7", file.into_bytes(), Charset::Utf8).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| matches!(i, Inbound::Hl7(_))));
    }

    #[test]
    fn other_files_are_file_items() {
        let items = items("x.csv", b"a,b\n1,2\n".to_vec(), Charset::Utf8).unwrap();
        assert!(matches!(&items[..], [Inbound::File { name, .. }] if name == "x.csv"));
    }

    #[test]
    fn broken_hl7_is_an_error_naming_the_message() {
        let file = format!("{MSG}MSH|^~|X|Y\r");
        let err = items("b.hl7", file.into_bytes(), Charset::Utf8).unwrap_err();
        assert!(err.starts_with("message 2:"), "{err}");
        let latin =
            b"\xEF\xBB\xBFMSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5|||||||UNICODE UTF-8\rPID|\xFF\r";
        let err = items("c.hl7", latin.to_vec(), Charset::Utf8).unwrap_err();
        assert!(err.starts_with("cannot decode"), "{err}");
    }
}
