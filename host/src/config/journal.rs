//! `[journal]`: which database holds the journal (an SQLite file, or a
//! PostgreSQL server that several hosts can share), how long finished
//! events are kept, and how large it may grow.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::ClientTls;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// `sqlite` (default) or `postgres`.
    #[serde(default)]
    pub backend: Backend,
    /// SQLite: the database file.
    #[serde(default = "default_journal_path")]
    pub path: PathBuf,
    /// Processed events older than this are purged.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// SQLite: largest the journal may grow; past it, new input is refused
    /// (NACKed) as it would be on a full disk. Unlimited when absent.
    pub max_size_mb: Option<u64>,
    /// PostgreSQL: the environment variable holding the connection URL
    /// (`postgresql://user:password@host:port/db?sslmode=require`).
    pub url_env: Option<String>,
    /// PostgreSQL: a file holding the connection URL (one line).
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: sessions kept for reads (the writer has one more).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: a statement (or a wait for a lock) running longer is
    /// cancelled, and the write or read fails instead of hanging.
    #[serde(default = "default_statement_timeout_s")]
    pub statement_timeout_s: u64,
    /// PostgreSQL: TLS to the server (`ca` it must chain to; `cert`/`key`
    /// for a client certificate). Whether TLS is required is the URL's
    /// `sslmode`.
    pub tls: Option<ClientTls>,
    /// PostgreSQL: how soon the other hosts sharing the journal take over
    /// the work of a host whose connection went silent (it stops itself
    /// after half of it); the work of a host that dies is taken at once.
    #[serde(default = "default_takeover_s")]
    pub takeover_s: u64,
}

/// Where the journal lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    Postgres,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            backend: Backend::Sqlite,
            path: default_journal_path(),
            retention_days: default_retention_days(),
            max_size_mb: None,
            url_env: None,
            url_file: None,
            pool_size: default_pool_size(),
            statement_timeout_s: default_statement_timeout_s(),
            tls: None,
            takeover_s: default_takeover_s(),
        }
    }
}

impl JournalConfig {
    pub(super) fn check(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                for (set, key) in [
                    (self.url_env.is_some(), "url_env"),
                    (self.url_file.is_some(), "url_file"),
                    (self.tls.is_some(), "tls"),
                ] {
                    if set {
                        bail!("journal.{key} is for backend = \"postgres\"");
                    }
                }
            }
            Backend::Postgres => {
                if self.url_env.is_some() == self.url_file.is_some() {
                    bail!(
                        "journal.url_env or journal.url_file (one of them) names where the \
                         PostgreSQL URL is; the config holds no password"
                    );
                }
                if self.max_size_mb.is_some() {
                    bail!("journal.max_size_mb is for backend = \"sqlite\"");
                }
                if self.pool_size == 0 {
                    bail!("journal.pool_size must be at least 1");
                }
                if self.takeover_s < 2 {
                    bail!("journal.takeover_s must be at least 2");
                }
                if self.statement_timeout_s == 0 {
                    bail!("journal.statement_timeout_s must be at least 1");
                }
            }
        }
        Ok(())
    }

    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        join(&mut self.path);
        if let Some(f) = &mut self.url_file {
            join(f);
        }
        if let Some(t) = &mut self.tls {
            t.resolve(&join);
        }
    }

    /// The PostgreSQL URL, from `url_env` or `url_file`; the error names
    /// the key.
    pub fn postgres_url(&self) -> Result<String> {
        match (&self.url_env, &self.url_file) {
            (Some(var), _) => std::env::var(var)
                .with_context(|| format!("journal.url_env: environment variable {var} is not set")),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|url| url.trim().to_string())
                .with_context(|| format!("journal.url_file: cannot read {}", file.display())),
            (None, None) => bail!("journal.url_env or journal.url_file names the PostgreSQL URL"),
        }
    }
}

fn default_journal_path() -> PathBuf {
    "data/interlink.db".into()
}
fn default_retention_days() -> u32 {
    7
}
fn default_pool_size() -> usize {
    8
}
fn default_statement_timeout_s() -> u64 {
    30
}
fn default_takeover_s() -> u64 {
    10
}
