//! Reloading the configuration while running (`POST /api/v1/config/reload`
//! or SIGHUP): the file is read and checked again; if it is valid it is put
//! in force without a restart (bots' settings, destinations and
//! subscriptions; sources and destinations added, changed or removed; the
//! cron scheduler; HTTP tokens), and if it is not, the host keeps running
//! on the old one and the error names the key.
//!
//! Some keys are read once at start; a reload that changes them says so
//! (`restart_needed`) and leaves them as they were.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::http::auth::{Auth, Tokens};
use crate::runtime::Runtime;
use crate::services::Services;

/// What a reload did.
#[derive(Debug, Serialize)]
pub struct Reloaded {
    /// What was started, stopped or restarted, one line each.
    pub changes: Vec<String>,
    /// Keys that changed but take effect only after a restart.
    pub restart_needed: Vec<String>,
}

/// Puts a re-read configuration in force.
pub struct Reloader {
    /// The config file; `None` for the embedded default.
    path: Option<PathBuf>,
    runtime: Arc<Runtime>,
    /// Held for the whole of a reload, so two never interleave.
    services: tokio::sync::Mutex<Services>,
    /// The HTTP server's tokens, when it runs.
    auth: Option<Arc<Auth>>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        runtime: Arc<Runtime>,
        services: Services,
        auth: Option<Arc<Auth>>,
    ) -> Reloader {
        Reloader {
            path,
            runtime,
            services: tokio::sync::Mutex::new(services),
            auth,
        }
    }

    /// Re-reads the configuration and puts it in force; the outcome is
    /// logged.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let result = self.reload_now().await;
        match &result {
            Ok(r) => {
                tracing::info!(changes = ?r.changes, "configuration reloaded");
                if !r.restart_needed.is_empty() {
                    tracing::warn!(keys = ?r.restart_needed, "these changes take effect only after a restart");
                }
            }
            Err(e) => tracing::error!("{e}"),
        }
        result
    }

    async fn reload_now(&self) -> Result<Reloaded, ReloadError> {
        let mut services = self.services.lock().await;
        let path = self.path.clone();
        let mut new = crate::blocking::run(move || Config::load_or_default(path.as_deref()))
            .await
            .map_err(ReloadError::Invalid)?;
        let tokens = match (&self.auth, &new.http) {
            (Some(_), Some(http)) => Some(
                Tokens::from_config(http)
                    .context("http")
                    .map_err(ReloadError::Invalid)?,
            ),
            _ => None,
        };
        let old = self.runtime.config();
        let restart_needed = restart_needed(&old, &new);
        keep_start_only_settings(&old, &mut new);
        let new = Arc::new(new);
        // From here on the new configuration goes in force, even if a
        // source cannot start: what runs and what the runtime knows agree.
        let (runtime, config) = (self.runtime.clone(), new.clone());
        crate::blocking::run(move || {
            runtime.reconfigure(config);
            Ok(())
        })
        .await
        .map_err(ReloadError::Partial)?;
        if let (Some(auth), Some(tokens)) = (&self.auth, tokens) {
            auth.replace_tokens(tokens);
        }
        let mut changes = services.apply(&new).await.map_err(ReloadError::Partial)?;
        if old.bots != new.bots {
            changes.push("bots' settings, destinations and subscriptions updated".into());
        }
        if old.http.as_ref().map(|h| &h.tokens) != new.http.as_ref().map(|h| &h.tokens) {
            changes.push("HTTP tokens updated".into());
        }
        Ok(Reloaded {
            changes,
            restart_needed,
        })
    }
}

/// Why a reload did not (wholly) happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is invalid: nothing changed.
    #[error("configuration not reloaded, still running on the old one: {0:#}")]
    Invalid(anyhow::Error),
    /// The new configuration is in force, but a part of it could not start
    /// (a port in use): it stays stopped until a reload that starts it.
    #[error("configuration reloaded, but a part of it could not start: {0:#}")]
    Partial(anyhow::Error),
}

/// Puts `old`'s values of the keys read only at start into `new`, so that
/// nothing reads a changed value before a restart applies it everywhere.
/// `[http]` tokens are the exception: they apply at once.
fn keep_start_only_settings(old: &Config, new: &mut Config) {
    new.journal = old.journal.clone();
    new.plugins = old.plugins.clone();
    new.log = old.log.clone();
    let tokens = new.http.take().map(|h| h.tokens).unwrap_or_default();
    new.http = old.http.clone().map(|mut http| {
        http.tokens = tokens;
        http
    });
}

/// The keys read only at start that differ between `old` and `new`.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut differ = |key: &str, changed: bool| {
        if changed {
            keys.push(key.to_string());
        }
    };
    differ("journal", old.journal != new.journal);
    differ("plugins", old.plugins != new.plugins);
    differ("log", old.log != new.log);
    match (&old.http, &new.http) {
        (Some(o), Some(n)) => {
            differ("http.listen", o.listen != n.listen);
            differ("http.tls", o.tls != n.tls);
            differ("http.max_body_kb", o.max_body_kb != n.max_body_kb);
            differ(
                "http.max_connections",
                o.max_connections != n.max_connections,
            );
            differ("http.session_hours", o.session_hours != n.session_hours);
        }
        (o, n) => differ("http", o.is_some() != n.is_some()),
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names_the_keys_that_need_a_restart_and_keeps_their_old_values() {
        let parse = |t: &str| Config::parse(t, Path::new("/x")).unwrap();
        let old = parse("[plugins]\ntimeout_ms = 100\n");
        let mut new = parse("[plugins]\ntimeout_ms = 200\n[[folder]]\nname='f'\ndir='d'\n");
        assert_eq!(restart_needed(&old, &new), ["plugins"]);
        assert!(restart_needed(&old, &old).is_empty());
        keep_start_only_settings(&old, &mut new);
        assert_eq!(new.plugins.timeout_ms, 100);
        assert_eq!(new.folders.len(), 1);
    }
}
