//! Read-only queries over the journal, on a connection of their own.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, params};

use super::Result;
use super::db::{Db, DbResult};
use super::postgres::{Pool, Pooled};

/// How many payload bytes one [`Reader::outbox_pending`] read holds at
/// most (beyond its first message), so that a queue of large files is not
/// read into memory at once.
const MAX_PENDING_BYTES: usize = 16 << 20;

/// A read connection. Not shared between threads: open one per thread.
pub struct Reader {
    pub(super) source: Source,
}

/// A run waiting for its bot.
#[derive(Debug, Clone, Copy)]
pub struct PendingRun {
    pub event_id: i64,
    pub attempts: i64,
}

/// An event as journaled.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: i64,
    pub kind: String,
    pub source: String,
    pub name: Option<String>,
    pub body: Vec<u8>,
    pub received_at_ms: i64,
}

/// A message waiting for delivery.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub payload: super::Payload,
    /// Not delivered before (ms since the epoch); 0: at once.
    pub not_before_ms: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub created_ms: i64,
    pub last_error: Option<String>,
}

/// One line of `interlink outbox`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxSummary {
    pub id: i64,
    pub event_id: i64,
    pub bot: String,
    pub destination: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    /// When a deferred message falls due (ms since the epoch).
    pub not_before_ms: Option<i64>,
}

/// Which events `interlink events` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Failed,
    Unrouted,
}

/// One line of `interlink events`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventSummary {
    pub id: i64,
    pub kind: String,
    pub source: String,
    pub received_at_ms: i64,
    pub name: Option<String>,
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    /// `bot: status[: error]` per run.
    pub runs: Vec<RunSummary>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub bot: String,
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
}

/// Where a [`Reader`] reads: its own SQLite connection, or sessions of the
/// PostgreSQL pool (one per call, or one held for a snapshot).
pub(super) enum Source {
    Sqlite(Connection),
    Postgres(Arc<Pool>),
    Snapshot(Pooled),
}

