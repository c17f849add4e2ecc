//! Counters of finished runs per bot since the host started, kept by the
//! workers after each commit, for the admin API's bot list (counting done
//! runs in the journal would scan the whole `runs` table).

use std::collections::HashMap;
use std::sync::Mutex;

/// Runs finished per bot: (done, failed).
#[derive(Debug, Default)]
pub struct RunStats(Mutex<HashMap<String, RunCounts>>);

/// One bot's finished runs since the host started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub ok: u64,
    pub failed: u64,
}

impl RunStats {
    /// Adds a committed batch's finished runs.
    pub fn count(&self, bot: &str, ok: u64, failed: u64) {
        let mut all = self.0.lock().expect("run stats lock");
        let c = all.entry(bot.to_string()).or_default();
        c.ok += ok;
        c.failed += failed;
    }

    /// The counts of `bot` (zero if it has finished nothing).
    pub fn of(&self, bot: &str) -> RunCounts {
        let all = self.0.lock().expect("run stats lock");
        all.get(bot).copied().unwrap_or_default()
    }
}
