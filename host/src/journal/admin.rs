//! Reads for the admin API and the dashboard: one event with everything
//! that happened to it, the outbox page by page, and bots' failures. (The
//! message search is `search.rs`.)

use rusqlite::params;
use rusqlite::types::{ToSql, Value};

use super::db::{DbResult, Row};
use super::{Reader, Result, RunLog};

/// An event with its receipt, runs and outbound messages.
#[derive(Debug, Clone)]
pub struct EventDetail {
    pub id: i64,
    pub kind: String,
    pub source: String,
    /// File name (origin file for hl7).
    pub name: Option<String>,
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    pub patient_id: Option<String>,
    /// hl7: the decoded text; file: the bytes.
    pub body: Vec<u8>,
    /// The bytes as received, when they are not `body`.
    pub raw: Option<Vec<u8>>,
    pub received_at_ms: i64,
    /// Bots it was routed to (0: unrouted).
    pub routed: i64,
    /// The ACK a listener sent for it, when one is recorded.
    pub ack: Option<Vec<u8>>,
    pub runs: Vec<RunDetail>,
    pub outbox: Vec<OutboxItem>,
}

/// A bot's run of an event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetail {
    pub bot: String,
    /// `pending`, `done` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub bot_version: Option<String>,
    pub duration_us: Option<i64>,
    pub updated_ms: Option<i64>,
    /// What the bot logged while it ran (the latest attempt).
    pub logs: Vec<RunLog>,
}

/// A message in the outbox, without its text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxItem {
    pub id: i64,
    pub event_id: i64,
    pub bot: String,
    pub destination: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
    /// When a delayed message falls due.
    pub not_before_ms: Option<i64>,
    /// The file name a bot gave its bytes.
    pub file_name: Option<String>,
}

/// Which outbox messages to list.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    pub destination: Option<String>,
    /// `pending`, `sent` or `dead`.
    pub status: Option<String>,
    /// Only messages with a smaller id (the previous page's last).
    pub before: Option<i64>,
    pub limit: usize,
}

/// A bot's latest failed run still in the journal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastFailure {
    pub event_id: i64,
    pub error: Option<String>,
    pub at_ms: Option<i64>,
}

const OUTBOX_COLUMNS: &str =
    "id, event_id, bot, destination, status, attempts, last_error, created_ms, sent_ms,
     NULLIF(not_before_ms, 0), file_name";

fn outbox_item(r: &Row) -> DbResult<OutboxItem> {
    Ok(OutboxItem {
        id: r.get(0)?,
        event_id: r.get(1)?,
        bot: r.get(2)?,
        destination: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        created_ms: r.get(7)?,
        sent_ms: r.get(8)?,
        not_before_ms: r.get(9)?,
        file_name: r.get(10)?,
    })
}

