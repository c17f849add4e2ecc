//! The pages that show things: the overview (and its self-refreshing
//! fragment), the message search, a message, the outbox and dead letters,
//! and failed runs. Every page needs a session of any role.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use interlink_sdk::hl7::Charset;
use serde::{Deserialize, Serialize};

use super::session::Viewer;
use super::templates::render;
use crate::blocking;
use crate::hl7view::{self, SegmentView};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::journal::{EventFilter, EventSummary, OutboxSummary};

type Page = Result<Html<String>, ApiError>;

/// How many rows a list shows.
const PAGE_ROWS: usize = 50;

/// A source, in the overview.
#[derive(Serialize)]
struct SourceRow {
    kind: &'static str,
    name: String,
}

/// A live bot, in the overview.
#[derive(Serialize)]
struct BotRow {
    name: String,
    version: String,
    subscriptions: Vec<String>,
}

/// A destination, in the overview.
#[derive(Serialize)]
struct DestinationRow {
    name: String,
}

#[derive(Serialize)]
struct Overview {
    sources: Vec<SourceRow>,
    bots: Vec<BotRow>,
    destinations: Vec<DestinationRow>,
}

fn overview_data(state: &AppState) -> Overview {
    let config = state.runtime.config();
    let named = |kind, names: Vec<&String>| {
        names
            .into_iter()
            .map(move |n| SourceRow {
                kind,
                name: n.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut sources = named("MLLP listener", config.listeners.iter().map(|l| &l.name).collect());
    sources.extend(named("folder", config.folders.iter().map(|f| &f.name).collect()));
    sources.extend(named("SFTP", config.sftp_sources.iter().map(|s| &s.name).collect()));
    let bots = state
        .runtime
        .bot_names()
        .into_iter()
        .filter_map(|name| state.runtime.bot(&name))
        .map(|bot| {
            let s = bot.code.summary();
            BotRow {
                name: s.name,
                version: s.version,
                subscriptions: s.subscriptions,
            }
        })
        .collect();
    let destinations = config
        .destinations
        .iter()
        .map(|d| DestinationRow {
            name: d.name.clone(),
        })
        .collect();
    Overview {
        sources,
        bots,
        destinations,
    }
}

/// `GET /`: sources, bots and destinations.
pub async fn overview(State(state): State<AppState>, viewer: Viewer) -> Page {
    render("overview.html", Some(&viewer), overview_data(&state))
}

/// `GET /overview/live`: the overview's tables alone, which the page
/// fetches every 5 seconds.
pub async fn overview_live(State(state): State<AppState>, viewer: Viewer) -> Page {
    render("overview_live.html", Some(&viewer), overview_data(&state))
}

/// The search form's fields, all optional.
#[derive(Deserialize, Serialize, Default)]
pub struct MessageQuery {
    #[serde(default)]
    control_id: String,
    #[serde(default)]
    patient: String,
    #[serde(default, rename = "type")]
    message_type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

#[derive(Serialize)]
struct Messages {
    query: MessageQuery,
    events: Vec<EventSummary>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn path_id(p: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    p.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// `GET /messages`: the search form and the newest messages matching it.
pub async fn messages(
    State(state): State<AppState>,
    viewer: Viewer,
    q: Result<Query<MessageQuery>, QueryRejection>,
) -> Page {
    let query = query(q)?;
    let journal = state.journal.clone();
    let events =
        blocking::run(move || Ok(journal.reader()?.events(EventFilter::All, PAGE_ROWS)?)).await?;
    render("messages.html", Some(&viewer), Messages { query, events })
}

#[derive(Serialize)]
struct MessagePage {
    id: i64,
    kind: String,
    source: String,
    received_at_ms: i64,
    /// The message as a table...
    segments: Vec<SegmentView>,
    /// ... or why it cannot be read as HL7.
    unreadable: Option<String>,
}

/// `GET /messages/{id}`: one message, its fields named.
pub async fn message(
    State(state): State<AppState>,
    viewer: Viewer,
    id: Result<Path<i64>, PathRejection>,
) -> Page {
    let id = path_id(id)?;
    let journal = state.journal.clone();
    let event = blocking::run(move || Ok(journal.reader()?.event(id)?))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    let (segments, unreadable) = match hl7view::messages(&event.body, Charset::Utf8) {
        Ok(msgs) => (msgs.iter().flat_map(hl7view::message).collect(), None),
        Err(why) => (Vec::new(), Some(why)),
    };
    let page = MessagePage {
        id,
        kind: event.kind,
        source: event.source,
        received_at_ms: event.received_at_ms,
        segments,
        unreadable,
    };
    render("message.html", Some(&viewer), page)
}

/// `?state=` of the outbox page.
#[derive(Deserialize, Serialize, Default)]
pub struct OutboxQuery {
    #[serde(default)]
    state: String,
}

#[derive(Serialize)]
struct OutboxPage {
    query: OutboxQuery,
    rows: Vec<OutboxSummary>,
}

/// `GET /outbox?state=dead|pending`: undelivered messages, or only the dead
/// letters.
pub async fn outbox(
    State(state): State<AppState>,
    viewer: Viewer,
    q: Result<Query<OutboxQuery>, QueryRejection>,
) -> Page {
    let query = query(q)?;
    let dead = query.state == "dead";
    let journal = state.journal.clone();
    let rows = blocking::run(move || Ok(journal.reader()?.outbox(dead, PAGE_ROWS)?)).await?;
    render("outbox.html", Some(&viewer), OutboxPage { query, rows })
}

#[derive(Serialize)]
struct FailedPage {
    events: Vec<EventSummary>,
}

/// `GET /failed`: events a bot failed on.
pub async fn failed(State(state): State<AppState>, viewer: Viewer) -> Page {
    let journal = state.journal.clone();
    let events =
        blocking::run(move || Ok(journal.reader()?.events(EventFilter::Failed, PAGE_ROWS)?))
            .await?;
    render("failed.html", Some(&viewer), FailedPage { events })
}
