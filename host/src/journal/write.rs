//! The journal's writes, each run by the writer thread inside the group
//! commit's transaction.

use rusqlite::params;

use super::db::{Db, DbError, DbResult, Dialect, Row};
use super::now_ms;

/// An inbound item, ready to journal.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `hl7`, `file`, `tick` or `http`.
    pub kind: &'static str,
    pub source: String,
    pub name: Option<String>,
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    /// PID-3.1 for hl7, for the message search.
    pub patient_id: Option<String>,
    pub body: Vec<u8>,
    /// The bytes as received, when they differ from `body`.
    pub raw: Option<Vec<u8>>,
    pub received_at_ms: i64,
    /// Bots that subscribe to it; empty means unrouted.
    pub routes: Vec<String>,
}

/// A message received by a listener, for duplicate suppression.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub listener: String,
    pub sender: String,
    pub control_id: String,
    /// The ACK sent, when known at journaling time.
    pub ack: Option<Vec<u8>>,
    /// A receipt of the same key at or after this time makes the message a
    /// duplicate; `None`: no duplicate suppression.
    pub duplicate_since_ms: Option<i64>,
}

/// What a bot made of a message a listener with application ACKs waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppReply {
    /// Done; the bot's ACK, if it gave one.
    Ack(Option<String>),
    /// The run failed (or will be retried), with the reason.
    Failed(String),
}

impl AppReply {
    fn to_row(&self) -> (&'static str, Option<&str>) {
        match self {
            AppReply::Ack(text) => ("ack", text.as_deref()),
            AppReply::Failed(why) => ("failed", Some(why)),
        }
    }

    pub(super) fn from_row(kind: Option<String>, text: Option<String>) -> Option<AppReply> {
        match kind.as_deref()? {
            "ack" => Some(AppReply::Ack(text)),
            "failed" => Some(AppReply::Failed(text.unwrap_or_default())),
            _ => None,
        }
    }
}

/// The answer to an HTTP command, as its caller gets it: the bot's
/// response, or the failure as JSON. Committed with the run when the
/// command carried an `Idempotency-Key`, so a repeat gets it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The answer in columns `at..at + 3` (status, headers, body) of an
    /// `http_commands` row; `None` while it is not committed.
    pub(super) fn from_row(r: &Row, at: usize) -> DbResult<Option<HttpAnswer>> {
        let Some(status) = r.get::<Option<u16>>(at)? else {
            return Ok(None);
        };
        let headers: Option<String> = r.get(at + 1)?;
        Ok(Some(HttpAnswer {
            status,
            headers: headers
                .and_then(|h| serde_json::from_str(&h).ok())
                .unwrap_or_default(),
            body: r.get::<Option<Vec<u8>>>(at + 2)?.unwrap_or_default(),
        }))
    }
}

/// What became of an HTTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpIngested {
    /// Journaled as this new event.
    New(i64),
    /// A repeat of this earlier command (same bot and `Idempotency-Key`):
    /// nothing was journaled. Its answer, once committed.
    Repeat {
        event_id: i64,
        answer: Option<HttpAnswer>,
    },
    /// The key names this earlier command, which was another request:
    /// nothing was journaled.
    KeyReused { event_id: i64 },
}

/// An HTTP command's `Idempotency-Key`, scoped to its bot, with a digest of
/// the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub bot: String,
    pub key: String,
    /// SHA-256 (hex) of the method, path and body.
    pub request_sha256: String,
}

/// What became of a message a listener received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Journaled as this new event.
    New(i64),
    /// A resend of this earlier event: nothing was journaled. Its ACK, once
    /// known; with application ACKs, the bot's outcome once it is committed
    /// (the ACK may be unknown while the outcome is, after a crash).
    Duplicate {
        event_id: i64,
        ack: Option<Vec<u8>>,
        reply: Option<AppReply>,
        /// Whether the earlier event went to any bot.
        routed: bool,
    },
}

/// Everything one intake commit writes.
#[derive(Debug, Clone, Default)]
pub struct Ingest {
    pub events: Vec<NewEvent>,
    /// The file the events came from.
    pub ledger: Option<LedgerEntry>,
    /// A cron firing: (schedule, scheduled time).
    pub tick: Option<(String, i64)>,
}

/// A file taken from a folder or SFTP source.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub source: String,
    pub name: String,
    pub size: i64,
    pub mtime_ms: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Pending,
    Done,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
        }
    }
}

