//! The HTTP trigger's runtime side, in host types only (the WIT records
//! stay inside `runtime/`):
//!
//! - [`Runtime::http_mount`]: whether a live bot serves a path;
//! - [`Runtime::query`] (`GET`/`HEAD`): runs at once on a fresh instance
//!   with read-only state, not journaled; at most [`MAX_QUERIES`] at a time
//!   ([`Runtime::query_slot`]; past that, 503 with `Retry-After`);
//! - [`Runtime::command`] (other methods): journaled for the bot's worker
//!   (once per `Idempotency-Key`), answered after the run is committed, or
//!   202 if it takes longer than the bot's time limit.
//!
//! Either way the caller gets an [`HttpAnswer`]: the bot's `http-response`
//! (204 when it gives none), or its failure as JSON `{"error": ...}`
//! (see [`failure_answer`] for the statuses).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::bindings::HttpResponse;
use super::bot::Failure;
use super::process::{Processed, process};
use super::state::{Session, SharedReader};
use super::{Runtime, routing};
use crate::intake::Router as _;
pub use crate::journal::HttpAnswer;
use crate::journal::{HttpIngested, IdempotencyKey, Ingest, NewEvent, StoredEvent};

/// Journal event kind of an HTTP command.
pub const KIND: &str = "http";

/// Longer than the bot's time limit that a command's caller waits for the
/// answer: the run's commit, and a little queueing behind other events.
const COMMIT_MARGIN: Duration = Duration::from_secs(1);

/// Most idle journal readers kept for queries.
const SPARE_READERS: usize = 16;

/// HTTP queries that run at once: a quarter of the instance pool
/// ([`super::engine::POOL_INSTANCES`]), leaving the rest to the bots'
/// workers (one instance each at a time: room for 95 bots) and the loader,
/// so a flood of queries cannot make a journaled run fail for want of an
/// instance.
pub const MAX_QUERIES: usize = 32;

/// The places of the queries running at once.
pub(super) struct QuerySlots(Arc<tokio::sync::Semaphore>);

/// A query's place among the [`MAX_QUERIES`] running at once, freed when
/// dropped.
pub struct QuerySlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl QuerySlots {
    pub(super) fn new(places: usize) -> Self {
        QuerySlots(Arc::new(tokio::sync::Semaphore::new(places)))
    }

    /// A free place, or the 503 (with `Retry-After`) that says there is none.
    fn take(&self) -> Result<QuerySlot, HttpAnswer> {
        match self.0.clone().try_acquire_owned() {
            Ok(permit) => Ok(QuerySlot { _permit: permit }),
            Err(_) => {
                tracing::debug!("query refused: {MAX_QUERIES} queries are running");
                let busy = format!("{MAX_QUERIES} queries are running; try again");
                Err(failure_answer(&Failure::Host(busy), None))
            }
        }
    }
}

/// An HTTP request for a bot, as it gets it (and as a command's event
/// journals it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    /// Below the bot's mount point, starting with `/`, with the query
    /// string.
    pub path: String,
    /// Names in lower case; never the caller's credentials.
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl Request {
    /// The journaled form (`events.body` of an `http` event): JSON, the
    /// body in base64.
    pub fn to_envelope(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request serializes")
    }

    pub fn from_envelope(bytes: &[u8]) -> Result<Request, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("bad HTTP request envelope: {e}"))
    }

    /// SHA-256 (hex) of the method, path and body: what makes a repeat
    /// under one `Idempotency-Key` the same request.
    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [self.method.as_bytes(), self.path.as_bytes(), &self.body] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        hex::encode(h.finalize())
    }

    /// The path without its query string.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// As the event a query runs (id 0: not journaled).
    fn as_query_event(&self) -> StoredEvent {
        StoredEvent {
            id: 0,
            kind: KIND.to_string(),
            source: String::new(),
            name: None,
            body: self.to_envelope(),
            received_at_ms: crate::journal::now_ms(),
        }
    }
}

/// The answer for a bot whose settings are refused: 503, naming why.
fn held(live: &super::LiveBot) -> Option<HttpAnswer> {
    let why = live.settings.as_ref().err()?;
    let error = format!("the bot is held: its settings are refused: {why}");
    Some(json_answer(503, &serde_json::json!({ "error": error })))
}

/// What a query came to: the bot's answer (204 when it gave none), unless
/// it failed or tried to send messages.
pub fn query_answer(processed: Processed) -> Result<HttpAnswer, Failure> {
    match processed.result {
        Ok(send) if !send.is_empty() => Err(Failure::Refused(
            "a query (GET/HEAD) cannot send messages; use POST for that".into(),
        )),
        Ok(_) => Ok(processed.http.unwrap_or_else(no_content)),
        Err(failure) => Err(failure),
    }
}

