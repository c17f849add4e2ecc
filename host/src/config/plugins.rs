//! `[plugins]`: the bots' directory, their compile cache, and the limits
//! and retry policy every bot runs under.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory watched for `.wasm` bots.
    #[serde(default = "default_plugins_dir")]
    pub dir: PathBuf,
    /// Where compiled bots are cached; next to the journal by default.
    pub cache_dir: Option<PathBuf>,
    /// Memory cap of one bot instance.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Wall-clock limit of one `handle` call.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts for an event whose bot fails with a retryable error.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, capped at 5 minutes.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: default_plugins_dir(),
            cache_dir: None,
            memory_mb: default_memory_mb(),
            timeout_ms: default_timeout_ms(),
            max_attempts: default_max_attempts(),
            retry_backoff_ms: default_retry_backoff_ms(),
        }
    }
}

impl PluginsConfig {
    pub(super) fn check(&self) -> Result<()> {
        if self.memory_mb == 0 || self.memory_mb > 4096 {
            bail!("plugins.memory_mb = {}: must be 1 to 4096", self.memory_mb);
        }
        if self.timeout_ms == 0 {
            bail!("plugins.timeout_ms must be at least 1");
        }
        if self.max_attempts == 0 {
            bail!("plugins.max_attempts must be at least 1");
        }
        Ok(())
    }
}

fn default_plugins_dir() -> PathBuf {
    "plugins".into()
}
fn default_memory_mb() -> u32 {
    64
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_backoff_ms() -> u64 {
    1000
}
