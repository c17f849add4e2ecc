//! Messages: `GET /api/v1/events` (the search), `GET /api/v1/events/{id}`
//! (everything that happened to one), `POST /api/v1/events/{id}/replay`.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::super::{AppState, Shared};
use super::extract::{OptionalJson, Path, Query};
use crate::http::auth::{Caller, Writer};
use crate::http::error::ApiError;
use crate::instant::rfc3339;
use crate::intake::Router;
use crate::journal::admin::{EventDetail, OutboxItem, RunDetail};
use crate::journal::search::{EventQuery, EventStatus, FoundEvent, RunState};
use crate::journal::{JournalError, RunLog};

/// Events per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// Most events per page.
pub const MAX_LIMIT: usize = 500;

/// The query string of the search, as sent; empty values count as absent
/// (what an HTML form sends for a field left blank).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub control_id: Option<String>,
    pub patient: Option<String>,
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
}

/// A parameter's value, trimmed; `None` when absent or empty.
pub(super) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A time parameter: RFC 3339 or ms since the epoch.
fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(v) = given(v) else { return Ok(None) };
    crate::instant::parse(v).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{name}: not an RFC 3339 time or ms since the epoch"
        ))
    })
}

fn number_param(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    given(v)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request(format!("{name}: not a positive integer")))
        })
        .transpose()
}

/// A listing's `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`])
/// and `before` cursor, parsed alike for every listing: empty values count
/// as absent; 400 naming a bad one.
pub(super) fn page_params(
    limit: &Option<String>,
    before: &Option<String>,
) -> Result<(usize, Option<i64>), ApiError> {
    let limit = number_param("limit", limit)?.map_or(DEFAULT_LIMIT, |n| n as usize);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("limit: at most {MAX_LIMIT}")));
    }
    Ok((limit, number_param("before", before)?))
}

impl SearchParams {
    /// The search these parameters ask for; 400 naming the parameter that
    /// does not parse.
    pub fn query(&self) -> Result<EventQuery, ApiError> {
        let text = |v: &Option<String>| given(v).map(str::to_string);
        let status = given(&self.status)
            .map(|s| {
                EventStatus::parse(s).ok_or_else(|| {
                    ApiError::bad_request(format!("status: must be {}", EventStatus::NAMES))
                })
            })
            .transpose()?;
        let (limit, before) = page_params(&self.limit, &self.before)?;
        Ok(EventQuery {
            control_id: text(&self.control_id),
            patient: text(&self.patient),
            message_type: text(&self.message_type),
            source: text(&self.source),
            status,
            since_ms: time_param("since", &self.since)?,
            until_ms: time_param("until", &self.until)?,
            before,
            limit,
        })
    }
}

/// One page of the search.
#[derive(Debug, Serialize)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<EventItem>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// An event in the search results.
#[derive(Debug, Serialize)]
pub struct EventItem {
    pub id: i64,
    /// `hl7`, `file`, `tick` or `http`.
    pub kind: String,
    pub source: String,
    /// MSH-9.
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    /// PID-3.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    pub status: EventStatus,
    /// Each bot's run.
    pub bots: Vec<RunState>,
}

impl From<FoundEvent> for EventItem {
    fn from(e: FoundEvent) -> Self {
        EventItem {
            id: e.id,
            kind: e.kind,
            source: e.source,
            message_type: e.message_type,
            control_id: e.control_id,
            patient: e.patient_id,
            received_at: rfc3339(e.received_at_ms),
            status: e.status,
            bots: e.runs,
        }
    }
}

/// The message search; 400 for a search the journal refuses.
pub async fn search(shared: &Shared, q: &EventQuery) -> Result<EventPage, ApiError> {
    let (journal, q) = (shared.journal.clone(), q.clone());
    let page = crate::blocking::run(move || Ok(journal.reader()?.search(&q)))
        .await?
        .map_err(|e| match e {
            JournalError::Refused(message) => ApiError::bad_request(message),
            e => ApiError::internal(e),
        })?;
    Ok(EventPage {
        events: page.events.into_iter().map(EventItem::from).collect(),
        next_before: page.next_before,
    })
}

/// `GET /api/v1/events`
pub async fn get_events(
    _: Caller,
    State(state): State<AppState>,
    Query(params): Query<SearchParams>,
) -> Result<Json<EventPage>, ApiError> {
    Ok(Json(search(&state, &params.query()?).await?))
}

/// One event and everything that happened to it.
#[derive(Debug, Serialize)]
pub struct EventView {
    pub id: i64,
    pub kind: String,
    pub source: String,
    /// The event's name (`events.name`): for a `file` event the file it
    /// came from, for an `http` command the request path below the
    /// bot's mount point, with its query string; `null` for others.
    pub file: Option<String>,
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    pub patient: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    pub status: EventStatus,
    /// The message as text (for a file that is not UTF-8: `null`, see
    /// `raw_base64`).
    pub text: Option<String>,
    /// The bytes as received, where they are not the UTF-8 of `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// The ACK a listener answered with.
    pub ack: Option<String>,
    pub runs: Vec<RunView>,
    /// The messages its runs queued, with their delivery state.
    pub outbox: Vec<OutboxView>,
}

