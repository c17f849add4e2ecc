//! `POST /api/v1/bots/{name}/shadow` (write role): the candidate's `.wasm`
//! as the body, the options of `interlink shadow` in the query string
//! (`since`, `from`, `to`, `source`, `type`, `limit`, `ignore` as a
//! comma-separated list, `details`); answers the report as JSON. A thin
//! handler over [`crate::shadow::run`], off the async runtime.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::super::{AppState, Shared};
use super::events::given;
use super::extract::{Path, Query};
use crate::http::auth::{Caller, Writer};
use crate::http::error::ApiError;
use crate::shadow::report::Report;
use crate::shadow::{self, Options};

/// Largest candidate accepted, in bytes.
const MAX_WASM: usize = 32 << 20;

/// The query string, as sent; empty values count as absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowParams {
    since: Option<String>,
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    limit: Option<String>,
    ignore: Option<String>,
    details: Option<String>,
}

impl ShadowParams {
    fn options(&self) -> Result<Options, ApiError> {
        let number = |name: &str, v: &Option<String>| {
            given(v)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        ApiError::bad_request(format!("{name}: not a non-negative integer"))
                    })
                })
                .transpose()
        };
        Ok(Options {
            since: self.since.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            source: self.source.clone(),
            message_type: self.message_type.clone(),
            limit: number("limit", &self.limit)?,
            ignore: self.ignore.iter().cloned().collect(),
            details: number("details", &self.details)?,
        })
    }
}

/// Shadows the live bot `bot` with the candidate `wasm`: 404 for a bot
/// that is not live, 400 naming a bad option or for a body that is not a
/// bot, 422 when the candidate refuses the bot's settings. Leaves an audit
/// line.
async fn shadow(
    shared: &Shared,
    caller: &Caller,
    bot: &str,
    params: &ShadowParams,
    wasm: bytes::Bytes,
) -> Result<Report, ApiError> {
    let Some(live) = shared.runtime.bot(bot) else {
        return Err(ApiError::not_found(format!("no live bot {bot:?}")));
    };
    let plan = params
        .options()?
        .parse(crate::journal::now_ms())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    caller.audit("shadow", &format!("bot {bot}"));
    let runtime = shared.runtime.clone();
    let bot = bot.to_string();
    let work = move || -> Result<Report, ApiError> {
        let candidate = runtime
            .engine()
            .load(&wasm)
            .map_err(|e| ApiError::bad_request(format!("body: the candidate {e:#}")))?;
        let reader = runtime
            .journal()
            .dedicated_reader()
            .map_err(ApiError::internal)?;
        shadow::run(reader, &bot, &candidate, live.policy.clone(), plan).map_err(|e| {
            match e.downcast::<shadow::RefusedSettings>() {
                Ok(refused) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, refused.to_string()),
                Err(e) => ApiError::internal(e),
            }
        })
    };
    crate::blocking::run(move || Ok(work()))
        .await
        .map_err(ApiError::internal)?
}

/// `POST /api/v1/bots/{name}/shadow`
pub async fn post_shadow(
    Writer(caller): Writer,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ShadowParams>,
    body: Body,
) -> Result<Json<Report>, ApiError> {
    let wasm = axum::body::to_bytes(body, MAX_WASM).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: a candidate of at most {} MiB", MAX_WASM >> 20),
        )
    })?;
    Ok(Json(shadow(&state, &caller, &name, &params, wasm).await?))
}
