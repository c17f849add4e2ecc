//! The admin API, `/api/v1` (JSON): bots, the message search and detail,
//! replay, the outbox and resend, sources, destinations with pause and
//! resume, configuration reload, and the hosts sharing the journal. Each endpoint is a thin handler over a
//! plain function of [`Shared`](super::Shared) that the dashboard renders as
//! HTML too.

pub mod bots;
pub mod cluster;
pub mod config;
pub mod destinations;
pub mod events;
pub mod extract;
pub mod outbox;
pub mod shadow;
pub mod sources;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;

/// The routes below `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bots", get(bots::get_bots))
        .route("/bots/{name}/shadow", post(shadow::post_shadow))
        .route("/cluster", get(cluster::get))
        .route("/events", get(events::get_events))
        .route("/events/{id}", get(events::get_event))
        .route("/events/{id}/replay", post(events::post_replay))
        .route("/outbox", get(outbox::get_outbox))
        .route("/outbox/{id}/resend", post(outbox::post_resend))
        .route("/config/reload", post(config::reload))
        .route("/sources", get(sources::get))
        .route("/destinations", get(destinations::list))
        .route("/destinations/{name}/pause", post(destinations::pause))
        .route("/destinations/{name}/resume", post(destinations::resume))
}
