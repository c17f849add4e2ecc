//! The journal's reads for shadow runs (`crate::shadow`): the events a bot
//! handled in a window with its outcome and the messages it queued, and
//! what its state was before a given event (from `state_undo`, which the
//! writer fills in `complete`). All on one connection (on PostgreSQL, one
//! session the reader keeps), inside one read transaction
//! ([`Reader::begin_snapshot`]), so a host writing meanwhile changes
//! nothing they see.

use std::collections::HashMap;

use rusqlite::params;
use rusqlite::types::Value;

use super::{Payload, Reader, Result, StoredEvent};

/// An event a bot handled (its run is `done` or `failed`), as journaled.
#[derive(Debug, Clone)]
pub struct HandledEvent {
    pub event: StoredEvent,
    /// MSH-9 for hl7 events.
    pub message_type: Option<String>,
    /// MSH-10 for hl7 events.
    pub control_id: Option<String>,
    /// The live bot's outcome: `Err(reason)` when its run failed.
    pub outcome: std::result::Result<(), String>,
}

/// A message the live bot queued for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMessage {
    pub event_id: i64,
    pub destination: String,
    pub payload: Payload,
    /// 0: at once.
    pub not_before_ms: i64,
}

/// A bot's state as it was before some event, as far as it differs from
/// its current state: `None` marks a key or sequence that did not exist.
#[derive(Debug, Clone, Default)]
pub struct StateBefore {
    pub kv: HashMap<String, Option<Vec<u8>>>,
    pub sequences: HashMap<String, Option<u64>>,
}

impl Reader {
    /// Starts the read transaction every later read of this reader sees
    /// (until it is dropped): one snapshot of the journal. On PostgreSQL
    /// the reader keeps one session for it, in a `REPEATABLE READ READ
    /// ONLY` transaction whose snapshot the first read here takes.
    pub fn begin_snapshot(&mut self) -> Result<()> {
        self.pinned(|db| {
            // The snapshot's transaction waits between reads while bots
            // run: it holds no locks, so it is exempt from the session's
            // idle-in-transaction timeout.
            db.batch(db.pick(
                "BEGIN",
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SET LOCAL idle_in_transaction_session_timeout = 0",
            ))?;
            db.query_row(
                db.pick("SELECT COUNT(*) FROM sqlite_master", "SELECT 1"),
                &[],
                |_| Ok(()),
            )
        })
    }

    /// The first event id received at or after `from_ms`, and the last
    /// received before `to_ms` (ids are given in arrival order), or `None`
    /// when no event falls in the window.
    pub fn window_ids(&self, from_ms: i64, to_ms: i64) -> Result<Option<(i64, i64)>> {
        self.with(|db| {
            let first: Option<i64> = db.query_opt(
                "SELECT id FROM events WHERE received_at_ms >= ?1 ORDER BY received_at_ms, id LIMIT 1",
                params![from_ms],
                |r| r.get(0),
            )?;
            let last: Option<i64> = db.query_opt(
                "SELECT id FROM events WHERE received_at_ms < ?1
                 ORDER BY received_at_ms DESC, id DESC LIMIT 1",
                params![to_ms],
                |r| r.get(0),
            )?;
            Ok(first.zip(last).filter(|(f, l)| f <= l))
        })
    }

    /// Up to `limit` events after `after_id`, up to `last_id`, that `bot`
    /// handled, in event order.
    pub fn handled_events(
        &self,
        bot: &str,
        after_id: i64,
        last_id: i64,
        limit: usize,
    ) -> Result<Vec<HandledEvent>> {
        self.with(|db| {
            db.query_map(
                "SELECT e.id, e.kind, e.source, e.name, e.body, e.received_at_ms, e.message_type,
                        e.control_id, r.status, r.error
                 FROM runs r JOIN events e ON e.id = r.event_id
                 WHERE r.event_id > ?2 AND r.event_id <= ?3 AND r.bot = ?1
                   AND r.status IN ('done', 'failed')
                 ORDER BY r.event_id LIMIT ?4",
                params![bot, after_id, last_id, limit as i64],
                |r| {
                    let status: String = r.get(8)?;
                    let error: Option<String> = r.get(9)?;
                    Ok(HandledEvent {
                        event: StoredEvent {
                            id: r.get(0)?,
                            kind: r.get(1)?,
                            source: r.get(2)?,
                            name: r.get(3)?,
                            body: r.get(4)?,
                            received_at_ms: r.get(5)?,
                        },
                        message_type: r.get(6)?,
                        control_id: r.get(7)?,
                        outcome: match status.as_str() {
                            "done" => Ok(()),
                            _ => Err(error.unwrap_or_default()),
                        },
                    })
                },
            )
        })
    }

    /// The messages `bot` queued for events `first..=last`, in the order it
    /// queued them.
    pub fn live_messages(&self, bot: &str, first: i64, last: i64) -> Result<Vec<LiveMessage>> {
        self.with(|db| {
            db.query_map(
                "SELECT event_id, destination, message, data, file_name, content_type, not_before_ms,
                        http_request
                 FROM outbox WHERE event_id BETWEEN ?2 AND ?3 AND bot = ?1 ORDER BY event_id, id",
                params![bot, first, last],
                |r| {
                    Ok(LiveMessage {
                        event_id: r.get(0)?,
                        destination: r.get(1)?,
                        payload: Payload::from_columns(
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(7)?,
                        ),
                        not_before_ms: r.get(6)?,
                    })
                },
            )
        })
    }

