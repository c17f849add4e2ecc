//! The actions the dashboard offers `write` users: resend a dead letter,
//! replay an event's failed runs. Each is a link to a confirmation page
//! whose form (with the session's CSRF token) performs it, so it works
//! without JavaScript and nothing happens on a single click. Each action is
//! audited and then shows the list it came from.

use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, Redirect};
use serde::{Deserialize, Serialize};

use super::session::{CsrfForm, Viewer};
use super::templates::render;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::journal;
use tokio::sync::oneshot;

/// What the confirmation page asks.
#[derive(Serialize)]
struct Confirm {
    /// `Resend outbox message 12?`
    question: String,
    /// Where the form posts.
    action: String,
    /// The button's label.
    verb: &'static str,
    /// Where "Cancel" goes.
    back: String,
    /// Extra hidden fields the form carries.
    bot: Option<String>,
}

fn id_of(p: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    p.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn form_of<T>(f: Result<Form<T>, FormRejection>) -> Result<T, ApiError> {
    f.map(|Form(f)| f)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The journal's answer to a write.
async fn settle(rx: oneshot::Receiver<journal::Result<usize>>) -> Result<usize, ApiError> {
    rx.await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// `GET /outbox/{id}/resend`: asks before resending.
pub async fn confirm_resend(
    viewer: Viewer,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Html<String>, ApiError> {
    let id = id_of(id)?;
    viewer.caller.require_write()?;
    let page = Confirm {
        question: format!("Put outbox message {id} back in its destination's queue?"),
        action: format!("/outbox/{id}/resend"),
        verb: "Resend",
        back: "/outbox?state=dead".into(),
        bot: None,
    };
    render("confirm.html", Some(&viewer), page)
}

/// `POST /outbox/{id}/resend`: the dead letter goes back in its queue.
pub async fn resend(
    State(state): State<AppState>,
    viewer: Viewer,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Redirect, ApiError> {
    let id = id_of(id)?;
    viewer.caller.require_write()?;
    viewer.check_csrf(&form_of(form)?.csrf)?;
    if settle(state.journal.outbox_requeue(id)).await? == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("outbox message {id} is not a dead letter"),
        ));
    }
    viewer.caller.audit("resend", &format!("outbox {id}"));
    Ok(Redirect::to("/outbox?state=dead"))
}

/// `?bot=` / the replay form's fields.
#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    /// Only this bot's run.
    #[serde(default)]
    bot: Option<String>,
}

/// `GET /messages/{id}/replay[?bot=NAME]`: asks before replaying.
pub async fn confirm_replay(
    viewer: Viewer,
    id: Result<Path<i64>, PathRejection>,
    q: Result<axum::extract::Query<ReplayForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let id = id_of(id)?;
    let bot = q
        .map_err(|e| ApiError::bad_request(e.body_text()))?
        .0
        .bot
        .filter(|b| !b.is_empty());
    viewer.caller.require_write()?;
    let whose = bot.as_deref().map(|b| format!(" of bot {b}")).unwrap_or_default();
    let page = Confirm {
        question: format!("Run the failed work{whose} on event {id} again?"),
        action: format!("/messages/{id}/replay"),
        verb: "Replay",
        back: "/failed".into(),
        bot,
    };
    render("confirm.html", Some(&viewer), page)
}

/// `POST /messages/{id}/replay`: the event's failed runs (or one bot's)
/// are queued again.
pub async fn replay(
    State(state): State<AppState>,
    viewer: Viewer,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<ReplayForm>, FormRejection>,
) -> Result<Redirect, ApiError> {
    let id = id_of(id)?;
    viewer.caller.require_write()?;
    let form = form_of(form)?;
    viewer.check_csrf(&form.csrf)?;
    let bot = form.bot.filter(|b| !b.is_empty());
    if settle(state.journal.replay(id, bot)).await? == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("event {id} has no failed run to replay"),
        ));
    }
    viewer.caller.audit("replay", &format!("event {id}"));
    Ok(Redirect::to("/failed"))
}