/// A bot's run of the event.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub bot: String,
    /// `pending`, `done` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub bot_version: Option<String>,
    pub duration_us: Option<i64>,
    /// When the run last changed (RFC 3339).
    pub updated_at: Option<String>,
    /// Its log lines (of the latest attempt).
    pub logs: Vec<RunLog>,
}

impl From<RunDetail> for RunView {
    fn from(r: RunDetail) -> Self {
        RunView {
            bot: r.bot,
            status: r.status,
            attempts: r.attempts,
            error: r.error,
            bot_version: r.bot_version,
            duration_us: r.duration_us,
            updated_at: r.updated_ms.map(rfc3339),
            logs: r.logs,
        }
    }
}

/// An outbound message without its text, with its delivery state.
#[derive(Debug, Serialize)]
pub struct OutboxView {
    pub id: i64,
    pub event_id: i64,
    pub bot: String,
    pub destination: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub sent_at: Option<String>,
    /// RFC 3339: not delivered before then (a delayed message).
    pub not_before: Option<String>,
    /// The file name a bot gave its bytes.
    pub file_name: Option<String>,
}

impl From<OutboxItem> for OutboxView {
    fn from(m: OutboxItem) -> Self {
        OutboxView {
            id: m.id,
            event_id: m.event_id,
            bot: m.bot,
            destination: m.destination,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: rfc3339(m.created_ms),
            sent_at: m.sent_ms.map(rfc3339),
            not_before: m.not_before_ms.map(rfc3339),
            file_name: m.file_name,
        }
    }
}

impl From<EventDetail> for EventView {
    fn from(e: EventDetail) -> Self {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let (text, raw_base64) = match String::from_utf8(e.body) {
            Ok(text) => (Some(text), e.raw.as_deref().map(b64)),
            Err(bytes) => (None, Some(b64(bytes.as_bytes()))),
        };
        let status = EventStatus::of_runs(e.routed, e.runs.iter().map(|r| r.status.as_str()));
        EventView {
            id: e.id,
            kind: e.kind,
            source: e.source,
            file: e.name,
            message_type: e.message_type,
            control_id: e.control_id,
            patient: e.patient_id,
            received_at: rfc3339(e.received_at_ms),
            status,
            text,
            raw_base64,
            ack: e.ack.map(|a| String::from_utf8_lossy(&a).into_owned()),
            runs: e.runs.into_iter().map(RunView::from).collect(),
            outbox: e.outbox.into_iter().map(OutboxView::from).collect(),
        }
    }
}

/// Event `id`; 404 if there is none.
pub async fn detail(shared: &Shared, id: i64) -> Result<EventView, ApiError> {
    let journal = shared.journal.clone();
    let found = crate::blocking::run(move || Ok(journal.reader()?.event_detail(id)?)).await?;
    found
        .map(EventView::from)
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))
}

/// `GET /api/v1/events/{id}`
pub async fn get_event(
    _: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<EventView>, ApiError> {
    Ok(Json(detail(&state, id).await?))
}

/// The body of a replay: which bot, or every bot whose run failed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    pub bot: Option<String>,
}

/// The answer to a replay.
#[derive(Debug, Serialize)]
pub struct Replayed {
    /// Runs put back in their bots' queues.
    pub replayed: usize,
}

/// Puts event `id`'s failed runs (or, with `bot`, that bot's run, whatever
/// its outcome) back in the queue and wakes the bots; 404 for an unknown
/// event or a bot that is not live. Leaves an audit line.
pub async fn replay(
    shared: &Shared,
    caller: &Caller,
    id: i64,
    bot: Option<String>,
) -> Result<Replayed, ApiError> {
    if let Some(b) = &bot
        && shared.runtime.bot(b).is_none()
    {
        return Err(ApiError::not_found(format!("no live bot {b:?}")));
    }
    let journal = shared.journal.clone();
    let exists = crate::blocking::run(move || Ok(journal.reader()?.event(id)?.is_some())).await?;
    if !exists {
        return Err(ApiError::not_found(format!("no event {id}")));
    }
    let replayed = shared
        .journal
        .replay(id, bot.clone())
        .await
        .map_err(|_| ApiError::internal(JournalError::Closed))?
        .map_err(ApiError::internal)?;
    let woken = match &bot {
        Some(b) => vec![b.clone()],
        None => shared.runtime.bot_names(),
    };
    for b in &woken {
        shared.runtime.wake(b);
    }
    let object = match &bot {
        Some(b) => format!("event {id} bot {b}"),
        None => format!("event {id}"),
    };
    caller.audit("replay", &object);
    Ok(Replayed { replayed })
}

/// `POST /api/v1/events/{id}/replay`
pub async fn post_replay(
    Writer(caller): Writer,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ReplayRequest>,
) -> Result<Json<Replayed>, ApiError> {
    Ok(Json(replay(&state, &caller, id, body.bot).await?))
}
