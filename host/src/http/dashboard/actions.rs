//! The actions the dashboard offers `write` users: resend a dead letter,
//! replay an event's failed runs, pause or resume a destination. Each is a
//! link to a confirmation page whose form (with the session's CSRF token)
//! performs it, so it works without JavaScript and nothing happens on a
//! single click. The admin API's functions do the work and the audit line;
//! the role is checked here too, before anything is shown.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{Html, Redirect};
use serde::{Deserialize, Serialize};

use super::session::{CsrfForm, Viewer, form_of};
use super::templates::render;
use crate::http::AppState;
use crate::http::api::extract::{Path, Query};
use crate::http::api::{destinations, events, outbox};
use crate::http::error::ApiError;

/// What the confirmation page asks.
#[derive(Serialize)]
struct Confirm {
    /// `Put outbox message 12 back in its destination's queue?`
    question: String,
    /// Where the form posts.
    action: String,
    /// The button's label.
    verb: &'static str,
    /// Where "Cancel" goes.
    back: String,
    /// The bot to replay, carried by the form.
    bot: Option<String>,
}

fn confirm(viewer: &Viewer, page: Confirm) -> Result<Html<String>, ApiError> {
    viewer.caller.require_write()?;
    render("confirm.html", Some(viewer), page)
}

/// `GET /outbox/{id}/resend`: asks before resending.
pub async fn confirm_resend(viewer: Viewer, Path(id): Path<i64>) -> Result<Html<String>, ApiError> {
    let page = Confirm {
        question: format!("Put outbox message {id} back in its destination's queue?"),
        action: format!("/outbox/{id}/resend"),
        verb: "Resend",
        back: "/outbox?state=dead".into(),
        bot: None,
    };
    confirm(&viewer, page)
}

/// `POST /outbox/{id}/resend`: the dead letter goes back in its queue.
pub async fn resend(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Redirect, ApiError> {
    viewer.check_csrf(&form_of(form)?.csrf)?;
    viewer.caller.require_write()?;
    outbox::resend(&state, &viewer.caller, id).await?;
    Ok(Redirect::to("/outbox?state=dead"))
}

/// `?bot=` of the replay confirmation; the replay form's fields.
#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    /// Only this bot's run; every failed run when absent.
    #[serde(default)]
    bot: Option<String>,
}

impl ReplayForm {
    fn bot(self) -> Option<String> {
        self.bot.filter(|b| !b.is_empty())
    }
}

/// `GET /messages/{id}/replay[?bot=NAME]`: asks before replaying.
pub async fn confirm_replay(
    viewer: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<ReplayForm>,
) -> Result<Html<String>, ApiError> {
    let bot = q.bot();
    let whose = bot
        .as_deref()
        .map(|b| format!(" of bot {b}"))
        .unwrap_or_default();
    let page = Confirm {
        question: format!("Run the work{whose} on event {id} again?"),
        action: format!("/messages/{id}/replay"),
        verb: "Replay",
        back: format!("/messages/{id}"),
        bot,
    };
    confirm(&viewer, page)
}

/// `POST /messages/{id}/replay`: the event's failed runs (or one bot's
/// run) are queued again; shows the message.
pub async fn replay(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    form: Result<Form<ReplayForm>, FormRejection>,
) -> Result<Redirect, ApiError> {
    let form = form_of(form)?;
    viewer.check_csrf(&form.csrf)?;
    viewer.caller.require_write()?;
    events::replay(&state, &viewer.caller, id, form.bot()).await?;
    Ok(Redirect::to(&format!("/messages/{id}")))
}

/// `GET /destinations/{name}/pause` and `.../resume`: asks first.
pub async fn confirm_pause(
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
) -> Result<Html<String>, ApiError> {
    let (verb, question) = match pausing(&action)? {
        true => (
            "Pause",
            format!(
                "Pause destination {name}? Messages keep queueing and nothing is delivered until it is resumed."
            ),
        ),
        false => ("Resume", format!("Resume delivery to destination {name}?")),
    };
    let page = Confirm {
        question,
        action: format!("/destinations/{name}/{action}"),
        verb,
        back: "/".into(),
        bot: None,
    };
    confirm(&viewer, page)
}

/// `POST /destinations/{name}/pause` and `.../resume`.
pub async fn pause(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Redirect, ApiError> {
    viewer.check_csrf(&form_of(form)?.csrf)?;
    viewer.caller.require_write()?;
    destinations::set_paused(&state, &viewer.caller, &name, pausing(&action)?).await?;
    Ok(Redirect::to("/"))
}

/// `pause` → true, `resume` → false.
fn pausing(action: &str) -> Result<bool, ApiError> {
    match action {
        "pause" => Ok(true),
        "resume" => Ok(false),
        _ => Err(ApiError::not_found("no such route")),
    }
}
