//! `[cron]`: the time zone bots' cron schedules are read in, and what
//! happens to firings missed while the host was down.

use anyhow::Result;
use serde::Deserialize;

use super::values::check_time_zone;

/// What to do about firings missed while the host was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Nothing: the schedule resumes at its next firing.
    #[default]
    None,
    /// One tick for the latest missed firing, however many were missed.
    Last,
}

/// `[cron]`: how bots' cron schedules are evaluated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronConfig {
    /// IANA time zone the schedules are read in.
    #[serde(default = "default_cron_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub catch_up: CatchUp,
}

impl Default for CronConfig {
    fn default() -> Self {
        CronConfig {
            timezone: default_cron_timezone(),
            catch_up: CatchUp::None,
        }
    }
}

impl CronConfig {
    pub(super) fn check(&self) -> Result<()> {
        check_time_zone(&self.timezone, "cron.timezone")
    }
}

fn default_cron_timezone() -> String {
    "UTC".into()
}
