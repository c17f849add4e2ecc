//! The pages that show things: the overview (and its self-refreshing
//! fragment), the message search, a message, the outbox and dead letters,
//! and failed runs. Every page needs a session of any role. Each renders
//! what the admin API's functions return; none has queries of its own.

use axum::extract::State;
use axum::response::Html;
use serde::Serialize;

use super::session::Viewer;
use super::templates::render;
use crate::hl7view::{self, SegmentView};
use crate::http::AppState;
use crate::http::api::bots::{self, BotInfo};
use crate::http::api::destinations::{self, DestinationView};
use crate::http::api::events::{self, EventItem, EventView, OutboxView, SearchParams};
use crate::http::api::extract::{Path, Query};
use crate::http::api::outbox::{self, OutboxParams};
use crate::http::api::sources::{self, Sources};
use crate::http::error::ApiError;

type Page = Result<Html<String>, ApiError>;

#[derive(Serialize)]
struct Overview {
    sources: Sources,
    bots: Vec<BotInfo>,
    destinations: Vec<DestinationView>,
}

async fn overview_data(state: &AppState) -> Result<Overview, ApiError> {
    Ok(Overview {
        sources: sources::sources(state),
        bots: bots::list(state).await?.bots,
        destinations: destinations::destinations(state).await?.destinations,
    })
}

/// `GET /`: sources, bots and destinations with their counters and states.
pub async fn overview(State(state): State<AppState>, viewer: Viewer) -> Page {
    render("overview.html", Some(&viewer), overview_data(&state).await?)
}

/// `GET /overview/live`: the overview's tables alone, which the page
/// fetches every 5 seconds.
pub async fn overview_live(State(state): State<AppState>, viewer: Viewer) -> Page {
    render(
        "overview_live.html",
        Some(&viewer),
        overview_data(&state).await?,
    )
}

/// A page of results with the query that found them.
#[derive(Serialize)]
struct Results<P, T> {
    /// The form's fields as sent.
    params: P,
    rows: Vec<T>,
    /// The query string of the next page, when there is one.
    next: Option<serde_json::Value>,
}

/// `params` with `before` set to `next_before`: the next page's query.
fn next_page(params: &impl Serialize, next_before: Option<i64>) -> Option<serde_json::Value> {
    let before = next_before?;
    let mut q = serde_json::to_value(params).ok()?;
    q.as_object_mut()?.insert("before".into(), before.into());
    Some(q)
}

/// `GET /messages`: the search form and a page of the messages it finds.
pub async fn messages(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<SearchParams>,
) -> Page {
    let found = events::search(&state, &params.query()?).await?;
    let next = next_page(&params, found.next_before);
    let page: Results<_, EventItem> = Results {
        params,
        rows: found.events,
        next,
    };
    render("messages.html", Some(&viewer), page)
}

#[derive(Serialize)]
struct MessagePage {
    event: EventView,
    /// The message as a table...
    segments: Vec<SegmentView>,
    /// ... or why it cannot be read as HL7.
    unreadable: Option<String>,
}

/// `GET /messages/{id}`: one message with its fields named, the ACK sent,
/// each bot's run and log, and the messages it produced.
pub async fn message(State(state): State<AppState>, viewer: Viewer, Path(id): Path<i64>) -> Page {
    let event = events::detail(&state, id).await?;
    let read = match &event.text {
        Some(text) => hl7view::messages_in_text(text),
        None => Err("not UTF-8 text; see raw_base64 in the API".into()),
    };
    let (segments, unreadable) = match read {
        Ok(msgs) => (msgs.iter().flat_map(hl7view::message).collect(), None),
        Err(why) => (Vec::new(), Some(why)),
    };
    let page = MessagePage {
        event,
        segments,
        unreadable,
    };
    render("message.html", Some(&viewer), page)
}

/// `GET /outbox?state=&destination=`: outbound messages, e.g. the dead
/// letters.
pub async fn outbox(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<OutboxParams>,
) -> Page {
    let found = outbox::list(&state, &params.query()?).await?;
    let next = next_page(&params, found.next_before);
    let page: Results<_, OutboxView> = Results {
        params,
        rows: found.messages,
        next,
    };
    render("outbox.html", Some(&viewer), page)
}

/// `GET /failed`: events a bot's run failed on.
pub async fn failed(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(mut params): Query<SearchParams>,
) -> Page {
    params.status = Some("failed".into());
    let found = events::search(&state, &params.query()?).await?;
    let next = next_page(&params, found.next_before);
    let page: Results<_, EventItem> = Results {
        params,
        rows: found.events,
        next,
    };
    render("failed.html", Some(&viewer), page)
}
