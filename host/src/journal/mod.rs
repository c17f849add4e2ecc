//! The journal: the durable record of every inbound event, every bot's
//! processing of it, bots' state and the outbox, in one SQLite database (WAL,
//! `synchronous = FULL`).
//!
//! All writes go through one writer thread that group-commits: it takes every
//! write queued while the previous commit was being fsync'd and commits them
//! together, each inside its own savepoint so one failing write does not undo
//! the others. A caller learns its write is durable only after the commit.
//! Reads use their own connections ([`Reader`]), which WAL lets run beside
//! the writer.

pub mod admin;
mod db;
mod lease;
mod postgres;
mod read;
mod schema;
pub mod search;
pub mod shadow;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use anyhow::Context;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::config::{JournalBackend, JournalConfig};

pub use db::{Db, DbError};
pub use postgres::Connector;
pub use read::{
    EventFilter, EventSummary, OutboxRow, OutboxSummary, PendingRun, Reader, StoredEvent,
};
pub use write::{
    AppReply, HttpAnswer, HttpIngested, HttpOptions, IdempotencyKey, Ingest, LedgerEntry, NewEvent,
    Payload, Queued, Receipt, Received, RunLog, RunRecord, RunStatus, StateWrites,
};

pub use lease::{ClusterHost, Held, Holdings, Lease};

use db::DbResult;
use postgres::{Pool, Session};

/// The channel every PostgreSQL group commit notifies (`commit_group`).
const COMMIT_CHANNEL: &str = "interlink_commit";

/// Why the journal could not do something.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal database error: {0}")]
    Database(#[from] DbError),
    #[error("journal commit failed: {0}")]
    Commit(String),
    #[error("journal writer has stopped")]
    Closed,
    #[error("cannot create journal directory {0}: {1}")]
    Directory(PathBuf, std::io::Error),
    /// A read the caller asked for that the journal will not answer as
    /// asked (the message names the parameter to change).
    #[error("{0}")]
    Refused(String),
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        JournalError::Database(DbError::Sqlite(e))
    }
}

pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// A queued write: run inside the writer's transaction (again, if the
/// transaction has to be retried), then told whether the commit succeeded
/// so it can answer its caller.
trait Job: Send {
    fn run(&mut self, db: Db);
    /// Why its last run failed, when the database asks to retry it (it
    /// conflicted with another host's transaction).
    fn conflict(&self) -> Option<String>;
    /// Whether its commit may give another host work (on PostgreSQL, the
    /// commit then notifies the hosts).
    fn notifies(&self) -> bool;
    fn finish(self: Box<Self>, commit_error: Option<&str>);
}

struct Write<R, F> {
    write: F,
    notifies: Notifies,
    outcome: Option<DbResult<R>>,
    reply: oneshot::Sender<Result<R>>,
}

/// Whether a write may give another host sharing the journal work:
/// events, runs and messages queued, a replay, a pause or a resume do;
/// marks of what this host did (a delivery, a failed attempt, an ACK
/// recorded) and purges do not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Notifies {
    Hosts,
    Nobody,
}

impl<R, F> Job for Write<R, F>
where
    R: Send,
    F: Fn(Db) -> DbResult<R> + Send,
{
    fn run(&mut self, db: Db) {
        self.outcome = Some(in_savepoint(db, &self.write));
    }

    fn notifies(&self) -> bool {
        self.notifies == Notifies::Hosts
    }

    fn conflict(&self) -> Option<String> {
        match &self.outcome {
            Some(Err(e)) if e.is_transient() => Some(e.to_string()),
            _ => None,
        }
    }

    fn finish(self: Box<Self>, commit_error: Option<&str>) {
        let result = match (self.outcome, commit_error) {
            (Some(Err(e)), _) => Err(JournalError::Database(e)),
            (Some(Ok(r)), None) => Ok(r),
            (_, Some(why)) => Err(JournalError::Commit(why.to_string())),
            (None, None) => Err(JournalError::Closed),
        };
        let _ = self.reply.send(result);
    }
}

