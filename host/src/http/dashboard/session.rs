//! Signing in and out of the dashboard, and who is looking at a page.
//!
//! Signing in with a token opens a session (`Auth::sign_in`) held in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind TLS). Every form
//! that changes state carries the session's CSRF token in a hidden `csrf`
//! field, checked in constant time; htmx requests also send it in the
//! `x-csrf-token` header (set on `<body>`), which the admin API requires of
//! cookie-authenticated requests.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, extract::rejection::FormRejection};
use serde::{Deserialize, Serialize};

use super::templates::render;
use crate::http::AppState;
use crate::http::auth::{Caller, SESSION_COOKIE, Session, csrf_refused, session_cookie};
use crate::http::error::ApiError;

/// The signed-in person looking at a page: any role may read; actions check
/// [`Viewer::require_write`] and the form's CSRF token.
#[derive(Serialize)]
pub struct Viewer {
    /// The token's name.
    pub name: String,
    pub can_write: bool,
    /// Goes into every form and into htmx's request headers.
    pub csrf: String,
    #[serde(skip)]
    pub caller: Caller,
    #[serde(skip)]
    session: Session,
}

impl Viewer {
    /// Fails with 403 unless `sent` is this session's CSRF token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), ApiError> {
        match self.session.csrf_ok(sent) {
            true => Ok(()),
            false => Err(csrf_refused()),
        }
    }
}

/// Without a valid session, pages send the browser to the sign-in form;
/// htmx requests (the overview's refresh) get 401 with `HX-Redirect`, so
/// the whole page goes there rather than the form landing inside it.
pub struct SignInFirst {
    htmx: bool,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        if self.htmx {
            (StatusCode::UNAUTHORIZED, [("hx-redirect", "/signin")]).into_response()
        } else {
            Redirect::to("/signin").into_response()
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SignInFirst> {
        let first = || SignInFirst {
            htmx: parts.headers.contains_key("hx-request"),
        };
        let id = session_cookie(parts).ok_or_else(first)?;
        let (caller, session) = state.auth.session(id).ok_or_else(first)?;
        Ok(Viewer {
            name: caller.name.clone(),
            can_write: caller.can_write(),
            csrf: session.csrf.clone(),
            caller,
            session,
        })
    }
}

/// What the sign-in page shows.
#[derive(Serialize, Default)]
struct SignInPage {
    error: Option<&'static str>,
}

/// `GET /signin`.
pub async fn form() -> Result<Response, ApiError> {
    Ok(render("signin.html", None, SignInPage::default())?.into_response())
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
}

/// `POST /signin`: a session cookie and the overview, or the form again
/// with 401.
pub async fn sign_in(
    State(state): State<AppState>,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let form = form_of(form)?;
    let Some((id, session)) = state.auth.sign_in(form.token.trim()) else {
        tracing::warn!("dashboard sign-in refused: wrong token");
        let page = SignInPage {
            error: Some("That token is not valid."),
        };
        return Ok((StatusCode::UNAUTHORIZED, render("signin.html", None, page)?).into_response());
    };
    tracing::info!(target: "audit", token = %session.token, "audit: {} sign-in dashboard", session.token);
    let tls = state
        .runtime
        .config()
        .http
        .as_ref()
        .is_some_and(|h| h.tls.is_some());
    Ok(with_cookie(
        Redirect::to("/"),
        &session_set_cookie(&id, tls),
    ))
}

/// A form that carries only the CSRF token (missing: refused like a wrong one).
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /signout`: ends the session and clears the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let form = form_of(form)?;
    viewer.check_csrf(&form.csrf)?;
    if let Some(id) = &viewer.caller.session {
        state.auth.sign_out(id);
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok(with_cookie(Redirect::to("/signin"), &cookie))
}

/// The `Set-Cookie` value of a new session: `Secure` when served over TLS.
fn session_set_cookie(id: &str, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// A form body, or 400 with axum's words for what is wrong with it.
pub fn form_of<T>(form: Result<Form<T>, FormRejection>) -> Result<T, ApiError> {
    form.map(|Form(f)| f)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn with_cookie(redirect: Redirect, cookie: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(cookie).expect("cookie is ASCII"),
    );
    (headers, redirect).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_behind_tls() {
        assert_eq!(
            session_set_cookie("abc", false),
            "interlink_session=abc; HttpOnly; SameSite=Strict; Path=/"
        );
        assert_eq!(
            session_set_cookie("abc", true),
            "interlink_session=abc; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
    }
}