    /// What `bot`'s state was before the first batch committed that
    /// handled an event at or after `event_id`: every batch committed from
    /// then on is undone (the oldest previous value of each key wins).
    /// A sequence's previous value is in `value` on SQLite, in `number` on
    /// PostgreSQL (whose `value` holds bytes only): both are read as the
    /// fourth column.
    pub fn state_before(&self, bot: &str, event_id: i64) -> Result<StateBefore> {
        self.with(|db| {
            let mut before = StateBefore::default();
            let start: Option<i64> = db.query_row(
                "SELECT MIN(id) FROM state_undo WHERE bot = ?1 AND last_event >= ?2",
                params![bot, event_id],
                |r| r.get(0),
            )?;
            let Some(start) = start else {
                return Ok(before);
            };
            db.query_each(
                db.pick(
                    "SELECT kind, key, value, value FROM state_undo
                     WHERE bot = ?1 AND id >= ?2 ORDER BY id",
                    "SELECT kind, key, value, number FROM state_undo
                     WHERE bot = ?1 AND id >= ?2 ORDER BY id",
                ),
                params![bot, start],
                |r| {
                    let (kind, key): (String, String) = (r.get(0)?, r.get(1)?);
                    match kind.as_str() {
                        "seq" => {
                            let v = match r.get::<Value>(3)? {
                                Value::Integer(n) => Some(n as u64),
                                _ => None,
                            };
                            before.sequences.entry(key).or_insert(v);
                        }
                        _ => {
                            let v = match r.get::<Value>(2)? {
                                Value::Blob(b) => Some(b),
                                Value::Text(t) => Some(t.into_bytes()),
                                _ => None,
                            };
                            before.kv.entry(key).or_insert(v);
                        }
                    }
                    Ok(true)
                },
            )?;
            Ok(before)
        })
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::db::Db;
    use super::super::read::Source;
    use super::super::write::{self, RunRecord, RunStatus, StateWrites};
    use super::*;

    /// The SQLite connection of a reader the tests built.
    fn conn(r: &Reader) -> &Connection {
        match &r.source {
            Source::Sqlite(c) => c,
            _ => unreachable!("the tests read SQLite"),
        }
    }

    fn run(event_id: i64) -> RunRecord {
        RunRecord {
            event_id,
            bot: "b".into(),
            bot_version: "1".into(),
            status: RunStatus::Done,
            attempts: 1,
            next_attempt_ms: 0,
            error: None,
            duration_us: 1,
            send: Vec::new(),
            reply: None,
            logs: Vec::new(),
            http: None,
        }
    }

    fn writes(kv: &[(&str, Option<&str>)], seq: &[(&str, u64)]) -> StateWrites {
        StateWrites {
            bot: "b".into(),
            kv: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
                .collect(),
            sequences: seq.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    /// Three batches: events 1-2 set a=1 and seq n=1; event 3 sets a=2,
    /// b=x and n=2; event 4 deletes a and sets n=3.
    fn journal() -> Reader {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        let batches = [
            (
                vec![run(1), run(2)],
                writes(&[("a", Some("1"))], &[("n", 1)]),
            ),
            (
                vec![run(3)],
                writes(&[("a", Some("2")), ("b", Some("x"))], &[("n", 2)]),
            ),
            (vec![run(4)], writes(&[("a", None)], &[("n", 3)])),
        ];
        for (runs, state) in &batches {
            write::complete(Db::Sqlite(&c), runs, state).unwrap();
        }
        Reader {
            source: Source::Sqlite(c),
        }
    }

    #[test]
    fn the_state_before_an_event_undoes_the_batches_from_its_own() {
        let r = journal();
        let at = |e| r.state_before("b", e).unwrap();
        let s = at(3);
        assert_eq!(s.kv["a"], Some(b"1".to_vec()));
        assert_eq!(s.kv["b"], None);
        assert_eq!(s.sequences["n"], Some(1));
        let s = at(4);
        assert_eq!(s.kv["a"], Some(b"2".to_vec()));
        assert!(!s.kv.contains_key("b"), "b was not written since");
        assert_eq!(s.sequences["n"], Some(2));
        // Event 2 was in the batch of event 1: the whole batch is undone.
        let s = at(2);
        assert_eq!(s.kv["a"], None);
        assert_eq!(s.sequences["n"], None);
        assert!(at(5).kv.is_empty());
        assert!(r.state_before("other", 1).unwrap().kv.is_empty());
    }

    #[test]
    fn undo_rows_are_purged_with_their_events() {
        let r = journal();
        for id in 1..=4 {
            conn(&r)
                .execute(
                    "INSERT INTO events (id, kind, source, body, received_at_ms, routed)
                     VALUES (?1, 'hl7', 'in', 'MSH', ?1, 1)",
                    params![id],
                )
                .unwrap();
        }
        write::purge_chunk(Db::Sqlite(conn(&r)), 4, 0, 10).unwrap();
        let left: Vec<i64> = conn(&r)
            .prepare("SELECT DISTINCT last_event FROM state_undo ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, [4]);
    }
}