/// Which database the journal is in.
#[derive(Clone)]
enum Store {
    Sqlite { path: PathBuf },
    Postgres { pool: Arc<Pool> },
}

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    store: Store,
    jobs: mpsc::Sender<Box<dyn Job>>,
}

/// Most writes one group commit takes.
const MAX_GROUP: usize = 4096;

/// Times a group commit is tried when PostgreSQL reports a deadlock or a
/// serialization failure (between hosts).
const TRANSIENT_TRIES: usize = 3;

/// Events one purge write looks at.
pub const PURGE_CHUNK: usize = 1000;

/// The writer's connection.
enum WriterLink {
    Sqlite(Connection),
    /// Reconnected (as the pool connects) before the next group when the
    /// session was lost.
    Postgres {
        pool: Arc<Pool>,
        session: Option<Session>,
    },
}

impl Journal {
    /// Opens (creating if needed) the SQLite journal at `path` and starts
    /// its writer thread.
    pub fn open(path: &Path) -> Result<Journal> {
        Self::open_capped(path, None)
    }

    /// [`Journal::open`], refusing writes that would grow the database past
    /// `max_bytes`: they fail as "database or disk is full", exactly as
    /// when the disk fills up, and nothing is acknowledged.
    pub fn open_capped(path: &Path, max_bytes: Option<u64>) -> Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| JournalError::Directory(dir.into(), e))?;
        }
        let mut conn = Connection::open(path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        if let Some(max) = max_bytes {
            let page: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            conn.pragma_update(None, "max_page_count", (max / page).max(1))?;
        }
        Self::start(
            Store::Sqlite {
                path: path.to_path_buf(),
            },
            WriterLink::Sqlite(conn),
        )
    }

    /// Opens the PostgreSQL journal `connector` leads to, migrating its
    /// schema, with at most `pool_size` sessions for reads (the writer has
    /// one more of its own).
    pub fn open_postgres(connector: Connector, pool_size: usize) -> Result<Journal> {
        let session = connector.connect()?;
        schema::migrate_postgres(Db::Postgres(&session))?;
        let pool = Pool::new(connector, pool_size);
        Self::start(
            Store::Postgres { pool: pool.clone() },
            WriterLink::Postgres {
                pool,
                session: Some(session),
            },
        )
    }

    fn start(store: Store, link: WriterLink) -> Result<Journal> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_loop(link, queue))
            .map_err(|e| JournalError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok(Journal { store, jobs })
    }

    /// A new read connection (PostgreSQL: a handle on the read pool).
    pub fn reader(&self) -> Result<Reader> {
        match &self.store {
            Store::Sqlite { path } => Reader::open(path),
            Store::Postgres { pool } => Ok(Reader::postgres(pool.clone())),
        }
    }

    /// Joins the cluster of hosts sharing a PostgreSQL journal as host
    /// `id`: opens its lease session (ended by PostgreSQL after `takeover`
    /// without a word) and takes its host lock. `None` on SQLite, which one
    /// host has to itself.
    pub fn join_cluster(&self, id: &str, takeover: std::time::Duration) -> Result<Option<Lease>> {
        match &self.store {
            Store::Sqlite { .. } => Ok(None),
            Store::Postgres { pool } => Ok(Some(Lease::join(
                pool.connector(),
                id,
                takeover.as_millis(),
            )?)),
        }
    }

    /// Calls `notified` whenever a host commits to this PostgreSQL journal
    /// (LISTEN/NOTIFY; once more after each reconnection, as notifications
    /// sent meanwhile are lost). Nothing on SQLite, which only this
    /// process writes.
    pub fn on_commit(&self, notified: std::sync::Arc<dyn Fn() + Send + Sync>) {
        if let Store::Postgres { pool } = &self.store {
            pool.connector().listen(COMMIT_CHANNEL, notified);
        }
    }

    /// A reader with a connection of its own, outside the read pool, for a
    /// long read (a shadow run's snapshot) that must not keep one of the
    /// sessions bots and deliveries read with.
    pub fn dedicated_reader(&self) -> Result<Reader> {
        match &self.store {
            Store::Sqlite { path } => Reader::open(path),
            Store::Postgres { pool } => {
                Ok(Reader::postgres(Pool::new(pool.connector().clone(), 1)))
            }
        }
    }

    /// Where the journal is, for logs: the SQLite file, or the PostgreSQL
    /// server and database (without credentials).
    pub fn describe(&self) -> String {
        match &self.store {
            Store::Sqlite { path } => path.display().to_string(),
            Store::Postgres { pool } => pool.connector().describe(),
        }
    }

    /// Queues `write` for the next group commit. The receiver yields its
    /// result once that commit is durable.
    fn submit<R, F>(&self, notifies: Notifies, write: F) -> oneshot::Receiver<Result<R>>
    where
        R: Send + 'static,
        F: Fn(Db) -> DbResult<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(Write {
            write,
            notifies,
            outcome: None,
            reply,
        });
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.finish(Some("journal writer has stopped"));
        }
        rx
    }
    /// Journals inbound events (with the bots each is routed to) and their
    /// file ledger entry or cron firing, in one commit. Returns the events'
    /// ids.
    pub fn ingest(&self, batch: Ingest) -> oneshot::Receiver<Result<Vec<i64>>> {
        self.submit(Notifies::Hosts, move |c| write::ingest(c, &batch))
    }

    /// Journals a listener's (single) message with its receipt, or, when it
    /// is a resend within the duplicate window, returns the earlier event
    /// and its ACK instead. The writer decides, so concurrent copies are
    /// journaled once.
    pub fn ingest_received(
        &self,
        batch: Ingest,
        receipt: Receipt,
    ) -> oneshot::Receiver<Result<Received>> {
        self.submit(Notifies::Hosts, move |c| {
            write::ingest_received(c, &batch, &receipt)
        })
    }

    /// Journals an HTTP command for its bot, or, when `key` (bot,
    /// `Idempotency-Key`) names an earlier command, returns that one and
    /// its answer instead. The writer decides, so concurrent copies are
    /// journaled once.
    pub fn ingest_http(
        &self,
        batch: Ingest,
        key: Option<IdempotencyKey>,
    ) -> oneshot::Receiver<Result<HttpIngested>> {
        self.submit(Notifies::Hosts, move |c| {
            write::ingest_http(c, &batch, key.as_ref())
        })
    }

    /// Records the ACK sent for a received message unless one is recorded
    /// already; returns the recorded one.
    pub fn receipt_ack(&self, event_id: i64, ack: Vec<u8>) -> oneshot::Receiver<Result<Vec<u8>>> {
        self.submit(Notifies::Nobody, move |c| {
            write::receipt_ack(c, event_id, &ack)
        })
    }

    /// Records a batch of a bot's runs with the state they wrote and the
    /// messages they queued, in one commit.
    pub fn complete(
        &self,
        runs: Vec<RunRecord>,
        state: StateWrites,
    ) -> oneshot::Receiver<Result<()>> {
        self.submit(Notifies::Hosts, move |c| write::complete(c, &runs, &state))
    }

    /// Marks an outbox message delivered.
    pub fn outbox_sent(&self, id: i64) -> oneshot::Receiver<Result<()>> {
        self.submit(Notifies::Nobody, move |c| write::outbox_sent(c, id))
    }

    /// Puts a dead-lettered message back in its destination's queue.
    /// Returns 0 if there is no such dead letter.
    pub fn outbox_requeue(&self, id: i64) -> oneshot::Receiver<Result<usize>> {
        self.submit(Notifies::Hosts, move |c| write::outbox_requeue(c, id))
    }

    /// Records a failed delivery attempt; `dead` moves the message to the
    /// dead-letter list.
    pub fn outbox_failed(
        &self,
        id: i64,
        error: String,
        next_attempt_ms: i64,
        dead: bool,
    ) -> oneshot::Receiver<Result<()>> {
        self.submit(Notifies::Nobody, move |c| {
            write::outbox_failed(c, id, &error, next_attempt_ms, dead)
        })
    }

    /// Records that `destination` is paused (or no longer is).
    pub fn set_paused(&self, destination: &str, paused: bool) -> oneshot::Receiver<Result<()>> {
        let destination = destination.to_string();
        self.submit(Notifies::Hosts, move |c| {
            write::set_paused(c, &destination, paused)
        })
    }

    /// Resolves once the writer has taken a write lock and committed an
    /// empty write: the journal is writable.
    pub fn ping(&self) -> oneshot::Receiver<Result<()>> {
        self.submit(Notifies::Nobody, |_| Ok(()))
    }

    /// Bytes the journal takes: the SQLite database and its WAL on disk,
    /// or PostgreSQL's size of the database.
    pub fn size_on_disk(&self) -> u64 {
        match &self.store {
            Store::Sqlite { path } => {
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                [path.as_os_str(), wal.as_os_str()]
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            }
            Store::Postgres { pool } => pool
                .get()
                .ok()
                .and_then(|s| {
                    Db::Postgres(&s)
                        .query_row("SELECT pg_database_size(current_database())", &[], |r| {
                            r.get::<i64>(0)
                        })
                        .ok()
                })
                .unwrap_or(0) as u64,
        }
    }

    /// Puts an event's failed (or, with `bot`, that bot's) runs back in the
    /// queue. Returns how many runs were re-queued.
    pub fn replay(&self, event_id: i64, bot: Option<String>) -> oneshot::Receiver<Result<usize>> {
        self.submit(Notifies::Hosts, move |c| {
            write::replay(c, event_id, bot.as_deref())
        })
    }

    /// Deletes events older than `before_ms` whose runs and messages are all
    /// finished. Returns how many events went. It deletes [`PURGE_CHUNK`]
    /// events per write, and after each commit leaves the writer to other
    /// writes for as long as the chunk took, so listeners' and bots' writes
    /// wait for one chunk at most, not for the whole purge.
    pub async fn purge(&self, before_ms: i64) -> Result<usize> {
        let (mut total, mut after) = (0, 0);
        loop {
            let started = std::time::Instant::now();
            let chunk = self
                .submit(Notifies::Nobody, move |c| {
                    write::purge_chunk(c, before_ms, after, PURGE_CHUNK)
                })
                .await
                .map_err(|_| JournalError::Closed)??;
            total += chunk.deleted;
            match chunk.next {
                Some(next) => after = next,
                None => return Ok(total),
            }
            tokio::time::sleep(started.elapsed()).await;
        }
    }
}

