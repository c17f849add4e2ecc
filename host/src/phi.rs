//! Patient data stays out of the log unless `[log] phi = true`.
//!
//! File names (which often carry patient ids or names) and text written by
//! bots (panic messages, error texts, built from the message they were
//! handling) may hold patient data. Every log site that shows such a value
//! wraps it in [`file`] or [`text`]: with `phi` off (the default) the log
//! gets a stand-in instead. A file's stand-in, `file #<8 hex digits>`, is a
//! hash of its name keyed per process, so the lines about one file can be
//! matched up without the name being guessable from it; the journal
//! (`interlink events`) has the name. Control ids, event ids, message types
//! and sizes are not patient data and are logged as they are.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static SHOWN: AtomicBool = AtomicBool::new(false);

/// Sets whether patient data is logged (`[log] phi`); called once at start.
pub fn show(on: bool) {
    SHOWN.store(on, Ordering::Relaxed);
}

/// Whether patient data is logged.
pub fn shown() -> bool {
    SHOWN.load(Ordering::Relaxed)
}

/// A file name (or a path below a source's directory) as the log may show it.
pub fn file(name: &str) -> Guarded<'_> {
    Guarded {
        value: name,
        stand_in: StandIn::FileHash,
    }
}

/// Text written by a bot or taken from a message, as the log may show it.
pub fn text(text: &str) -> Guarded<'_> {
    Guarded {
        value: text,
        stand_in: StandIn::Withheld,
    }
}

/// A value that may hold patient data; displays as itself only when
/// [`shown`].
#[derive(Debug, Clone, Copy)]
pub struct Guarded<'a> {
    value: &'a str,
    stand_in: StandIn,
}

#[derive(Debug, Clone, Copy)]
enum StandIn {
    FileHash,
    Withheld,
}

impl fmt::Display for Guarded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if shown() {
            return f.write_str(self.value);
        }
        match self.stand_in {
            StandIn::FileHash => write!(f, "file #{:08x}", name_hash(self.value)),
            StandIn::Withheld => f.write_str("(withheld: [log] phi = false)"),
        }
    }
}

/// A hash of `name` under a key drawn at random once per process.
fn name_hash(name: &str) -> u32 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new).hash_one(name) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_hide_the_value_and_match_each_other() {
        show(false);
        let a = file("MRN0001_DOE.hl7").to_string();
        assert!(a.starts_with("file #") && !a.contains("DOE"), "{a}");
        assert_eq!(a, file("MRN0001_DOE.hl7").to_string());
        assert_ne!(a, file("MRN0002_ROE.hl7").to_string());
        assert!(!text("patient DOE^JANE").to_string().contains("DOE"));
        show(true);
        assert_eq!(file("MRN0001_DOE.hl7").to_string(), "MRN0001_DOE.hl7");
        assert_eq!(text("DOE^JANE").to_string(), "DOE^JANE");
        show(false);
    }
}
