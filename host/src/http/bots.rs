//! Bots over HTTP: `/bots/<bot>/<path>` reaches the bot `<bot>` when one of
//! its `http` subscriptions covers `<path>`. The bot gets the path below
//! its mount point with the query string, the method, the headers (never
//! the caller's credentials) and the body (at most `max_body_kb`).
//!
//! `GET`/`HEAD` are queries, answered at once and not journaled; other
//! methods are commands, journaled first and answered after the run is
//! committed (see `runtime::http`). Who may call: `[bots.NAME] http_role`,
//! by default `read` for queries and `write` for commands. Every refusal
//! is JSON: 401/403 (credentials, role), 404 (no such bot, or a path it
//! does not serve), 400 (a path with `.`/`..` segments, encoded slashes,
//! backslashes or NUL; a bad `Idempotency-Key`), 413 (body too large).

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::AppState;
use super::auth::{CSRF_HEADER, Caller};
use super::error::ApiError;
use crate::config::HttpAccess;
use crate::runtime::http::{Commanded, HttpAnswer, Mount, Request as BotRequest, json_answer};

/// Header naming a command so that a repeat is not processed twice.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Longest `Idempotency-Key` accepted.
const MAX_KEY_LEN: usize = 255;

/// The routes below `/bots`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/bots/{bot}", any(serve))
        .route("/bots/{bot}/{*rest}", any(serve))
}

async fn serve(State(state): State<AppState>, request: Request) -> Response {
    let mut response = match handle(state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    // Bots answer on the dashboard's origin: their pages may not run
    // script there, nor be sniffed into something that does.
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn handle(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (bot, path) = bot_and_path(&parts.uri)?;
    let query = crate::runtime::http::is_query(parts.method.as_str());
    let caller = authorize(&state, &parts, &bot, query)?;
    let mut request = BotRequest {
        method: parts.method.to_string(),
        path,
        headers: passed_headers(&parts.headers),
        body: Vec::new(),
    };
    let prefix = match state.runtime.http_mount(&bot, request.route()) {
        Mount::Served { prefix } => prefix,
        Mount::NoBot => return Err(ApiError::not_found(format!("no bot named {bot:?}"))),
        Mount::NotServed => {
            return Err(ApiError::not_found(format!(
                "bot {bot:?} has no HTTP endpoint at {:?}",
                request.route()
            )));
        }
    };
    request.body = read_body(&parts.headers, body, state.max_body).await?;
    if query {
        let slot = match state.runtime.query_slot() {
            Ok(slot) => slot,
            Err(busy) => return Ok(to_response(busy)),
        };
        let runtime = state.runtime.clone();
        let answer = crate::blocking::run(move || Ok(runtime.query(slot, &bot, &request))).await?;
        return Ok(to_response(answer));
    }
    let key = idempotency_key(&parts.headers)?;
    let target = command_target(&bot, &request.method, &prefix, request.route());
    match &caller {
        Some(caller) => caller.audit("http-command", &target),
        None => tracing::info!("HTTP command from a public caller: {target}"),
    }
    let answer = match state.runtime.command(&bot, &request, key).await? {
        Commanded::Answered(answer) => answer,
        Commanded::Accepted(event_id) => json_answer(
            StatusCode::ACCEPTED.as_u16(),
            &serde_json::json!({ "event_id": event_id, "status": "accepted" }),
        ),
        Commanded::KeyReused(event_id) => json_answer(
            StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            &serde_json::json!({
                "error": "this Idempotency-Key was used for a different request",
                "event_id": event_id,
            }),
        ),
    };
    Ok(to_response(answer))
}

/// What the log says a command was for: the bot, the method and the
/// subscription's prefix; the path itself only with `[log] phi = true`, as
/// the part below the prefix may name a patient (`/patients/<MRN>`).
fn command_target(bot: &str, method: &str, prefix: &str, route: &str) -> String {
    match crate::phi::shown() {
        true => format!("{bot} {method} {prefix} path={route}"),
        false => format!("{bot} {method} {prefix}"),
    }
}

/// The bot's name and the path below its mount point (`/` at least), with
/// the query string, from `/bots/<bot>[/<path>][?<query>]`; 400 for a path
/// that tries to climb out or hide a separator.
fn bot_and_path(uri: &Uri) -> Result<(String, String), ApiError> {
    let below = uri.path().strip_prefix("/bots/").unwrap_or_default();
    let (bot, rest) = match below.find('/') {
        Some(at) => below.split_at(at),
        None => (below, "/"),
    };
    for segment in rest.split('/') {
        let decoded = percent_decode(segment);
        let bad = decoded == b"." || decoded == b".." || decoded.contains(&b'/');
        if bad || decoded.contains(&b'\\') || decoded.contains(&0) {
            return Err(ApiError::bad_request(
                "the path may not contain '.' or '..' segments, encoded slashes, backslashes or NUL",
            ));
        }
    }
    let path = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    Ok((bot.to_string(), path))
}

/// `%XX` escapes decoded (others left as they are).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Who is calling, if the bot's `http_role` lets them: 401 without (or with
/// wrong) credentials, 403 for a `read` token where `write` is needed.
fn authorize(
    state: &AppState,
    parts: &Parts,
    bot: &str,
    query: bool,
) -> Result<Option<Caller>, ApiError> {
    let access = state
        .runtime
        .config()
        .bots
        .get(bot)
        .and_then(|b| b.http_role)
        .unwrap_or(match query {
            true => HttpAccess::Read,
            false => HttpAccess::Write,
        });
    if access == HttpAccess::Public {
        // Nobody's credentials are needed, so none are checked: a signed-in
        // browser need not send the CSRF header.
        return Ok(None);
    }
    match state.auth.identify(parts)? {
        None => Err(ApiError::unauthorized()),
        Some(caller) => {
            if access == HttpAccess::Write {
                caller.require_write()?;
            }
            Ok(Some(caller))
        }
    }
}

/// The body, refused with 413 past `max` bytes (never buffered beyond).
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {} KiB (http.max_body_kb)", max / 1024),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())?;
    Ok(bytes.to_vec())
}

/// The request's headers as the bot (and the journal) gets them: all but
/// the caller's credentials (`Authorization`, `Proxy-Authorization`,
/// `Cookie`, the CSRF token).
fn passed_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            ![
                header::AUTHORIZATION,
                header::PROXY_AUTHORIZATION,
                header::COOKIE,
            ]
            .contains(name)
                && *name != CSRF_HEADER
        })
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect()
}

