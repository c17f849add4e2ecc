//! `[[sftp]]`: an SFTP server polled on a schedule for files.

use std::path::PathBuf;

use anyhow::{Result, bail};
use interlink_sdk::hl7::Charset;
use serde::Deserialize;

use super::ssh::{SshConfig, default_ssh_port};
use super::values::{
    After, charset, check_glob, check_schedule, default_after, default_connect_timeout_s,
    default_encoding, default_max_file_mb, default_pattern, yes,
};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    pub name: String,
    pub host: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub ssh: SshConfig,
    /// Remote directory polled.
    pub dir: String,
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Cron schedule of the polls (sec min hour day month weekday), in
    /// `[cron] timezone`.
    #[serde(default = "default_sftp_schedule")]
    pub schedule: String,
    /// What happens to a file once journaled; `move:` takes a remote dir.
    #[serde(default = "default_after")]
    pub after: After,
    /// Remote dir for files that cannot be downloaded or read as HL7;
    /// without it they stay and are tried again at the next poll.
    pub error_dir: Option<String>,
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    pub encoding: Charset,
    /// A file is taken only once it is this old (by its remote mtime).
    #[serde(default)]
    pub min_age_s: u64,
    /// A file is taken only once two polls in a row saw the same size and
    /// mtime, so one still being uploaded is left for later.
    #[serde(default = "yes")]
    pub size_stable: bool,
    #[serde(default = "default_max_files_per_poll")]
    pub max_files_per_poll: usize,
    /// Also poll subdirectories (but not `after`'s or `error_dir`).
    #[serde(default)]
    pub recursive: bool,
    /// With `recursive`: how many directory levels below `dir` are polled.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Most directory entries one poll reads (all directories together);
    /// past it the poll takes what it has listed.
    #[serde(default = "default_max_list_entries")]
    pub max_list_entries: usize,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// Larger files are not downloaded (they go to `error_dir`).
    #[serde(default = "default_max_file_mb")]
    pub max_file_mb: u64,
}

impl SftpConfig {
    pub(super) fn check(&self, key: &str) -> Result<()> {
        self.ssh.check(&format!("{key}.ssh"))?;
        check_glob(&self.pattern, &format!("{key}.pattern"))?;
        check_schedule(&self.schedule, &format!("{key}.schedule"))?;
        if self.dir.is_empty() {
            bail!("{key}.dir must not be empty");
        }
        if self.max_files_per_poll == 0 || self.connect_timeout_s == 0 || self.max_file_mb == 0 {
            bail!(
                "{key}: max_files_per_poll, connect_timeout_s and max_file_mb must be at least 1"
            );
        }
        if self.max_list_entries == 0 {
            bail!("{key}.max_list_entries must be at least 1");
        }
        Ok(())
    }

    /// Remote paths (`dir`, `after`, `error_dir`) stay as written; only the
    /// local files of the login are resolved.
    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        self.ssh.resolve(join);
    }
}

fn default_sftp_schedule() -> String {
    "*/10 * * * * *".into()
}
fn default_max_files_per_poll() -> usize {
    500
}
fn default_max_depth() -> usize {
    8
}
fn default_max_list_entries() -> usize {
    10_000
}