/// The result of one bot handling one event.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub event_id: i64,
    pub bot: String,
    pub bot_version: String,
    pub status: RunStatus,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub error: Option<String>,
    pub duration_us: i64,
    /// Messages to deliver; only for `Done`.
    pub send: Vec<Queued>,
    /// For an event a listener's application ACK waits on: the outcome,
    /// recorded with its receipt.
    pub reply: Option<AppReply>,
    /// What the bot logged while it ran (capped: [`RunLog::MAX_LINES`]).
    pub logs: Vec<RunLog>,
    /// For an HTTP command: its final answer, recorded for repeats.
    pub http: Option<HttpAnswer>,
}

/// One line a bot logged during a run, journaled with the run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunLog {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    pub message: String,
}

impl RunLog {
    /// Most lines journaled per run; the log has them all.
    pub const MAX_LINES: usize = 50;
    /// Most bytes of messages journaled per run.
    pub const MAX_BYTES: usize = 8 * 1024;

    /// The lines to journal of `lines`: the first ones, within both caps,
    /// and a last line saying how many were left out.
    pub fn capped(lines: impl IntoIterator<Item = RunLog>) -> Vec<RunLog> {
        let (mut kept, mut bytes, mut dropped) = (Vec::new(), 0, 0);
        for line in lines {
            if kept.len() < Self::MAX_LINES && bytes + line.message.len() <= Self::MAX_BYTES {
                bytes += line.message.len();
                kept.push(line);
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            kept.push(RunLog {
                level: "warn".into(),
                message: format!("({dropped} more lines in the host log)"),
            });
        }
        kept
    }
}

/// What a queued message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// HL7 text, encoded for the destination on delivery.
    Hl7(String),
    /// Bytes delivered as they are, as the file `name` when it is set, or
    /// as a request body shaped by `http`.
    Bytes {
        data: Vec<u8>,
        name: Option<String>,
        content_type: Option<String>,
        http: Option<HttpOptions>,
    },
}

/// How an `http` destination sends a bytes payload (contract 0.2.0's
/// `http-options`), kept as JSON in the outbox's `http_request` column.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpOptions {
    /// The destination's `method` when absent.
    pub method: Option<String>,
    /// Below the destination's `url`, possibly with a query.
    pub path: Option<String>,
    /// Added after the destination's own headers.
    pub headers: Vec<(String, String)>,
}

/// The columns `message`, `data`, `file_name`, `content_type` and
/// `http_request` of an outbox row.
type Columns<'a> = (
    &'a str,
    Option<&'a [u8]>,
    Option<&'a str>,
    Option<&'a str>,
    Option<String>,
);

impl Payload {
    /// Its size in bytes.
    pub fn byte_len(&self) -> usize {
        match self {
            Payload::Hl7(text) => text.len(),
            Payload::Bytes { data, .. } => data.len(),
        }
    }

    /// The columns of its outbox row (`message` is empty for bytes).
    fn to_columns(&self) -> Columns<'_> {
        match self {
            Payload::Hl7(text) => (text, None, None, None, None),
            Payload::Bytes {
                data,
                name,
                content_type,
                http,
            } => (
                "",
                Some(data),
                name.as_deref(),
                content_type.as_deref(),
                http.as_ref()
                    .map(|h| serde_json::to_string(h).expect("http options are JSON")),
            ),
        }
    }

    /// The payload of an outbox row's columns (see [`Payload::to_columns`]).
    pub(super) fn from_columns(
        message: String,
        data: Option<Vec<u8>>,
        name: Option<String>,
        content_type: Option<String>,
        http: Option<String>,
    ) -> Self {
        match data {
            None => Payload::Hl7(message),
            Some(data) => Payload::Bytes {
                data,
                name,
                content_type,
                // Written by `to_columns`: unreadable only if edited by hand,
                // and then sent as if it had none.
                http: http.and_then(|h| serde_json::from_str(&h).ok()),
            },
        }
    }
}

/// A message a bot queued for a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub destination: String,
    pub payload: Payload,
    /// Not delivered before this time (ms since the epoch); 0: at once.
    pub not_before_ms: i64,
    /// Hash of the value of the destination's `ordering_key` (0 without
    /// one): with `connections = N`, lane `order_hash % N` carries it.
    pub order_hash: i64,
}