/// Opens the journal `[journal]` configures, and starts its writer.
pub fn open_configured(cfg: &JournalConfig) -> anyhow::Result<Journal> {
    match cfg.backend {
        JournalBackend::Sqlite => {
            let max_bytes = cfg.max_size_mb.map(|mb| mb * 1024 * 1024);
            Journal::open_capped(&cfg.path, max_bytes)
                .with_context(|| format!("cannot open journal {}", cfg.path.display()))
        }
        JournalBackend::Postgres => {
            let connector = postgres_connector(cfg)?;
            let at = connector.describe();
            Journal::open_postgres(connector, cfg.pool_size)
                .with_context(|| format!("cannot open journal {at}"))
        }
    }
}

/// A reader on the journal `[journal]` configures, for a command that only
/// reads it: no writer, no migration (an SQLite journal must exist).
pub fn open_reader(cfg: &JournalConfig) -> anyhow::Result<Reader> {
    match cfg.backend {
        JournalBackend::Sqlite => {
            anyhow::ensure!(cfg.path.exists(), "no journal at {}", cfg.path.display());
            Reader::open(&cfg.path)
                .with_context(|| format!("cannot open journal {}", cfg.path.display()))
        }
        JournalBackend::Postgres => Ok(Reader::postgres(Pool::new(postgres_connector(cfg)?, 1))),
    }
}

