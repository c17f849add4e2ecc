//! The outbox: `GET /api/v1/outbox` (newest first, by destination and
//! state) and `POST /api/v1/outbox/{id}/resend` (a dead letter back in its
//! queue).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::super::{AppState, Shared};
use super::events::{OutboxView, given, page_params};
use super::extract::{Path, Query};
use crate::http::auth::{Caller, Writer};
use crate::http::error::ApiError;
use crate::journal::JournalError;
use crate::journal::admin::OutboxQuery;

/// The query string of the outbox listing, as sent; empty values count as
/// absent (as for the search, `events::SearchParams`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    pub destination: Option<String>,
    /// `pending`, `sent` or `dead`.
    pub state: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
}

impl OutboxParams {
    /// The listing these parameters ask for; 400 naming a bad one.
    pub fn query(&self) -> Result<OutboxQuery, ApiError> {
        let state = given(&self.state);
        if let Some(s) = state
            && !["pending", "sent", "dead"].contains(&s)
        {
            return Err(ApiError::bad_request(
                "state: must be pending, sent or dead",
            ));
        }
        let (limit, before) = page_params(&self.limit, &self.before)?;
        Ok(OutboxQuery {
            destination: given(&self.destination).map(str::to_string),
            status: state.map(str::to_string),
            before,
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

#[cfg(test)]
mod tests {
    use super::super::events::{DEFAULT_LIMIT, SearchParams};
    use super::*;

    /// The outbox listing and the search read `limit` and `before` alike.
    #[test]
    fn listings_parse_their_page_alike() {
        let page = |limit: &str, before: &str| {
            let (limit, before) = (Some(limit.to_string()), Some(before.to_string()));
            let outbox = OutboxParams {
                limit: limit.clone(),
                before: before.clone(),
                ..OutboxParams::default()
            }
            .query()
            .map(|q| (q.limit, q.before))
            .map_err(|e| e.message);
            let search = SearchParams {
                limit,
                before,
                ..SearchParams::default()
            }
            .query()
            .map(|q| (q.limit, q.before))
            .map_err(|e| e.message);
            assert_eq!(outbox, search);
            outbox
        };
        assert_eq!(page("", ""), Ok((DEFAULT_LIMIT, None)));
        assert_eq!(page(" 7 ", "12"), Ok((7, Some(12))));
        for (limit, before, named) in [
            ("0", "", "limit"),
            ("501", "", "limit"),
            ("x", "", "limit"),
            ("", "-1", "before"),
        ] {
            let refused = page(limit, before).unwrap_err();
            assert!(
                refused.starts_with(named),
                "{limit:?} {before:?}: {refused}"
            );
        }
    }
}