/// A bot's key-value and sequence writes from a batch of runs.
#[derive(Debug, Clone, Default)]
pub struct StateWrites {
    pub bot: String,
    /// `None` deletes the key.
    pub kv: Vec<(String, Option<Vec<u8>>)>,
    pub sequences: Vec<(String, u64)>,
}

pub fn ingest(c: Db, batch: &Ingest) -> DbResult<Vec<i64>> {
    let (events, ledger) = (&batch.events, batch.ledger.as_ref());
    let now = now_ms();
    // A cron firing is journaled once: one that is not later than the last
    // recorded for its schedule (by this host or another that led before)
    // journals nothing.
    if let Some((schedule, at)) = &batch.tick {
        let later = c.execute(
            "INSERT INTO ticks (schedule, last_ms) VALUES (?1, ?2)
             ON CONFLICT (schedule) DO UPDATE SET last_ms = excluded.last_ms
             WHERE ticks.last_ms < excluded.last_ms",
            params![schedule, at],
        )?;
        if later == 0 {
            return Ok(Vec::new());
        }
    }
    let mut ids = Vec::with_capacity(events.len());
    for e in events {
        let id: i64 = c.query_row(
            "INSERT INTO events (kind, source, name, message_type, control_id, body, received_at_ms, routed, raw,
                                 patient_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            params![
                e.kind,
                e.source,
                e.name,
                e.message_type,
                e.control_id,
                e.body,
                e.received_at_ms,
                e.routes.len() as i64,
                e.raw,
                e.patient_id
            ],
            |r| r.get(0),
        )?;
        for bot in &e.routes {
            c.execute(
                "INSERT INTO runs (event_id, bot, status, updated_ms) VALUES (?1, ?2, 'pending', ?3)",
                params![id, bot, now],
            )?;
        }
        ids.push(id);
    }
    if let Some(f) = ledger {
        c.execute(
            "INSERT INTO files (source, name, size, mtime_ms, sha256, taken_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![f.source, f.name, f.size, f.mtime_ms, f.sha256, now],
        )?;
    }
    Ok(ids)
}

/// Journals a listener's message with its receipt, unless a receipt of the
/// same (listener, sender, control id) is within the duplicate window: then
/// nothing is written and the earlier event is returned. One host's writer
/// runs these one at a time; on PostgreSQL another host's copy waits on the
/// key's advisory lock (see [`lock_key`]), so two copies arriving at once
/// cannot both be journaled.
pub fn ingest_received(c: Db, batch: &Ingest, receipt: &Receipt) -> DbResult<Received> {
    if let Some(since) = receipt
        .duplicate_since_ms
        .filter(|_| !receipt.control_id.is_empty())
    {
        lock_key(
            c,
            "received",
            &[&receipt.listener, &receipt.sender, &receipt.control_id],
        )?;
        let earlier = c.query_opt(
            "SELECT event_id, ack, reply_kind, reply_text,
                    COALESCE((SELECT routed > 0 FROM events WHERE id = received.event_id), FALSE)
             FROM received
             WHERE listener = ?1 AND sender = ?2 AND control_id = ?3 AND at_ms >= ?4",
            params![receipt.listener, receipt.sender, receipt.control_id, since],
            |r| {
                Ok(Received::Duplicate {
                    event_id: r.get(0)?,
                    ack: r.get(1)?,
                    reply: AppReply::from_row(r.get(2)?, r.get(3)?),
                    routed: r.get(4)?,
                })
            },
        )?;
        if let Some(duplicate) = earlier {
            return Ok(duplicate);
        }
    }
    let ids = ingest(c, batch)?;
    let id = *ids.first().ok_or(DbError::NoRow)?;
    // The key is unique: a receipt outside the window (or with duplicate
    // suppression off) gives way to this one.
    c.execute(
        "INSERT INTO received (listener, sender, control_id, event_id, ack, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (listener, sender, control_id) DO UPDATE SET
            event_id = excluded.event_id, ack = excluded.ack, at_ms = excluded.at_ms,
            reply_kind = NULL, reply_text = NULL",
        params![
            receipt.listener,
            receipt.sender,
            receipt.control_id,
            id,
            receipt.ack,
            now_ms()
        ],
    )?;
    Ok(Received::New(id))
}