/// The command's `Idempotency-Key`, if it sent one (400 if it is not 1-255
/// visible ASCII characters).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Headers a bot's answer may not set: the framing is the server's, and
/// cookies would be set on the dashboard's origin.
const WITHHELD_ANSWER_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "set-cookie",
    "set-cookie2",
];

/// An answer as the HTTP response, without [`WITHHELD_ANSWER_HEADERS`].
fn to_response(answer: HttpAnswer) -> Response {
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        if !WITHHELD_ANSWER_HEADERS
            .iter()
            .any(|w| w.eq_ignore_ascii_case(name))
        {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.body))
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(uri: &str) -> Result<(String, String), u16> {
        bot_and_path(&uri.parse().unwrap()).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn paths_below_the_mount_point_keep_their_query() {
        let ok = |b: &str, p: &str| Ok((b.to_string(), p.to_string()));
        assert_eq!(split("/bots/probe"), ok("probe", "/"));
        assert_eq!(split("/bots/probe/p/kv/a?x=1"), ok("probe", "/p/kv/a?x=1"));
        assert_eq!(split("/bots/probe?x"), ok("probe", "/?x"));
        assert_eq!(split("/bots/probe/a%20b/"), ok("probe", "/a%20b/"));
    }

    #[test]
    fn paths_that_climb_or_hide_separators_are_refused() {
        for uri in [
            "/bots/probe/p/../x",
            "/bots/probe/p/./x",
            "/bots/probe/%2e%2e/x",
            "/bots/probe/%2E/x",
            "/bots/probe/p%2fx",
            "/bots/probe/p%5cx",
            "/bots/probe/p%00",
        ] {
            assert_eq!(split(uri), Err(400), "{uri}");
        }
    }

    #[test]
    fn credentials_never_reach_the_bot() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        h.insert(header::PROXY_AUTHORIZATION, "Basic eA==".parse().unwrap());
        h.insert(header::COOKIE, "s=1".parse().unwrap());
        h.insert(CSRF_HEADER, "t".parse().unwrap());
        h.insert(header::ACCEPT, "text/plain".parse().unwrap());
        assert_eq!(
            passed_headers(&h),
            vec![("accept".to_string(), "text/plain".to_string())]
        );
    }
}
