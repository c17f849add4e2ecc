//! `[http]`: the one HTTP server (bots' endpoints, the admin API, the
//! dashboard, metrics) and the tokens that may use it.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::listener::ListenerTls;
use super::values::{check_name, check_server};

/// What a token may do: `read` sees everything, `write` may also act
/// (replay, resend, pause, reload, commands to bots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
}

/// Who may call a bot's HTTP endpoints (`[bots.NAME] http_role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAccess {
    /// Anyone, without a token.
    Public,
    /// Any token.
    Read,
    /// Only `write` tokens.
    Write,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub listen: String,
    /// Serve HTTPS with this certificate (and, with `client_ca`, require
    /// client certificates).
    pub tls: Option<ListenerTls>,
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenConfig>,
    /// Largest request body accepted, in KiB.
    #[serde(default = "default_max_body_kb")]
    pub max_body_kb: usize,
    /// Connections served at once; further ones are accepted and closed at
    /// once (logged once a second with a count).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a dashboard sign-in lasts.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

/// A bearer token: its name (for the audit log), its role, and where its
/// secret is read from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Refused with a message: see `token_env` and `token_file`.
    #[serde(default)]
    token: Option<toml::Value>,
}

/// Tokens shorter than this are refused: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

impl HttpConfig {
    pub(super) fn check(&self, key: &str) -> Result<()> {
        check_server(
            key,
            &self.listen,
            "127.0.0.1:8080",
            ("max_connections", self.max_connections),
            65_536,
        )?;
        if self.max_body_kb == 0 {
            bail!("{key}.max_body_kb must be at least 1");
        }
        if self.session_hours == 0 {
            bail!("{key}.session_hours must be at least 1");
        }
        let mut names = HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let key = format!("{key}.token[{i}]");
            check_name(&t.name, &format!("{key}.name"))?;
            if !names.insert(t.name.as_str()) {
                bail!("{key}.name = {:?}: another token has that name", t.name);
            }
            if t.token.is_some() {
                bail!(
                    "{key}.token: secrets are not read from the config; use token_env or token_file"
                );
            }
            if t.token_env.is_some() == t.token_file.is_some() {
                bail!("{key}: set exactly one of token_env, token_file");
            }
        }
        Ok(())
    }

    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        if let Some(t) = &mut self.tls {
            t.resolve(&join);
        }
        for t in &mut self.tokens {
            if let Some(f) = &mut t.token_file {
                join(f);
            }
        }
    }

    /// Reads every token's secret, so that a missing one fails the check of
    /// the configuration, naming its key.
    pub(super) fn check_secrets(&self, key: &str) -> Result<()> {
        for (i, t) in self.tokens.iter().enumerate() {
            let key = format!("{key}.token[{i}]");
            let secret = t.secret().with_context(|| key.clone())?;
            if secret.len() < MIN_TOKEN_LEN {
                bail!("{key}: the token must be at least {MIN_TOKEN_LEN} characters");
            }
        }
        Ok(())
    }
}

impl TokenConfig {
    /// The token itself, from `token_env` or `token_file`.
    pub fn secret(&self) -> Result<String> {
        match (&self.token_env, &self.token_file) {
            (Some(var), _) => crate::secret::from_env(var).context("token_env"),
            (None, Some(file)) => crate::secret::from_file(file).context("token_file"),
            (None, None) => bail!("no token_env or token_file"),
        }
    }
}

/// Writes a new random token to `file` (readable by its owner only) unless
/// it exists.
pub(super) fn generate_token_file(file: &std::path::Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if file.exists() {
        return Ok(());
    }
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).context("the operating system's random source")?;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file);
    match created {
        Ok(mut f) => {
            writeln!(f, "{}", hex::encode(bytes))
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", file.display()))?;
            tracing::info!("generated the dashboard token in {}", file.display());
            Ok(())
        }
        // Another process made it meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", file.display())),
    }
}

fn default_max_body_kb() -> usize {
    1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_session_hours() -> u64 {
    12
}
