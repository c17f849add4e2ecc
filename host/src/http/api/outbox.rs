//! The outbox: `GET /api/v1/outbox` (newest first, by destination and
//! state) and `POST /api/v1/outbox/{id}/resend` (a dead letter back in its
//! queue).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::super::{AppState, Shared};
use super::events::{DEFAULT_LIMIT, MAX_LIMIT, OutboxView};
use super::extract::{Path, Query};
use crate::http::auth::{Caller, Writer};
use crate::http::error::ApiError;
use crate::journal::JournalError;
use crate::journal::admin::OutboxQuery;

/// The query string of the outbox listing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    pub destination: Option<String>,
    /// `pending`, `sent` or `dead`.
    pub state: Option<String>,
    pub limit: Option<usize>,
    pub before: Option<i64>,
}

impl OutboxParams {
    /// The listing these parameters ask for; 400 naming a bad one.
    pub fn query(&self) -> Result<OutboxQuery, ApiError> {
        let state = self.state.as_deref().filter(|s| !s.is_empty());
        if let Some(s) = state
            && !["pending", "sent", "dead"].contains(&s)
        {
            return Err(ApiError::bad_request(
                "state: must be pending, sent or dead",
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit: from 1 to {MAX_LIMIT}"
            )));
        }
        Ok(OutboxQuery {
            destination: self.destination.clone().filter(|d| !d.is_empty()),
            status: state.map(str::to_string),
            before: self.before,
            limit,
        })
    }
}

/// One page of the outbox.
#[derive(Debug, Serialize)]
pub struct OutboxPage {
    /// Newest first.
    pub messages: Vec<OutboxView>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// One page of outbox messages.
pub async fn list(shared: &Shared, q: &OutboxQuery) -> Result<OutboxPage, ApiError> {
    let (journal, q) = (shared.journal.clone(), q.clone());
    let (items, next_before) =
        crate::blocking::run(move || Ok(journal.reader()?.outbox_page(&q)?)).await?;
    Ok(OutboxPage {
        messages: items.into_iter().map(OutboxView::from).collect(),
        next_before,
    })
}

/// `GET /api/v1/outbox`
pub async fn get_outbox(
    _: Caller,
    State(state): State<AppState>,
    Query(params): Query<OutboxParams>,
) -> Result<Json<OutboxPage>, ApiError> {
    Ok(Json(list(&state, &params.query()?).await?))
}

/// The answer to a resend.
#[derive(Debug, Serialize)]
pub struct Resent {
    pub resent: i64,
}

/// Puts dead letter `id` back in its destination's queue and wakes
/// delivery; 404 if there is no such message, 409 if it is not a dead
/// letter. Leaves an audit line.
pub async fn resend(shared: &Shared, caller: &Caller, id: i64) -> Result<Resent, ApiError> {
    let requeued = shared
        .journal
        .outbox_requeue(id)
        .await
        .map_err(|_| ApiError::internal(JournalError::Closed))?
        .map_err(ApiError::internal)?;
    if requeued == 0 {
        let journal = shared.journal.clone();
        let status = crate::blocking::run(move || Ok(journal.reader()?.outbox_status(id)?)).await?;
        return Err(match status {
            None => ApiError::not_found(format!("no outbox message {id}")),
            Some(s) => ApiError::new(
                StatusCode::CONFLICT,
                format!("outbox message {id} is {s}, not a dead letter"),
            ),
        });
    }
    shared.outbox.ring();
    caller.audit("resend", &format!("outbox {id}"));
    Ok(Resent { resent: id })
}

/// `POST /api/v1/outbox/{id}/resend`
pub async fn post_resend(
    Writer(caller): Writer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Resent>, ApiError> {
    Ok(Json(resend(&state, &caller, id).await?))
}
