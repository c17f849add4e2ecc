//! The web dashboard: server-rendered HTML pages for operators (overview,
//! message search and detail, dead letters and failed runs with their
//! Resend/Replay actions), signed in with a token through a session cookie.
//! Templates and assets (htmx, the stylesheet) are compiled into the binary:
//! it works with no internet. Pages read through the same functions as the
//! admin API; actions go through the same checks, and every one is audited.

mod actions;
mod assets;
mod pages;
mod session;
mod templates;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;

/// The dashboard's routes, mounted at `/`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/overview/live", get(pages::overview_live))
        .route("/messages", get(pages::messages))
        .route("/messages/{id}", get(pages::message))
        .route("/outbox", get(pages::outbox))
        .route("/failed", get(pages::failed))
        .route(
            "/outbox/{id}/resend",
            get(actions::confirm_resend).post(actions::resend),
        )
        .route(
            "/messages/{id}/replay",
            get(actions::confirm_replay).post(actions::replay),
        )
        .route(
            "/destinations/{name}/{action}",
            get(actions::confirm_pause).post(actions::pause),
        )
        .route("/signin", get(session::form).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/assets/{name}", get(assets::serve))
}
