//! `[[listener]]`: an MLLP listener, plain or TLS, and when it acknowledges.

use std::path::PathBuf;

use anyhow::{Result, bail};
use interlink_sdk::hl7::Charset;
use serde::Deserialize;

use super::values::{charset, check_server, default_encoding, yes};

/// When a listener acknowledges a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AckWhen {
    /// As soon as the message is durably in the journal.
    #[default]
    Commit,
    /// After the subscribed bot has run, with its ACK.
    Application,
}

/// Server certificate and key, and optionally the CA that client
/// certificates must chain to (mutual TLS).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl ListenerTls {
    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        join(&mut self.cert);
        join(&mut self.key);
        if let Some(ca) = &mut self.client_ca {
            join(ca);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub name: String,
    /// `host:port` to listen on.
    pub listen: String,
    #[serde(default)]
    pub ack: AckWhen,
    /// Character set when MSH-18 is empty.
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    pub encoding: Charset,
    #[serde(default = "default_max_message_kb")]
    pub max_message_kb: usize,
    /// A connection with no traffic for this long is closed.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// A frame that has started must be complete within this.
    #[serde(default = "default_frame_timeout_s")]
    pub frame_timeout_s: u64,
    /// Honour MSH-15/MSH-16 (enhanced acknowledgement mode).
    #[serde(default = "yes")]
    pub enhanced_mode: bool,
    /// A resent message (same sender and MSH-10) within this window gets the
    /// original ACK again and is not processed twice; 0 turns this off.
    #[serde(default = "default_duplicate_window_s")]
    pub duplicate_window_s: u64,
    /// With `ack = "application"`: how long to wait for the bot before
    /// answering AE. Default: the bot time limit plus one second.
    pub application_timeout_ms: Option<u64>,
    pub tls: Option<ListenerTls>,
    /// Connections served at once; further ones are accepted and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Send a failed bot's reason to the sender in ERR-8 (it may hold
    /// patient data); otherwise ERR-8 says "processing failed (event N)".
    #[serde(default)]
    pub detailed_errors: bool,
}

impl ListenerConfig {
    pub(super) fn check(&self, key: &str) -> Result<()> {
        check_server(
            key,
            &self.listen,
            "127.0.0.1:2575",
            ("max_connections", self.max_connections),
            65_536,
        )?;
        if self.max_message_kb == 0 {
            bail!("{key}.max_message_kb must be at least 1");
        }
        Ok(())
    }

    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        if let Some(t) = &mut self.tls {
            t.resolve(join);
        }
    }
}

fn default_max_message_kb() -> usize {
    1024
}
fn default_idle_timeout_s() -> u64 {
    600
}
fn default_frame_timeout_s() -> u64 {
    30
}
fn default_duplicate_window_s() -> u64 {
    600
}
fn default_max_connections() -> usize {
    256
}