fn postgres_connector(cfg: &JournalConfig) -> anyhow::Result<Connector> {
    let url = cfg.postgres_url()?;
    let tls = cfg
        .tls
        .as_ref()
        .map(crate::tls::client_config)
        .transpose()
        .context("journal.tls")?;
    Connector::new(
        &url,
        tls,
        cfg.statement_timeout_s.saturating_mul(1000),
        cfg.takeover_s.saturating_mul(1000),
    )
    .context("journal: the PostgreSQL connection URL is not valid")
}

/// Runs `write` inside a savepoint, so that its failure undoes only its
/// own changes.
fn in_savepoint<R>(db: Db, write: impl Fn(Db) -> DbResult<R>) -> DbResult<R> {
    control(db, "SAVEPOINT job")?;
    match write(db) {
        Ok(r) => {
            control(db, "RELEASE job")?;
            Ok(r)
        }
        Err(e) => {
            let _ = control(db, "ROLLBACK TO job").and_then(|_| control(db, "RELEASE job"));
            Err(e)
        }
    }
}

/// A transaction-control statement: prepared once on SQLite, sent as it is
/// to PostgreSQL.
fn control(db: Db, sql: &str) -> DbResult<()> {
    match db {
        Db::Sqlite(_) => db.execute(sql, &[]).map(drop),
        Db::Postgres(_) => db.batch(sql),
    }
}