/// On PostgreSQL, takes a transaction-scoped advisory lock on a unique key
/// (a hash of `table` and `parts`) before it is looked up, so that copies
/// journaled at once by several hosts are decided one after the other: the
/// second waits for the first's commit and then finds its row. SQLite has
/// one writer, which decides alone.
fn lock_key(c: Db, table: &str, parts: &[&str]) -> DbResult<()> {
    if c.dialect() == Dialect::Postgres {
        let key = format!("{table}\u{1f}{}", parts.join("\u{1f}"));
        c.query_row(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))) AS locked",
            params![key],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// Journals an HTTP command, unless `key` (bot, `Idempotency-Key`) names an
/// earlier one: then nothing is written and the earlier event is returned
/// with its answer, once committed. Decided one copy at a time, as
/// [`ingest_received`] is.
pub fn ingest_http(c: Db, batch: &Ingest, key: Option<&IdempotencyKey>) -> DbResult<HttpIngested> {
    if let Some(k) = key {
        lock_key(c, "http_commands", &[&k.bot, &k.key])?;
        let earlier = c.query_opt(
            "SELECT event_id, request_sha256, status, headers, body FROM http_commands
             WHERE bot = ?1 AND idempotency_key = ?2",
            params![k.bot, k.key],
            |r| {
                let event_id = r.get(0)?;
                let digest: Option<String> = r.get(1)?;
                if digest.is_some_and(|d| d != k.request_sha256) {
                    return Ok(HttpIngested::KeyReused { event_id });
                }
                let answer = HttpAnswer::from_row(r, 2)?;
                Ok(HttpIngested::Repeat { event_id, answer })
            },
        )?;
        if let Some(repeat) = earlier {
            return Ok(repeat);
        }
    }
    let ids = ingest(c, batch)?;
    let id = *ids.first().ok_or(DbError::NoRow)?;
    if let Some(k) = key {
        c.execute(
            "INSERT INTO http_commands (event_id, bot, idempotency_key, request_sha256, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, k.bot, k.key, k.request_sha256, now_ms()],
        )?;
    }
    Ok(HttpIngested::New(id))
}

/// Records the ACK sent for a received message (application mode), unless
/// one is already recorded. Returns the recorded ACK, which every later
/// resend gets byte for byte (`ack` itself if the receipt is gone).
pub fn receipt_ack(c: Db, event_id: i64, ack: &[u8]) -> DbResult<Vec<u8>> {
    c.execute(
        "UPDATE received SET ack = ?2 WHERE event_id = ?1 AND ack IS NULL",
        params![event_id, ack],
    )?;
    let stored: Option<Option<Vec<u8>>> = c.query_opt(
        "SELECT ack FROM received WHERE event_id = ?1",
        params![event_id],
        |r| r.get(0),
    )?;
    Ok(stored.flatten().unwrap_or_else(|| ack.to_vec()))
}

pub fn complete(c: Db, runs: &[RunRecord], state: &StateWrites) -> DbResult<()> {
    let now = now_ms();
    for r in runs {
        c.execute(
            "UPDATE runs SET status = ?3, attempts = ?4, next_attempt_ms = ?5, error = ?6,
                    bot_version = ?7, duration_us = ?8, updated_ms = ?9, logs = ?10
             WHERE event_id = ?1 AND bot = ?2",
            params![
                r.event_id,
                r.bot,
                r.status.as_str(),
                r.attempts,
                r.next_attempt_ms,
                r.error,
                r.bot_version,
                r.duration_us,
                now,
                (!r.logs.is_empty())
                    .then(|| serde_json::to_string(&r.logs).expect("log lines are JSON"))
            ],
        )?;
        if let Some(reply) = &r.reply {
            let (kind, text) = reply.to_row();
            c.execute(
                "UPDATE received SET reply_kind = ?2, reply_text = ?3
                 WHERE event_id = ?1 AND reply_kind IS NULL",
                params![r.event_id, kind, text],
            )?;
        }
        if let Some(answer) = &r.http {
            let headers = serde_json::to_string(&answer.headers).unwrap_or_default();
            c.execute(
                "UPDATE http_commands SET status = ?2, headers = ?3, body = ?4
                 WHERE event_id = ?1 AND status IS NULL",
                params![r.event_id, answer.status, headers, answer.body],
            )?;
        }
        for q in &r.send {
            let (message, data, file_name, content_type, http) = q.payload.to_columns();
            c.execute(
                "INSERT INTO outbox (event_id, bot, destination, message, data, file_name, content_type,
                                     not_before_ms, status, created_ms, order_hash, http_request)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, ?11)",
                params![
                    r.event_id,
                    r.bot,
                    q.destination,
                    message,
                    data,
                    file_name,
                    content_type,
                    q.not_before_ms,
                    now,
                    q.order_hash,
                    http
                ],
            )?;
        }
    }
    if let Some(last_event) = runs.iter().map(|r| r.event_id).max() {
        record_undo(c, state, last_event)?;
    }
    for (key, value) in &state.kv {
        match value {
            Some(v) => c.execute(
                "INSERT INTO kv (bot, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (bot, key) DO UPDATE SET value = excluded.value",
                params![state.bot, key, v],
            )?,
            None => c.execute(
                "DELETE FROM kv WHERE bot = ?1 AND key = ?2",
                params![state.bot, key],
            )?,
        };
    }
    for (name, value) in &state.sequences {
        c.execute(
            "INSERT INTO sequences (bot, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (bot, name) DO UPDATE SET value = excluded.value",
            params![state.bot, name, *value as i64],
        )?;
    }
    Ok(())
}

