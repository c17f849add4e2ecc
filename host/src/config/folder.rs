//! `[[folder]]`: a drop folder watched for files.

use std::path::PathBuf;

use anyhow::{Result, bail};
use interlink_sdk::hl7::Charset;
use serde::Deserialize;

use super::values::{
    After, charset, check_glob, default_after, default_encoding, default_max_file_mb,
    default_pattern,
};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    pub name: String,
    pub dir: PathBuf,
    #[serde(default = "default_pattern")]
    pub pattern: String,
    #[serde(default = "default_after")]
    pub after: After,
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    pub encoding: Charset,
    /// A file is taken only once it has not changed for this long, so a
    /// copy in progress is never read half-written.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Rescan interval, on top of filesystem notifications.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Where a file that looks like HL7 but cannot be read as HL7 is moved;
    /// without it such a file stays and is tried again once it changes.
    pub error_dir: Option<PathBuf>,
    /// Larger files are not read (they go to `error_dir`, or stay).
    #[serde(default = "default_max_file_mb")]
    pub max_file_mb: u64,
}

impl FolderConfig {
    pub(super) fn check(&self, key: &str) -> Result<()> {
        check_glob(&self.pattern, &format!("{key}.pattern"))?;
        if self.poll_ms == 0 {
            bail!("{key}.poll_ms must be at least 1");
        }
        if self.max_file_mb == 0 {
            bail!("{key}.max_file_mb must be at least 1");
        }
        Ok(())
    }

    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        join(&mut self.dir);
        if let After::Move(d) = &mut self.after {
            join(d);
        }
        if let Some(d) = &mut self.error_dir {
            join(d);
        }
    }
}

fn default_settle_ms() -> u64 {
    300
}
fn default_poll_ms() -> u64 {
    1000
}
