//! `GET /metrics` (Prometheus text format; the names are in
//! [`crate::telemetry`]) and `GET /ready` (is the host able to take work:
//! journal writable, bots loaded, listeners bound). Both need a token, of
//! either role.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::api::destinations::destinations;
use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, Shared};
use crate::status::registry;
use crate::telemetry;

/// Longest the readiness check waits for the journal's writer.
const JOURNAL_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics, with the gauges read from the journal (queue depths and
/// ages, the journal's size) refreshed first.
pub async fn scrape(shared: &Shared) -> Result<String, ApiError> {
    for d in destinations(shared).await?.destinations {
        let age = Duration::from_millis(d.oldest_pending_age_ms.unwrap_or(0) as u64);
        telemetry::outbox(&d.name, d.queue_depth, age);
    }
    let journal = shared.journal.clone();
    let size = crate::blocking::run(move || Ok(journal.size_on_disk())).await?;
    telemetry::journal_size(size);
    telemetry::render().ok_or_else(|| ApiError::internal("no metrics recorder is installed"))
}

/// `GET /metrics`.
pub async fn metrics(_: Caller, State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = scrape(&state).await?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response())
}

/// The readiness checks.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// The journal's writer committed a write.
    pub journal_writable: bool,
    /// The plugins directory's first scan is done.
    pub bots_loaded: bool,
    /// Configured listeners not bound (yet).
    pub listeners_unbound: Vec<String>,
    /// Which checks failed, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs the readiness checks.
pub async fn readiness(shared: &Shared) -> Readiness {
    let ping = tokio::time::timeout(JOURNAL_CHECK_TIMEOUT, shared.journal.ping()).await;
    let journal_writable = matches!(ping, Ok(Ok(Ok(()))));
    let bots_loaded = registry().bots_loaded();
    let config = shared.runtime.config();
    let listeners = config.listeners.iter().map(|l| l.name.as_str());
    let scps = config.dicom.iter().map(|d| d.name.as_str());
    let listeners_unbound = registry().unbound_listeners(listeners.chain(scps));
    let mut failed = Vec::new();
    if !journal_writable {
        failed.push("the journal is not writable".to_string());
    }
    if !bots_loaded {
        failed.push("the bots are not loaded yet".to_string());
    }
    if !listeners_unbound.is_empty() {
        failed.push(format!(
            "listeners not bound: {}",
            listeners_unbound.join(", ")
        ));
    }
    Readiness {
        ready: failed.is_empty(),
        journal_writable,
        bots_loaded,
        listeners_unbound,
        error: (!failed.is_empty()).then(|| format!("not ready: {}", failed.join("; "))),
    }
}

/// `GET /ready`: 200 when ready, else 503 naming the failed checks.
pub async fn ready(_: Caller, State(state): State<AppState>) -> Response {
    let r = readiness(&state).await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}