/// Keeps what `state` is about to overwrite (each key's and sequence's
/// value before the batch, or NULL) in `state_undo`, tagged with the
/// batch's newest event, so a shadow run can rebuild the state as it was.
fn record_undo(c: Db, state: &StateWrites, last_event: i64) -> DbResult<()> {
    // The previous value is copied inside the database: nothing crosses
    // into Rust. PostgreSQL keeps a sequence's in a column of its own.
    for (key, _) in &state.kv {
        c.execute(
            "INSERT INTO state_undo (bot, last_event, kind, key, value)
             VALUES (?1, ?2, 'kv', ?3, (SELECT value FROM kv WHERE bot = ?1 AND key = ?3))",
            params![state.bot, last_event, key],
        )?;
    }
    let seq = c.pick(
        "INSERT INTO state_undo (bot, last_event, kind, key, value)
         VALUES (?1, ?2, 'seq', ?3, (SELECT value FROM sequences WHERE bot = ?1 AND name = ?3))",
        "INSERT INTO state_undo (bot, last_event, kind, key, number)
         VALUES (?1, ?2, 'seq', ?3, (SELECT value FROM sequences WHERE bot = ?1 AND name = ?3))",
    );
    for (name, _) in &state.sequences {
        c.execute(seq, params![state.bot, last_event, name])?;
    }
    Ok(())
}

pub fn outbox_sent(c: Db, id: i64) -> DbResult<()> {
    c.execute(
        "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_ms = ?2, last_error = NULL
         WHERE id = ?1 AND status <> 'sent'",
        params![id, now_ms()],
    )?;
    Ok(())
}

pub fn outbox_failed(
    c: Db,
    id: i64,
    error: &str,
    next_attempt_ms: i64,
    dead: bool,
) -> DbResult<()> {
    c.execute(
        "UPDATE outbox SET status = ?2, attempts = attempts + 1, next_attempt_ms = ?3, last_error = ?4
         WHERE id = ?1",
        params![id, if dead { "dead" } else { "pending" }, next_attempt_ms, error],
    )?;
    Ok(())
}

/// Pauses `destination` (a row in `paused_destinations`) or resumes it.
pub fn set_paused(c: Db, destination: &str, paused: bool) -> DbResult<()> {
    if paused {
        c.execute(
            "INSERT INTO paused_destinations (destination, paused_ms) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
            params![destination, now_ms()],
        )?;
    } else {
        c.execute(
            "DELETE FROM paused_destinations WHERE destination = ?1",
            params![destination],
        )?;
    }
    Ok(())
}

/// Puts a dead-lettered message back at its place in the queue.
pub fn outbox_requeue(c: Db, id: i64) -> DbResult<usize> {
    c.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = 0 WHERE id = ?1 AND status = 'dead'",
        params![id],
    )
}