impl WriterLink {
    /// The connection for the next group: PostgreSQL's is opened again if
    /// it was lost.
    fn db(&mut self) -> DbResult<Db<'_>> {
        match self {
            WriterLink::Sqlite(conn) => Ok(Db::Sqlite(conn)),
            WriterLink::Postgres { pool, session } => {
                if session.as_ref().is_none_or(Session::is_closed) {
                    *session = None;
                    *session = Some(pool.connector().connect()?);
                }
                Ok(Db::Postgres(session.as_ref().expect("just connected")))
            }
        }
    }
}

/// Runs one group of writes in one transaction; the commit's error, if it
/// failed.
fn commit_group(db: Db, group: &mut [Box<dyn Job>]) -> Option<DbError> {
    let begin = db.pick("BEGIN IMMEDIATE", "BEGIN");
    if let Err(e) = control(db, begin) {
        return Some(e);
    }
    for job in group.iter_mut() {
        job.run(db);
    }
    if let Some(conflict) = group.iter().find_map(|job| job.conflict()) {
        let _ = control(db, "ROLLBACK");
        return Some(DbError::Conflict(conflict));
    }
    // On PostgreSQL, the other hosts sharing the journal learn of a commit
    // that may give them work at once (in the same round trip).
    let notify = group.iter().any(|job| job.notifies());
    let committed = match db {
        Db::Postgres(_) if notify => control(db, &format!("NOTIFY {COMMIT_CHANNEL}; COMMIT")),
        _ => control(db, "COMMIT"),
    };
    committed.err().inspect(|_| {
        let _ = control(db, "ROLLBACK");
    })
}

fn writer_loop(mut link: WriterLink, queue: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let mut commit_error = None;
        for _ in 0..TRANSIENT_TRIES {
            commit_error = match link.db() {
                Ok(db) => commit_group(db, &mut group),
                Err(e) => Some(e),
            };
            if !commit_error.as_ref().is_some_and(DbError::is_transient) {
                break;
            }
        }
        let commit_error = commit_error.map(|e| e.to_string());
        crate::telemetry::journal_commit(started.elapsed());
        if let Some(why) = &commit_error {
            tracing::error!("journal commit failed: {why}");
        }
        for job in group {
            job.finish(commit_error.as_deref());
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
