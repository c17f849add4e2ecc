//! `[journal]`: where the journal lives, how long finished events are kept,
//! and how large it may grow.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    #[serde(default = "default_journal_path")]
    pub path: PathBuf,
    /// Processed events older than this are purged.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Largest the journal may grow; past it, new input is refused (NACKed)
    /// as it would be on a full disk. Unlimited when absent.
    pub max_size_mb: Option<u64>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: default_journal_path(),
            retention_days: default_retention_days(),
            max_size_mb: None,
        }
    }
}

fn default_journal_path() -> PathBuf {
    "data/interlink.db".into()
}
fn default_retention_days() -> u32 {
    7
}