impl Reader {
    /// Event `id` with its receipt, runs (and their log lines) and
    /// outbound messages; `None` if there is no such event.
    pub fn event_detail(&self, id: i64) -> Result<Option<EventDetail>> {
        self.with(|db| {
            let event = db.query_opt(
                "SELECT id, kind, source, name, message_type, control_id, patient_id, body, raw,
                        received_at_ms, routed,
                        (SELECT ack FROM received WHERE received.event_id = events.id)
                 FROM events WHERE id = ?1",
                params![id],
                |r| {
                    Ok(EventDetail {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        source: r.get(2)?,
                        name: r.get(3)?,
                        message_type: r.get(4)?,
                        control_id: r.get(5)?,
                        patient_id: r.get(6)?,
                        body: r.get(7)?,
                        raw: r.get(8)?,
                        received_at_ms: r.get(9)?,
                        routed: r.get(10)?,
                        ack: r.get(11)?,
                        runs: Vec::new(),
                        outbox: Vec::new(),
                    })
                },
            )?;
            let Some(mut event) = event else {
                return Ok(None);
            };
            event.runs = db.query_map(
                "SELECT bot, status, attempts, error, bot_version, duration_us, updated_ms, logs
                 FROM runs WHERE event_id = ?1 ORDER BY bot",
                params![id],
                |r| {
                    let logs: Option<String> = r.get(7)?;
                    Ok(RunDetail {
                        bot: r.get(0)?,
                        status: r.get(1)?,
                        attempts: r.get(2)?,
                        error: r.get(3)?,
                        bot_version: r.get(4)?,
                        duration_us: r.get(5)?,
                        updated_ms: r.get(6)?,
                        logs: logs
                            .and_then(|l| serde_json::from_str(&l).ok())
                            .unwrap_or_default(),
                    })
                },
            )?;
            event.outbox = db.query_map(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox INDEXED BY outbox_by_event
                     WHERE event_id = ?1 ORDER BY id"
                ),
                params![id],
                outbox_item,
            )?;
            Ok(Some(event))
        })
    }

    /// One page of outbox messages, newest first, and the cursor for the
    /// next page. Pending messages are found through `outbox_pending`, dead
    /// letters through `outbox_dead`, the rest by destination
    /// (`outbox_by_destination`) or by id (SQLite is told which; PostgreSQL's
    /// planner picks among the same indexes).
    pub fn outbox_page(&self, q: &OutboxQuery) -> Result<(Vec<OutboxItem>, Option<i64>)> {
        let index = match (q.status.as_deref(), &q.destination) {
            (Some("pending"), _) => "INDEXED BY outbox_pending",
            (Some("dead"), _) => "INDEXED BY outbox_dead",
            (_, Some(_)) => "INDEXED BY outbox_by_destination",
            (_, None) => "NOT INDEXED",
        };
        let mut params: Vec<Value> = vec![q.before.unwrap_or(i64::MAX).into()];
        let mut conds = vec!["id < ?1".to_string()];
        if let Some(d) = &q.destination {
            params.push(d.clone().into());
            conds.push(format!("destination = ?{}", params.len()));
        }
        // A literal, so that the partial indexes apply.
        match q.status.as_deref() {
            Some(s @ ("pending" | "sent" | "dead")) => conds.push(format!("status = '{s}'")),
            Some(_) => return Ok((Vec::new(), None)),
            None => {}
        }
        params.push((q.limit as i64 + 1).into());
        let refs: Vec<&dyn ToSql> = params.iter().map(|v| v as &dyn ToSql).collect();
        let mut items = self.with(|db| {
            let sql = format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox {} WHERE {} ORDER BY id DESC LIMIT ?{}",
                db.pick(index, ""),
                conds.join(" AND "),
                params.len()
            );
            db.query_map(&sql, &refs, outbox_item)
        })?;
        let more = items.len() > q.limit;
        items.truncate(q.limit);
        let next = items.last().filter(|_| more).map(|m| m.id);
        Ok((items, next))
    }

    /// The status of outbox message `id`, if there is one.
    pub fn outbox_status(&self, id: i64) -> Result<Option<String>> {
        self.with(|db| {
            db.query_opt(
                "SELECT status FROM outbox WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
        })
    }

    /// Failed runs in the journal per bot, in bot order: on SQLite one walk
    /// of the failed runs' `runs_failed_by_bot` index, already in bot
    /// order (PostgreSQL is asked to sort).
    pub fn failed_runs_by_bot(&self) -> Result<Vec<(String, i64)>> {
        self.with(|db| {
            db.query_map(
                db.pick(FAILED_RUNS_BY_BOT, FAILED_RUNS_BY_BOT_POSTGRES),
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    /// The failed run of `bot` on the newest event, if any: one seek in
    /// `runs_failed_by_bot`.
    pub fn last_failure(&self, bot: &str) -> Result<Option<LastFailure>> {
        self.with(|db| {
            db.query_opt(LAST_FAILURE, params![bot], |r| {
                Ok(LastFailure {
                    event_id: r.get(0)?,
                    error: r.get(1)?,
                    at_ms: r.get(2)?,
                })
            })
        })
    }
}

/// Failed runs per bot (see [`Reader::failed_runs_by_bot`]).
const FAILED_RUNS_BY_BOT: &str = "SELECT bot, COUNT(*) FROM runs INDEXED BY runs_failed_by_bot
     WHERE status = 'failed' GROUP BY bot";

/// [`FAILED_RUNS_BY_BOT`] for PostgreSQL, whose grouping may hash: the
/// order is asked for.
const FAILED_RUNS_BY_BOT_POSTGRES: &str =
    "SELECT bot, COUNT(*) FROM runs WHERE status = 'failed' GROUP BY bot ORDER BY bot";

/// A bot's newest failed run (see [`Reader::last_failure`]).
const LAST_FAILURE: &str =
    "SELECT event_id, error, updated_ms FROM runs INDEXED BY runs_failed_by_bot
     WHERE status = 'failed' AND bot = ?1 ORDER BY event_id DESC LIMIT 1";

#[cfg(test)]
mod tests {
    use rusqlite::params_from_iter;

    use super::*;

    /// The bot list's failure queries read the failed runs of the bot
    /// asked for, in index order: no sort, no walk over other bots' rows.
    #[test]
    fn failures_per_bot_are_served_by_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut c = rusqlite::Connection::open(&path).unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        for (event, bot, status) in [
            (1, "a", "failed"),
            (2, "a", "failed"),
            (2, "b", "failed"),
            (3, "b", "done"),
        ] {
            c.execute(
                "INSERT INTO runs (event_id, bot, status, error) VALUES (?1, ?2, ?3, 'e' || ?1)",
                params![event, bot, status],
            )
            .unwrap();
        }
        let r = Reader::open(&path).unwrap();
        let plan = |sql: &str, args: &[&str]| {
            c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_from_iter(args), |row| row.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let last = plan(LAST_FAILURE, &["a"]);
        assert!(
            last.contains("SEARCH runs USING COVERING INDEX runs_failed_by_bot (bot=?)")
                || last.contains("SEARCH runs USING INDEX runs_failed_by_bot (bot=?)"),
            "{last}"
        );
        assert!(!last.contains("TEMP B-TREE"), "{last}");
        let counts = plan(FAILED_RUNS_BY_BOT, &[]);
        assert!(counts.contains("runs_failed_by_bot"), "{counts}");
        assert!(!counts.contains("TEMP B-TREE"), "{counts}");
        assert_eq!(
            r.failed_runs_by_bot().unwrap(),
            [("a".to_string(), 2), ("b".to_string(), 1)]
        );
        assert_eq!(r.last_failure("a").unwrap().unwrap().event_id, 2);
        assert!(r.last_failure("c").unwrap().is_none());
    }

    /// Every combination of the outbox listing's filters runs (each forces
    /// its index) and pages newest first.
    #[test]
    fn outbox_pages_by_destination_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut c = rusqlite::Connection::open(&path).unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        for (id, dest, status) in [
            (1, "a", "sent"),
            (2, "b", "dead"),
            (3, "a", "dead"),
            (4, "a", "pending"),
        ] {
            c.execute(
                "INSERT INTO outbox (id, event_id, bot, destination, message, status, created_ms)
                 VALUES (?1, 1, 'bot', ?2, 'MSH', ?3, 0)",
                params![id, dest, status],
            )
            .unwrap();
        }
        let r = Reader::open(&path).unwrap();
        let ids = |destination: Option<&str>, status: Option<&str>, before: Option<i64>| {
            let q = OutboxQuery {
                destination: destination.map(str::to_string),
                status: status.map(str::to_string),
                before,
                limit: 2,
            };
            let (items, next) = r.outbox_page(&q).unwrap();
            (items.iter().map(|m| m.id).collect::<Vec<_>>(), next)
        };
        assert_eq!(ids(None, None, None), (vec![4, 3], Some(3)));
        assert_eq!(ids(None, None, Some(3)), (vec![2, 1], None));
        assert_eq!(ids(Some("a"), None, None), (vec![4, 3], Some(3)));
        assert_eq!(ids(None, Some("dead"), None), (vec![3, 2], None));
        assert_eq!(ids(Some("a"), Some("dead"), None), (vec![3], None));
        assert_eq!(ids(Some("a"), Some("pending"), None), (vec![4], None));
        assert_eq!(ids(None, Some("pending"), None), (vec![4], None));
        assert_eq!(ids(Some("b"), Some("sent"), None), (vec![], None));
        assert_eq!(ids(None, Some("sent"), None), (vec![1], None));
    }
}
