//! `[bots.NAME]`: what the host adds to or narrows in a bot: its settings,
//! the destinations it may use, and its subscriptions.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Result, bail};
use serde::Deserialize;

use super::values::{check_schedule, yes};

/// One subscription written in the config (exactly one key set).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// MSH-9 patterns.
    pub hl7: Option<Vec<String>>,
    /// With `hl7`: only from this source.
    pub source: Option<String>,
    /// Non-HL7 files from this source.
    pub files: Option<String>,
    pub cron: Option<String>,
    pub http: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// Read by the bot with `host::config`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// When set, the only destinations the bot may send to.
    pub destinations: Option<Vec<String>>,
    /// Replaces the manifest's subscriptions.
    pub subscribe: Option<Vec<SubscriptionConfig>>,
    /// Added to the manifest's (or `subscribe`'s) subscriptions.
    #[serde(default)]
    pub subscribe_also: Vec<SubscriptionConfig>,
    /// A disabled bot is loaded and checked but gets no events.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Who may call the bot's HTTP endpoints; by default `write` tokens
    /// for commands and any token for queries (GET/HEAD).
    pub http_role: Option<super::HttpAccess>,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            settings: BTreeMap::new(),
            destinations: None,
            subscribe: None,
            subscribe_also: Vec::new(),
            enabled: true,
            http_role: None,
        }
    }
}

impl BotConfig {
    /// `destinations` are the names of the configured destinations.
    pub(super) fn check(&self, key: &str, destinations: &HashSet<&str>) -> Result<()> {
        for d in self.destinations.iter().flatten() {
            if !destinations.contains(d.as_str()) {
                bail!("{key}.destinations: no [[destination]] is named {d:?}");
            }
        }
        let all = self.subscribe.iter().flatten().chain(&self.subscribe_also);
        for (j, s) in all.enumerate() {
            let key = format!("{key}: subscription {}", j + 1);
            s.check(&key)?;
        }
        Ok(())
    }
}

impl SubscriptionConfig {
    fn check(&self, key: &str) -> Result<()> {
        let set = [
            self.hl7.is_some(),
            self.files.is_some(),
            self.cron.is_some(),
            self.http.is_some(),
        ];
        if set.iter().filter(|x| **x).count() != 1 {
            bail!("{key} must set exactly one of hl7, files, cron, http");
        }
        if let Some(c) = &self.cron {
            check_schedule(c, &format!("{key}: cron"))?;
        }
        if self.source.is_some() && self.hl7.is_none() {
            bail!("{key}: `source` goes with `hl7`");
        }
        Ok(())
    }
}