/// Whether a request is a query (answered at once, read-only, not
/// journaled) rather than a command.
pub fn is_query(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// Whether a bot serves a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// No live, enabled bot of that name.
    NoBot,
    /// The bot is live but none of its HTTP subscriptions covers the path.
    NotServed,
    /// Served through the subscription with this prefix (as the bot wrote it).
    Served { prefix: String },
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commanded {
    /// The run is committed; its answer (or a repeat's first answer).
    Answered(HttpAnswer),
    /// Journaled as this event, but not answered within the wait.
    Accepted(i64),
    /// Not journaled: its `Idempotency-Key` belongs to this earlier event,
    /// a different request.
    KeyReused(i64),
}

/// An answer with a JSON body.
pub fn json_answer(status: u16, body: &serde_json::Value) -> HttpAnswer {
    HttpAnswer {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// A failed run as an answer: 503 with `Retry-After` for a failure worth
/// retrying (the bot's retryable error, a host problem), 500 for anything
/// else (the bot's fatal error, a trap, its time limit, a refused reply);
/// the body says what happened, and for a command names its event.
pub fn failure_answer(failure: &Failure, event_id: Option<i64>) -> HttpAnswer {
    let mut body = serde_json::json!({ "error": failure.to_string() });
    if let Some(id) = event_id {
        body["event_id"] = id.into();
    }
    if failure.retryable() {
        let mut answer = json_answer(503, &body);
        answer.headers.push(("retry-after".into(), "1".into()));
        answer
    } else {
        json_answer(500, &body)
    }
}

/// 204: what a bot that gives no `http-response` answers.
pub(super) fn no_content() -> HttpAnswer {
    HttpAnswer {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// The bot's `http-response` as an answer, if it is a valid one.
pub(super) fn answer_of(response: Option<HttpResponse>) -> Result<HttpAnswer, Failure> {
    let Some(r) = response else {
        return Ok(no_content());
    };
    if !(200..=599).contains(&r.status) {
        return Err(Failure::Refused(format!(
            "HTTP status {} is not one a bot may answer with (200-599)",
            r.status
        )));
    }
    for (name, value) in &r.headers {
        let valid = axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && axum::http::HeaderValue::from_str(value).is_ok();
        if !valid {
            return Err(Failure::Refused(format!(
                "HTTP header {name:?} is not a valid header"
            )));
        }
    }
    Ok(HttpAnswer {
        status: r.status,
        headers: r.headers,
        body: r.body,
    })
}

impl Runtime {
    /// Whether the live bot `bot` serves `route` (below its mount point,
    /// without the query string).
    pub fn http_mount(&self, bot: &str, route: &str) -> Mount {
        let enabled = self.config().bots.get(bot).is_none_or(|b| b.enabled);
        match self.bot(bot) {
            Some(live) if enabled => match routing::http_prefix(&live.subscriptions, route) {
                Some(prefix) => Mount::Served {
                    prefix: prefix.to_string(),
                },
                None => Mount::NotServed,
            },
            _ => Mount::NoBot,
        }
    }

    /// A place for a query to run in, or the 503 answer when
    /// [`MAX_QUERIES`] are running.
    pub fn query_slot(&self) -> Result<QuerySlot, HttpAnswer> {
        self.query_slots.take()
    }

    /// Answers a query, in the place `_slot` holds: runs `bot` on
    /// `request` at once, on a fresh instance, with read-only state;
    /// nothing is journaled. Blocks (call it off the async executor).
    pub fn query(&self, _slot: QuerySlot, bot: &str, request: &Request) -> HttpAnswer {
        let Some(live) = self.bot(bot) else {
            return json_answer(404, &serde_json::json!({ "error": "no such bot" }));
        };
        if let Some(held) = held(&live) {
            return held;
        }
        let reader = match self.spare_reader() {
            Ok(r) => r,
            Err(e) => return failure_answer(&Failure::Host(format!("{e:#}")), None),
        };
        let session = Session::query(bot, live.policy.clone(), Box::new(reader.clone()));
        let (processed, mut session) =
            process(&live.code, &live.policy, request.as_query_event(), session);
        self.return_reader(reader);
        super::worker::emit_logs(bot, 0, &mut session);
        query_answer(processed).unwrap_or_else(|failure| {
            tracing::warn!(bot, method = %request.method, outcome = "failed", "query {}", failure.logged());
            failure_answer(&failure, None)
        })
    }

    /// Journals `request` as a command for `bot` (unless `idempotency_key`
    /// names an earlier one), wakes its worker and waits for the committed
    /// answer, at most the bot's time limit and a margin.
    pub async fn command(
        &self,
        bot: &str,
        request: &Request,
        idempotency_key: Option<String>,
    ) -> anyhow::Result<Commanded> {
        // Not journaled for a bot that would hold it: the caller hears why.
        if let Some(held) = self.bot(bot).as_deref().and_then(held) {
            return Ok(Commanded::Answered(held));
        }
        let event = NewEvent {
            kind: KIND,
            source: bot.to_string(),
            name: Some(request.path.clone()),
            message_type: Some(request.method.clone()),
            control_id: None,
            patient_id: None,
            body: request.to_envelope(),
            raw: None,
            received_at_ms: crate::journal::now_ms(),
            routes: vec![bot.to_string()],
        };
        let ingest = Ingest {
            events: vec![event],
            ..Ingest::default()
        };
        let key = idempotency_key.map(|key| IdempotencyKey {
            bot: bot.to_string(),
            key,
            request_sha256: request.fingerprint(),
        });
        let ingested = self
            .journal
            .ingest_http(ingest, key)
            .await
            .context("journal writer has stopped")??;
        let event_id = match ingested {
            HttpIngested::New(id) => {
                self.wake(bot);
                id
            }
            HttpIngested::Repeat {
                answer: Some(answer),
                ..
            } => return Ok(Commanded::Answered(answer)),
            HttpIngested::Repeat { event_id, .. } => event_id,
            HttpIngested::KeyReused { event_id } => return Ok(Commanded::KeyReused(event_id)),
        };
        let wait = Duration::from_millis(self.config().plugins.timeout_ms) + COMMIT_MARGIN;
        match tokio::time::timeout(wait, self.http_replies.wait(event_id)).await {
            Ok(Ok(answer)) => Ok(Commanded::Answered(answer)),
            _ => {
                self.http_replies.forget(event_id);
                Ok(Commanded::Accepted(event_id))
            }
        }
    }

    /// A journal reader for a query: an idle one, or a new one.
    fn spare_reader(&self) -> crate::journal::Result<SharedReader> {
        let spare = self.readers.lock().expect("readers lock").pop();
        match spare {
            Some(r) => Ok(r),
            None => Ok(Arc::new(Mutex::new(self.journal.reader()?))),
        }
    }

    fn return_reader(&self, reader: SharedReader) {
        let mut readers = self.readers.lock().expect("readers lock");
        if readers.len() < SPARE_READERS {
            readers.push(reader);
        }
    }
}

/// The request in a journaled `http` event, as the bot's WIT record.
pub(super) fn to_wit(id: u64, body: &[u8]) -> Result<super::bindings::HttpRequest, String> {
    let r = Request::from_envelope(body)?;
    Ok(super::bindings::HttpRequest {
        id,
        method: r.method,
        path: r.path,
        headers: r.headers,
        body: r.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_the_journal_envelope() {
        let r = Request {
            method: "POST".into(),
            path: "/kv/a?x=1".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: vec![0, 159, 146, 150],
        };
        assert_eq!(Request::from_envelope(&r.to_envelope()).unwrap(), r);
        assert_eq!(r.route(), "/kv/a");
    }

    #[test]
    fn bot_answers_are_checked() {
        let response = |status, name: &str| HttpResponse {
            status,
            headers: vec![(name.into(), "v".into())],
            body: b"x".to_vec(),
        };
        assert_eq!(answer_of(None).unwrap().status, 204);
        assert_eq!(answer_of(Some(response(201, "x-a"))).unwrap().status, 201);
        assert!(answer_of(Some(response(99, "x-a"))).is_err());
        assert!(answer_of(Some(response(200, "bad name"))).is_err());
        let failed = failure_answer(&Failure::Host("down".into()), Some(7));
        assert_eq!(failed.status, 503);
        let body: serde_json::Value = serde_json::from_slice(&failed.body).unwrap();
        assert_eq!(body["event_id"], 7);
        let abandoned = failure_answer(&Failure::Abandoned("gave up".into()), Some(7));
        assert_eq!(abandoned.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&abandoned.body).unwrap();
        assert_eq!(body["error"], "gave up");
    }

    #[test]
    fn queries_past_the_limit_are_answered_503() {
        let slots = QuerySlots::new(MAX_QUERIES);
        let mut taken: Vec<QuerySlot> = (0..MAX_QUERIES).map(|_| slots.take().unwrap()).collect();
        let busy = slots.take().err().expect("no place left");
        assert_eq!(busy.status, 503);
        assert!(busy.headers.contains(&("retry-after".into(), "1".into())));
        taken.pop();
        assert!(slots.take().is_ok(), "a finished query frees its place");
    }
}
