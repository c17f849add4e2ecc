//! `[log]`: what the host log may contain.

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Log file names and bots' panic and error texts, which may carry
    /// patient data (see [`crate::phi`]). For debugging only; off by default.
    #[serde(default)]
    pub phi: bool,
}