pub fn replay(c: Db, event_id: i64, bot: Option<&str>) -> DbResult<usize> {
    let now = now_ms();
    match bot {
        // An explicit bot: re-run it whatever happened before, even if the
        // event was never routed to it.
        Some(bot) => {
            let n = c.execute(
                "INSERT INTO runs (event_id, bot, status, attempts, next_attempt_ms, updated_ms)
                 SELECT id, ?2, 'pending', 0, 0, ?3 FROM events WHERE id = ?1
                 ON CONFLICT (event_id, bot) DO UPDATE SET
                    status = 'pending', attempts = 0, next_attempt_ms = 0, error = NULL,
                    updated_ms = excluded.updated_ms",
                params![event_id, bot, now],
            )?;
            c.execute(
                "UPDATE events SET routed = 1 WHERE id = ?1 AND routed = 0",
                params![event_id],
            )?;
            Ok(n)
        }
        None => c.execute(
            "UPDATE runs SET status = 'pending', attempts = 0, next_attempt_ms = 0, error = NULL,
                    updated_ms = ?2
             WHERE event_id = ?1 AND status = 'failed'",
            params![event_id, now],
        ),
    }
}

/// What one [`purge_chunk`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeChunk {
    /// Events deleted.
    pub deleted: usize,
    /// Where the next chunk starts (the last event id looked at), or `None`
    /// when there is nothing older than the cutoff left to look at.
    pub next: Option<i64>,
}