impl Drop for Reader {
    /// A session pinned for a snapshot goes back to the pool without its
    /// transaction.
    fn drop(&mut self) {
        if let Source::Snapshot(session) = &self.source {
            let _ = session.batch("ROLLBACK");
        }
    }
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(super::schema::STATEMENT_CACHE);
        Ok(Reader {
            source: Source::Sqlite(conn),
        })
    }

    pub(super) fn postgres(pool: Arc<Pool>) -> Reader {
        Reader {
            source: Source::Postgres(pool),
        }
    }

    /// Runs `f` on this reader's connection.
    pub(super) fn with<R>(&self, f: impl FnOnce(Db) -> DbResult<R>) -> Result<R> {
        Ok(match &self.source {
            Source::Sqlite(conn) => f(Db::Sqlite(conn))?,
            Source::Postgres(pool) => f(Db::Postgres(&*pool.get()?))?,
            Source::Snapshot(session) => f(Db::Postgres(session))?,
        })
    }

    /// Runs `f` on this reader's connection, which it keeps until dropped
    /// (PostgreSQL: a session taken from the pool for good), so that a
    /// transaction `f` begins spans later reads.
    pub(super) fn pinned<R>(&mut self, f: impl FnOnce(Db) -> DbResult<R>) -> Result<R> {
        if let Source::Postgres(pool) = &self.source {
            self.source = Source::Snapshot(pool.get()?);
        }
        self.with(f)
    }

    /// The bot's outcome recorded for the listener's application ACK of
    /// `event_id`, once committed (by whichever host ran the bot).
    pub fn committed_reply(&self, event_id: i64) -> Result<Option<super::AppReply>> {
        self.with(|db| {
            let row = db.query_opt(
                "SELECT reply_kind, reply_text FROM received WHERE event_id = ?1",
                params![event_id],
                |r| Ok(super::AppReply::from_row(r.get(0)?, r.get(1)?)),
            )?;
            Ok(row.flatten())
        })
    }

    /// The answer recorded for the HTTP command `event_id` (one sent with
    /// an `Idempotency-Key`), once committed.
    pub fn committed_answer(&self, event_id: i64) -> Result<Option<super::HttpAnswer>> {
        self.with(|db| {
            let row = db.query_opt(
                "SELECT status, headers, body FROM http_commands WHERE event_id = ?1",
                params![event_id],
                |r| super::HttpAnswer::from_row(r, 0),
            )?;
            Ok(row.flatten())
        })
    }

    /// Which database it reads: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match &self.source {
            Source::Sqlite(_) => "sqlite",
            Source::Postgres(_) | Source::Snapshot(_) => "postgres",
        }
    }

    /// The hosts sharing this PostgreSQL journal; none on SQLite.
    pub fn cluster_hosts(&self) -> Result<Vec<super::ClusterHost>> {
        self.with(|db| match db {
            Db::Sqlite(_) => Ok(Vec::new()),
            Db::Postgres(_) => super::lease::cluster_hosts(db),
        })
    }

    /// Runs of `bot` that are due, oldest event first.
    pub fn pending_runs(&self, bot: &str, now_ms: i64, limit: usize) -> Result<Vec<PendingRun>> {
        self.with(|db| {
            db.query_map(
                "SELECT event_id, attempts FROM runs
                 WHERE bot = ?1 AND status = 'pending' AND next_attempt_ms <= ?2
                 ORDER BY event_id LIMIT ?3",
                params![bot, now_ms, limit as i64],
                |r| {
                    Ok(PendingRun {
                        event_id: r.get(0)?,
                        attempts: r.get(1)?,
                    })
                },
            )
        })
    }

    /// When the earliest pending run of `bot` that is not yet due becomes due.
    pub fn next_due(&self, bot: &str) -> Result<Option<i64>> {
        self.with(|db| {
            db.query_row(
                "SELECT MIN(next_attempt_ms) FROM runs WHERE bot = ?1 AND status = 'pending'",
                params![bot],
                |r| r.get(0),
            )
        })
    }

    pub fn event(&self, id: i64) -> Result<Option<StoredEvent>> {
        self.with(|db| {
            db.query_opt(
                "SELECT id, kind, source, name, body, received_at_ms FROM events WHERE id = ?1",
                params![id],
                |r| {
                    Ok(StoredEvent {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        source: r.get(2)?,
                        name: r.get(3)?,
                        body: r.get(4)?,
                        received_at_ms: r.get(5)?,
                    })
                },
            )
        })
    }

    pub fn kv_get(&self, bot: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|db| {
            db.query_opt(
                "SELECT value FROM kv WHERE bot = ?1 AND key = ?2",
                params![bot, key],
                |r| r.get(0),
            )
        })
    }

    pub fn kv_list(&self, bot: &str, prefix: &str) -> Result<Vec<String>> {
        self.with(|db| {
            db.query_map(
                "SELECT key FROM kv WHERE bot = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
                params![bot, prefix],
                |r| r.get(0),
            )
        })
    }

    pub fn sequence(&self, bot: &str, name: &str) -> Result<u64> {
        let v: Option<i64> = self.with(|db| {
            db.query_opt(
                "SELECT value FROM sequences WHERE bot = ?1 AND name = ?2",
                params![bot, name],
                |r| r.get(0),
            )
        })?;
        Ok(v.unwrap_or(0) as u64)
    }

    /// Pending messages for lane `lane` of `lanes` of `destination` with an
    /// id above `after_id` that are due at `now_ms` (not deferred past it),
    /// in queue order: at most `limit`, and fewer once their payloads pass
    /// [`MAX_PENDING_BYTES`] (files can be large; at least one is read).
    pub fn outbox_pending(
        &self,
        destination: &str,
        (lane, lanes): (usize, usize),
        after_id: i64,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>> {
        let params = params![
            destination,
            after_id,
            limit as i64,
            lanes as i64,
            lane as i64,
            now_ms
        ];
        let (mut read, mut bytes) = (Vec::new(), 0);
        self.with(|db| {
            db.query_each(
                "SELECT id, message, data, file_name, content_type, not_before_ms, attempts,
                        next_attempt_ms, created_ms, last_error, http_request FROM outbox
                 WHERE destination = ?1 AND status = 'pending' AND id > ?2 AND order_hash % ?4 = ?5
                   AND not_before_ms <= ?6
                 ORDER BY id LIMIT ?3",
                params,
                |r| {
                    let row = OutboxRow {
                        id: r.get(0)?,
                        payload: super::Payload::from_columns(
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(10)?,
                        ),
                        not_before_ms: r.get(5)?,
                        attempts: r.get(6)?,
                        next_attempt_ms: r.get(7)?,
                        created_ms: r.get(8)?,
                        last_error: r.get(9)?,
                    };
                    bytes += row.payload.byte_len();
                    read.push(row);
                    Ok(bytes < MAX_PENDING_BYTES)
                },
            )
        })?;
        Ok(read)
    }

    /// When the next message of lane `lane` of `lanes` of `destination`
    /// deferred past `now_ms` falls due, if one is waiting.
    pub fn outbox_next_due(
        &self,
        destination: &str,
        (lane, lanes): (usize, usize),
        now_ms: i64,
    ) -> Result<Option<i64>> {
        self.with(|db| {
            db.query_row(
                "SELECT MIN(not_before_ms) FROM outbox INDEXED BY outbox_deferred
                 WHERE destination = ?1 AND status = 'pending' AND not_before_ms > 0
                   AND not_before_ms > ?2 AND order_hash % ?3 = ?4",
                params![destination, now_ms, lanes as i64, lane as i64],
                |r| r.get(0),
            )
        })
    }

    /// How many messages wait for `destination`, and since when the one
    /// waiting longest has been due (ms since the epoch: when it was queued,
    /// or its `not_before_ms` if later, so a delayed message does not look
    /// stuck). The count walks the `outbox_pending` index; the oldest is
    /// the first undelayed message in it, or an earlier-due delayed one
    /// from `outbox_deferred`, so neither reads the whole queue's rows.
    pub fn outbox_queue(&self, destination: &str) -> Result<(u64, Option<i64>)> {
        self.with(|db| {
            let depth: i64 = db.query_row(
                "SELECT COUNT(*) FROM outbox WHERE destination = ?1 AND status = 'pending'",
                params![destination],
                |r| r.get(0),
            )?;
            let undelayed: Option<i64> = db.query_opt(
                "SELECT created_ms FROM outbox INDEXED BY outbox_pending
                 WHERE destination = ?1 AND status = 'pending' AND not_before_ms = 0
                 ORDER BY id LIMIT 1",
                params![destination],
                |r| r.get(0),
            )?;
            let delayed: Option<i64> = db.query_row(
                db.pick(
                    "SELECT MIN(MAX(created_ms, not_before_ms)) FROM outbox INDEXED BY outbox_deferred
                     WHERE destination = ?1 AND status = 'pending' AND not_before_ms > 0",
                    "SELECT MIN(GREATEST(created_ms, not_before_ms)) FROM outbox
                     WHERE destination = ?1 AND status = 'pending' AND not_before_ms > 0",
                ),
                params![destination],
                |r| r.get(0),
            )?;
            let oldest = [undelayed, delayed].into_iter().flatten().min();
            Ok((depth as u64, oldest))
        })
    }

    /// The destinations that are paused.
    pub fn paused_destinations(&self) -> Result<Vec<String>> {
        self.with(|db| {
            db.query_map("SELECT destination FROM paused_destinations", &[], |r| {
                r.get(0)
            })
        })
    }

    /// The latest journaled firing of a cron schedule.
    pub fn last_tick(&self, schedule: &str) -> Result<Option<i64>> {
        self.with(|db| {
            db.query_opt(
                "SELECT last_ms FROM ticks WHERE schedule = ?1",
                params![schedule],
                |r| r.get(0),
            )
        })
    }

    /// Whether `bot` still has a tick of `schedule` to process.
    pub fn tick_pending(&self, bot: &str, schedule: &str) -> Result<bool> {
        self.with(|db| {
            db.exists(
                "SELECT 1 FROM runs r JOIN events e ON e.id = r.event_id
                 WHERE r.bot = ?1 AND r.status = 'pending' AND e.kind = 'tick' AND e.source = ?2",
                params![bot, schedule],
            )
        })
    }

    pub fn file_taken(&self, f: &super::LedgerEntry) -> Result<bool> {
        self.with(|db| {
            db.exists(
                "SELECT 1 FROM files WHERE source = ?1 AND name = ?2 AND size = ?3 AND mtime_ms = ?4
                 AND sha256 = ?5",
                params![f.source, f.name, f.size, f.mtime_ms, f.sha256],
            )
        })
    }

    /// Outbox messages, newest first; only dead letters with `dead`, else
    /// those not yet delivered and dead letters.
    pub fn outbox(&self, dead: bool, limit: usize) -> Result<Vec<OutboxSummary>> {
        let cond = if dead {
            "status = 'dead'"
        } else {
            "status != 'sent'"
        };
        self.with(|db| {
            db.query_map(
                &format!(
                    "SELECT id, event_id, bot, destination, status, attempts, last_error, created_ms,
                            NULLIF(not_before_ms, 0)
                     FROM outbox WHERE {cond} ORDER BY id DESC LIMIT ?1"
                ),
                params![limit as i64],
                |r| {
                    Ok(OutboxSummary {
                        id: r.get(0)?,
                        event_id: r.get(1)?,
                        bot: r.get(2)?,
                        destination: r.get(3)?,
                        status: r.get(4)?,
                        attempts: r.get(5)?,
                        last_error: r.get(6)?,
                        created_ms: r.get(7)?,
                        not_before_ms: r.get(8)?,
                    })
                },
            )
        })
    }

    /// Newest first.
    pub fn events(&self, filter: EventFilter, limit: usize) -> Result<Vec<EventSummary>> {
        let cond = match filter {
            EventFilter::All => "TRUE",
            EventFilter::Failed => {
                "EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id AND r.status = 'failed')"
            }
            EventFilter::Unrouted => "routed = 0",
        };
        self.with(|db| {
            let mut out = db.query_map(
                &format!(
                    "SELECT id, kind, source, received_at_ms, name, message_type, control_id FROM events
                     WHERE {cond} ORDER BY id DESC LIMIT ?1"
                ),
                params![limit as i64],
                |r| {
                    Ok(EventSummary {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        source: r.get(2)?,
                        received_at_ms: r.get(3)?,
                        name: r.get(4)?,
                        message_type: r.get(5)?,
                        control_id: r.get(6)?,
                        runs: Vec::new(),
                    })
                },
            )?;
            for e in &mut out {
                e.runs = db.query_map(
                    "SELECT bot, status, attempts, error FROM runs WHERE event_id = ?1 ORDER BY bot",
                    params![e.id],
                    |r| {
                        Ok(RunSummary {
                            bot: r.get(0)?,
                            status: r.get(1)?,
                            attempts: r.get(2)?,
                            error: r.get(3)?,
                        })
                    },
                )?;
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader over a journal in memory whose outbox holds, for
    /// destination `d`, one row per `(bytes, created_ms, not_before_ms,
    /// order_hash)`: a bytes payload of that size.
    fn reader(rows: &[(usize, i64, i64, i64)]) -> Reader {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        for (bytes, created, not_before, hash) in rows {
            conn.execute(
                "INSERT INTO outbox (event_id, bot, destination, message, data, status,
                                     created_ms, not_before_ms, order_hash)
                 VALUES (1, 'b', 'd', '', ?1, 'pending', ?2, ?3, ?4)",
                params![vec![0u8; *bytes], created, not_before, hash],
            )
            .unwrap();
        }
        Reader {
            source: Source::Sqlite(conn),
        }
    }

    fn ids(rows: &[OutboxRow]) -> Vec<i64> {
        rows.iter().map(|r| r.id).collect()
    }

    #[test]
    fn a_pending_read_stops_once_its_payloads_pass_the_cap() {
        let ten_mib = 10 << 20;
        let r = reader(&[(ten_mib, 0, 0, 0); 3]);
        assert_eq!(
            ids(&r.outbox_pending("d", (0, 1), 0, 0, 256).unwrap()),
            [1, 2]
        );
        // Where it stopped, the next read goes on.
        assert_eq!(ids(&r.outbox_pending("d", (0, 1), 2, 0, 256).unwrap()), [3]);
        // However large, one message is always read.
        let huge = reader(&[(20 << 20, 0, 0, 0)]);
        assert_eq!(
            ids(&huge.outbox_pending("d", (0, 1), 0, 0, 256).unwrap()),
            [1]
        );
    }

    #[test]
    fn a_delayed_message_waits_and_is_found_when_due_in_its_own_lane() {
        // Lane 1 of 2 holds a message delayed to 5,000; lane 0 one at once.
        let r = reader(&[(1, 100, 5_000, 1), (1, 200, 0, 0)]);
        assert_eq!(
            ids(&r.outbox_pending("d", (1, 2), 0, 1_000, 256).unwrap()),
            [] as [i64; 0]
        );
        assert_eq!(
            ids(&r.outbox_pending("d", (1, 2), 0, 5_000, 256).unwrap()),
            [1]
        );
        assert_eq!(r.outbox_next_due("d", (1, 2), 1_000).unwrap(), Some(5_000));
        assert_eq!(r.outbox_next_due("d", (0, 2), 1_000).unwrap(), None);
        assert_eq!(r.outbox_next_due("d", (1, 2), 5_000).unwrap(), None);
    }

    #[test]
    fn the_queue_age_counts_from_when_a_message_is_due() {
        // Queued at 100 to wait until 5,000, and one queued at 200 at once:
        // the one waiting longest is the latter, due since 200.
        let r = reader(&[(1, 100, 5_000, 0), (1, 200, 0, 0)]);
        assert_eq!(r.outbox_queue("d").unwrap(), (2, Some(200)));
        // Only delayed messages: the earliest due.
        let r = reader(&[(1, 10, 300, 0), (1, 20, 900, 0)]);
        assert_eq!(r.outbox_queue("d").unwrap(), (2, Some(300)));
        assert_eq!(reader(&[]).outbox_queue("d").unwrap(), (0, None));
    }
}
