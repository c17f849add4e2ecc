//! `GET /api/v1/bots`: the live bots, what they subscribe to, where their
//! HTTP endpoints are, and how their runs went.
//!
//! Runs counted: `ok`/`failed` since the host started (counters the workers
//! keep, [`crate::runtime::stats`]), and `failed_in_journal`, the failed
//! runs the journal still holds (a count over the `runs_failed` partial
//! index, which holds failed runs only). The last error is the failed run
//! on the newest event, from the same index.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::super::{AppState, Shared};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::journal::admin::LastFailure;
use crate::runtime::routing;
use crate::runtime::stats::RunCounts;

/// The answer of `GET /api/v1/bots`.
#[derive(Debug, Serialize)]
pub struct BotList {
    pub bots: Vec<BotInfo>,
}

/// One live bot.
#[derive(Debug, Serialize)]
pub struct BotInfo {
    pub name: String,
    pub version: String,
    /// The contract it was built against (`interlink:bot@0.2.0`).
    pub contract: &'static str,
    /// Why its `check-settings` refuses its settings; its events wait
    /// until a configuration passes.
    pub settings_error: Option<String>,
    /// The plugin file it was loaded from.
    pub file: Option<String>,
    /// `false` when `[bots.NAME] enabled = false` mutes it.
    pub enabled: bool,
    /// Its effective subscriptions, in words (`hl7 ADT^A04 from in`).
    pub subscriptions: Vec<String>,
    /// Where its HTTP endpoints are (`/bots/<name>/worklist`).
    pub http: Vec<String>,
    pub runs: Runs,
    pub last_error: Option<LastError>,
}

/// A bot's runs.
#[derive(Debug, Serialize)]
pub struct Runs {
    /// Since the host started.
    #[serde(flatten)]
    pub since_start: RunCounts,
    /// Failed runs in the journal (until replayed or purged).
    pub failed_in_journal: i64,
}

/// A bot's latest failed run.
#[derive(Debug, Serialize)]
pub struct LastError {
    pub error: Option<String>,
    /// RFC 3339.
    pub at: Option<String>,
    pub event_id: i64,
}

impl From<LastFailure> for LastError {
    fn from(f: LastFailure) -> Self {
        LastError {
            error: f.error,
            at: f.at_ms.map(crate::instant::rfc3339),
            event_id: f.event_id,
        }
    }
}

/// The live bots, by name.
pub async fn list(shared: &Shared) -> Result<BotList, ApiError> {
    let names = shared.runtime.bot_names();
    let journal = shared.journal.clone();
    let lookup = names.clone();
    let (failed, last) = crate::blocking::run(move || {
        let reader = journal.reader()?;
        let failed = reader.failed_runs_by_bot()?;
        let last = lookup
            .iter()
            .map(|b| reader.last_failure(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((failed, last))
    })
    .await?;
    let rt = &shared.runtime;
    let bots = names
        .into_iter()
        .zip(last)
        .filter_map(|(name, last)| {
            let live = rt.bot(&name)?;
            Some(BotInfo {
                version: live.code.version().to_string(),
                contract: live.code.contract().package(),
                settings_error: live.settings.clone().err(),
                file: rt.file_of(&name).map(|f| f.display().to_string()),
                enabled: rt.config().bots.get(&name).is_none_or(|b| b.enabled),
                subscriptions: live.subscriptions.iter().map(routing::describe).collect(),
                http: live
                    .subscriptions
                    .iter()
                    .filter_map(routing::http_path)
                    .map(|p| format!("/bots/{name}{p}"))
                    .collect(),
                runs: Runs {
                    since_start: rt.stats.of(&name),
                    failed_in_journal: failed
                        .iter()
                        .find(|(b, _)| *b == name)
                        .map_or(0, |(_, n)| *n),
                },
                last_error: last.map(LastError::from),
                name,
            })
        })
        .collect();
    Ok(BotList { bots })
}

/// `GET /api/v1/bots`
pub async fn get_bots(_: Caller, State(state): State<AppState>) -> Result<Json<BotList>, ApiError> {
    Ok(Json(list(&state).await?))
}