/// Looks at the next `size` events after `after_id` (in id order, which is
/// arrival order) and deletes those older than `before_ms` whose runs and
/// messages are all finished, with their runs, messages and receipts. The
/// purge is done at the end of the table or at a chunk with no event older
/// than the cutoff (the rest arrived later still).
pub fn purge_chunk(c: Db, before_ms: i64, after_id: i64, size: usize) -> DbResult<PurgeChunk> {
    let (last, oldest): (Option<i64>, Option<i64>) = c.query_row(
        "SELECT MAX(id), MIN(received_at_ms)
         FROM (SELECT id, received_at_ms FROM events WHERE id > ?1 ORDER BY id LIMIT ?2) AS chunk",
        params![after_id, size as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Some(last), Some(oldest)) = (last, oldest) else {
        return Ok(PurgeChunk {
            deleted: 0,
            next: None,
        });
    };
    if oldest >= before_ms {
        return Ok(PurgeChunk {
            deleted: 0,
            next: None,
        });
    }
    let finished = "SELECT id FROM events WHERE id > ?1 AND id <= ?2 AND received_at_ms < ?3
        AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id AND r.status = 'pending')
        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id AND o.status = 'pending')";
    let range = params![after_id, last, before_ms];
    c.execute(
        &format!("DELETE FROM runs WHERE event_id IN ({finished})"),
        range,
    )?;
    c.execute(
        &format!("DELETE FROM outbox WHERE event_id IN ({finished})"),
        range,
    )?;
    c.execute(
        &format!(
            "DELETE FROM state_undo WHERE last_event > ?1 AND last_event <= ?2 AND last_event IN ({finished})"
        ),
        range,
    )?;
    c.execute(
        "DELETE FROM received WHERE event_id > ?1 AND event_id <= ?2 AND at_ms < ?3",
        range,
    )?;
    c.execute(
        "DELETE FROM http_commands WHERE event_id > ?1 AND event_id <= ?2 AND at_ms < ?3",
        range,
    )?;
    let deleted = c.execute(
        &format!("DELETE FROM events WHERE id IN ({finished})"),
        range,
    )?;
    Ok(PurgeChunk {
        deleted,
        next: Some(last),
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// A journal in memory with events 1..=6: 1-5 old, 6 new; 3 still has
    /// a pending run, 4 a pending message; every event has a done run, a
    /// sent message and a receipt.
    fn journal() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        for id in 1..=6i64 {
            let at = if id == 6 { 10_000 } else { id };
            c.execute(
                "INSERT INTO events (id, kind, source, body, received_at_ms, routed)
                 VALUES (?1, 'hl7', 'in', 'MSH', ?2, 1)",
                params![id, at],
            )
            .unwrap();
            c.execute(
                "INSERT INTO runs (event_id, bot, status) VALUES (?1, 'b', 'done')",
                params![id],
            )
            .unwrap();
            c.execute(
                "INSERT INTO outbox (event_id, bot, destination, message, status, created_ms)
                 VALUES (?1, 'b', 'out', 'MSH', 'sent', 0)",
                params![id],
            )
            .unwrap();
            c.execute(
                "INSERT INTO received (event_id, listener, sender, control_id, at_ms)
                 VALUES (?1, 'in', 's', ?1, ?2)",
                params![id, at],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO runs (event_id, bot, status) VALUES (3, 'slow', 'pending')",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO outbox (event_id, bot, destination, message, status, created_ms)
             VALUES (4, 'b', 'out', 'MSH', 'pending', 0)",
            [],
        )
        .unwrap();
        c
    }

    fn ids(c: &Connection, sql: &str) -> Vec<i64> {
        let mut q = c.prepare(sql).unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn purge_goes_chunk_by_chunk_and_keeps_unfinished_and_new_events() {
        let c = journal();
        let chunks: Vec<PurgeChunk> = [0, 2, 4, 6]
            .iter()
            .map(|after| purge_chunk(Db::Sqlite(&c), 1_000, *after, 2).unwrap())
            .collect();
        let got: Vec<(usize, Option<i64>)> = chunks.iter().map(|k| (k.deleted, k.next)).collect();
        assert_eq!(got, [(2, Some(2)), (0, Some(4)), (1, Some(6)), (0, None)]);
        assert_eq!(ids(&c, "SELECT id FROM events ORDER BY id"), [3, 4, 6]);
        assert_eq!(
            ids(&c, "SELECT DISTINCT event_id FROM runs ORDER BY 1"),
            [3, 4, 6]
        );
        assert_eq!(
            ids(&c, "SELECT DISTINCT event_id FROM outbox ORDER BY 1"),
            [3, 4, 6]
        );
        // Receipts go with age alone, as the duplicate window is long past.
        assert_eq!(ids(&c, "SELECT event_id FROM received ORDER BY 1"), [6]);
    }

    #[test]
    fn purge_stops_at_a_chunk_with_nothing_old() {
        let c = journal();
        let chunk = purge_chunk(Db::Sqlite(&c), 1_000, 5, 2).unwrap();
        assert_eq!(
            chunk,
            PurgeChunk {
                deleted: 0,
                next: None
            }
        );
        assert_eq!(ids(&c, "SELECT COUNT(*) FROM events"), [6]);
    }

    fn receipt(since: Option<i64>) -> Receipt {
        Receipt {
            listener: "in".into(),
            sender: "REG^CLINIC".into(),
            control_id: "C1".into(),
            ack: Some(b"ACK1".to_vec()),
            duplicate_since_ms: since,
        }
    }

    fn one_event() -> Ingest {
        Ingest {
            events: vec![NewEvent {
                kind: "hl7",
                source: "in".into(),
                name: None,
                message_type: Some("ADT^A04".into()),
                control_id: Some("C1".into()),
                patient_id: None,
                body: b"MSH|^~\\&|".to_vec(),
                raw: None,
                received_at_ms: now_ms(),
                routes: vec!["bot".into()],
            }],
            ..Ingest::default()
        }
    }

    #[test]
    fn a_cron_firing_is_journaled_once() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        let firing = |at: i64| Ingest {
            tick: Some(("*/5 * * * * *".into(), at)),
            ..one_event()
        };
        assert_eq!(ingest(Db::Sqlite(&c), &firing(5_000)).unwrap(), [1]);
        // The same firing again (another host that led before), or an
        // earlier one: nothing is journaled.
        assert!(ingest(Db::Sqlite(&c), &firing(5_000)).unwrap().is_empty());
        assert!(ingest(Db::Sqlite(&c), &firing(0)).unwrap().is_empty());
        assert_eq!(ingest(Db::Sqlite(&c), &firing(10_000)).unwrap(), [2]);
        let events: i64 = c
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 2);
    }

    #[test]
    fn a_resend_within_the_window_is_not_journaled_again() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        let window = Some(now_ms() - 60_000);
        let first = ingest_received(Db::Sqlite(&c), &one_event(), &receipt(window)).unwrap();
        assert_eq!(first, Received::New(1));
        let again = ingest_received(Db::Sqlite(&c), &one_event(), &receipt(window)).unwrap();
        let ack = Some(b"ACK1".to_vec());
        assert_eq!(
            again,
            Received::Duplicate {
                event_id: 1,
                ack,
                reply: None,
                routed: true
            }
        );
        // Outside the window (here: none), the new copy takes the key over.
        let later = ingest_received(Db::Sqlite(&c), &one_event(), &receipt(None)).unwrap();
        assert_eq!(later, Received::New(2));
        let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM events"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM received"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM runs"), 2);
    }

    #[test]
    fn the_first_application_ack_recorded_is_kept() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        let mut r = receipt(None);
        r.ack = None;
        ingest_received(Db::Sqlite(&c), &one_event(), &r).unwrap();
        assert_eq!(receipt_ack(Db::Sqlite(&c), 1, b"AR").unwrap(), b"AR");
        assert_eq!(receipt_ack(Db::Sqlite(&c), 1, b"AA").unwrap(), b"AR");
        // No receipt (purged): the ACK given is the answer.
        assert_eq!(receipt_ack(Db::Sqlite(&c), 9, b"AE").unwrap(), b"AE");
    }

    #[test]
    fn run_logs_are_capped_with_a_note_of_what_was_left_out() {
        let line = |n: usize, len: usize| RunLog {
            level: "info".into(),
            message: format!("{n:>len$}"),
        };
        let many = RunLog::capped((0..60).map(|n| line(n, 10)));
        assert_eq!(many.len(), RunLog::MAX_LINES + 1);
        assert_eq!(
            many[RunLog::MAX_LINES].message,
            "(10 more lines in the host log)"
        );
        let big = RunLog::capped((0..3).map(|n| line(n, 4000)));
        assert_eq!(big.len(), 3);
        assert_eq!(big[2].message, "(1 more lines in the host log)");
        assert_eq!(RunLog::capped([line(1, 5)]), [line(1, 5)]);
    }

    #[test]
    fn a_resend_after_a_lost_ack_gets_the_committed_outcome() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        let mut r = receipt(Some(now_ms() - 60_000));
        r.ack = None;
        ingest_received(Db::Sqlite(&c), &one_event(), &r).unwrap();
        let run = |reply: &str| RunRecord {
            event_id: 1,
            bot: "bot".into(),
            bot_version: "1".into(),
            status: RunStatus::Done,
            attempts: 1,
            next_attempt_ms: 0,
            error: None,
            duration_us: 1,
            send: Vec::new(),
            reply: Some(AppReply::Ack(Some(reply.into()))),
            logs: Vec::new(),
            http: None,
        };
        complete(Db::Sqlite(&c), &[run("first")], &StateWrites::default()).unwrap();
        complete(Db::Sqlite(&c), &[run("second")], &StateWrites::default()).unwrap();
        let again = ingest_received(Db::Sqlite(&c), &one_event(), &r).unwrap();
        assert_eq!(
            again,
            Received::Duplicate {
                event_id: 1,
                ack: None,
                reply: Some(AppReply::Ack(Some("first".into()))),
                routed: true
            }
        );
    }

    #[test]
    fn a_repeated_idempotency_key_gets_the_first_command_and_its_answer() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        let key = IdempotencyKey {
            bot: "bot".into(),
            key: "K1".into(),
            request_sha256: "aa".into(),
        };
        assert_eq!(
            ingest_http(Db::Sqlite(&c), &one_event(), Some(&key)).unwrap(),
            HttpIngested::New(1)
        );
        let repeat = |c: &Connection| ingest_http(Db::Sqlite(c), &one_event(), Some(&key)).unwrap();
        assert_eq!(
            repeat(&c),
            HttpIngested::Repeat {
                event_id: 1,
                answer: None
            }
        );
        let answer = HttpAnswer {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        };
        let run = RunRecord {
            event_id: 1,
            bot: "bot".into(),
            bot_version: "1".into(),
            status: RunStatus::Done,
            attempts: 1,
            next_attempt_ms: 0,
            error: None,
            duration_us: 1,
            send: Vec::new(),
            reply: None,
            logs: Vec::new(),
            http: Some(answer.clone()),
        };
        complete(Db::Sqlite(&c), &[run], &StateWrites::default()).unwrap();
        assert_eq!(
            repeat(&c),
            HttpIngested::Repeat {
                event_id: 1,
                answer: Some(answer)
            }
        );
        // The same key with another request is refused.
        let other = IdempotencyKey {
            request_sha256: "bb".into(),
            ..key.clone()
        };
        assert_eq!(
            ingest_http(Db::Sqlite(&c), &one_event(), Some(&other)).unwrap(),
            HttpIngested::KeyReused { event_id: 1 }
        );
        // Without a key, every command is new.
        assert_eq!(
            ingest_http(Db::Sqlite(&c), &one_event(), None).unwrap(),
            HttpIngested::New(2)
        );
        let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM events"), 2);
    }
}
