//! `GET /api/v1/destinations`: each destination's queue (depth and age of
//! the oldest waiting message, from the journal's `outbox_pending` index)
//! and live state; `POST /api/v1/destinations/{name}/pause` and `/resume`
//! (write role, audited): a paused destination keeps queueing and delivers
//! nothing until resumed, also across a restart.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::extract::Path;
use crate::http::auth::{Caller, Writer};
use crate::http::error::ApiError;
use crate::http::{AppState, Shared};
use crate::journal::now_ms;
use crate::status::registry;

/// Every destination.
#[derive(Debug, Clone, Serialize)]
pub struct Destinations {
    pub destinations: Vec<DestinationView>,
}

/// A destination's queue and state.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationView {
    pub name: String,
    /// `folder`, `mllp` or `sftp`.
    pub kind: String,
    /// Messages waiting to be delivered.
    pub queue_depth: u64,
    /// How long the oldest of them has waited, in ms.
    pub oldest_pending_age_ms: Option<i64>,
    /// `paused`, `failing`, `connected` or `idle`.
    pub state: &'static str,
    pub paused: bool,
    /// The host's words for the latest failed attempt (the receiver's own
    /// text is in the journal, with the message).
    pub last_error: Option<String>,
    /// Delivered since the host started.
    pub sent: u64,
    /// Failed attempts since the host started.
    pub failed: u64,
}

/// Every destination delivery runs, with its queue read from the journal.
pub async fn destinations(shared: &Shared) -> Result<Destinations, ApiError> {
    let live = registry().destinations();
    let names: Vec<String> = live.iter().map(|(n, _)| n.clone()).collect();
    let journal = shared.journal.clone();
    let queues = crate::blocking::run(move || {
        let reader = journal.reader()?;
        names
            .iter()
            .map(|n| Ok(reader.outbox_queue(n)?))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await?;
    let now = now_ms();
    let destinations = live
        .into_iter()
        .zip(queues)
        .map(|((name, d), (depth, oldest))| DestinationView {
            name,
            kind: d.kind.clone(),
            queue_depth: depth,
            oldest_pending_age_ms: oldest.map(|ms| (now - ms).max(0)),
            state: d.state(),
            paused: d.is_paused(),
            last_error: d.last_error(),
            sent: d.sent(),
            failed: d.failed(),
        })
        .collect();
    Ok(Destinations { destinations })
}

/// Pauses (`paused`) or resumes destination `name`: recorded in the
/// journal first, then its delivery lanes stop or are woken. Answers with
/// the destination as it is now.
pub async fn set_paused(
    shared: &Shared,
    caller: &Caller,
    name: &str,
    paused: bool,
) -> Result<DestinationView, ApiError> {
    let Some(status) = registry().find_destination(name) else {
        return Err(ApiError::not_found(format!(
            "no destination named {name:?}"
        )));
    };
    shared
        .journal
        .set_paused(name, paused)
        .await
        .map_err(|_| ApiError::internal("journal writer stopped"))?
        .map_err(ApiError::internal)?;
    status.set_paused(paused);
    let action = if paused { "pause" } else { "resume" };
    caller.audit(action, &format!("destination {name}"));
    destinations(shared)
        .await?
        .destinations
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no destination named {name:?}")))
}

/// `GET /api/v1/destinations` (any role).
pub async fn list(
    _: Caller,
    State(state): State<AppState>,
) -> Result<Json<Destinations>, ApiError> {
    Ok(Json(destinations(&state).await?))
}

/// `POST /api/v1/destinations/{name}/pause` (write role).
pub async fn pause(
    Writer(caller): Writer,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    Ok(Json(set_paused(&state, &caller, &name, true).await?))
}

/// `POST /api/v1/destinations/{name}/resume` (write role).
pub async fn resume(
    Writer(caller): Writer,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    Ok(Json(set_paused(&state, &caller, &name, false).await?))
}
