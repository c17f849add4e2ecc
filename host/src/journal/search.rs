//! The message search behind the admin API and the dashboard: events newest
//! first, filtered by MSH-10, PID-3.1, an MSH-9 pattern, source, status and
//! time range, one page at a time (`before` = an event id cursor).
//!
//! Every query walks one index whose last column is the event id (the
//! *driver*), picked from the filters given, most selective first:
//! control id, patient, failed or pending runs (few, in a journal that
//! works), message type, unrouted, source, else the table itself. The other filters are checked on the rows
//! it yields. A time range becomes an id range first (ids are given in
//! arrival order), so it narrows every driver. Which index serves which
//! filter is listed in `docs/architecture.md`. On SQLite each statement
//! names its index (`INDEXED BY`); PostgreSQL has the same indexes
//! (`events_by_type` on `lower(message_type) COLLATE "C"`) and its
//! planner picks.

use rusqlite::params;
use rusqlite::types::{ToSql, Value};

use super::db::{Db, DbResult, Dialect};
use super::{JournalError, Reader, Result};
use crate::runtime::routing::type_matches;

/// Where an event is in its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// A bot still has to run (or retry) it, and no bot's run failed.
    Received,
    /// Routed, and every bot's run is done.
    Done,
    /// A bot's run failed.
    Failed,
    /// No bot wanted it.
    Unrouted,
}

impl EventStatus {
    /// Every status, as the API names them.
    pub const NAMES: &'static str = "received, done, failed or unrouted";

    pub fn parse(s: &str) -> Option<EventStatus> {
        Some(match s {
            "received" => EventStatus::Received,
            "done" => EventStatus::Done,
            "failed" => EventStatus::Failed,
            "unrouted" => EventStatus::Unrouted,
            _ => return None,
        })
    }

    /// The status of an event routed to `routed` bots whose runs are in
    /// `runs` states; a failed run outweighs a pending one.
    pub fn of_runs<'a>(
        routed: i64,
        mut runs: impl Iterator<Item = &'a str> + Clone,
    ) -> EventStatus {
        if routed == 0 {
            EventStatus::Unrouted
        } else if runs.clone().any(|s| s == "failed") {
            EventStatus::Failed
        } else if runs.any(|s| s == "pending") {
            EventStatus::Received
        } else {
            EventStatus::Done
        }
    }
}

/// What to look for. `None` filters are not applied.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// MSH-10, exactly.
    pub control_id: Option<String>,
    /// PID-3.1, exactly.
    pub patient: Option<String>,
    /// An MSH-9 pattern as subscriptions use them (`ADT^A04`, `ADT^A0*`, `ORU`).
    pub message_type: Option<String>,
    pub source: Option<String>,
    pub status: Option<EventStatus>,
    /// Received at or after, in ms since the epoch.
    pub since_ms: Option<i64>,
    /// Received at or before, in ms since the epoch.
    pub until_ms: Option<i64>,
    /// Only events with a smaller id (the previous page's last).
    pub before: Option<i64>,
    /// Most events returned.
    pub limit: usize,
}

/// An event the search found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FoundEvent {
    pub id: i64,
    pub kind: String,
    pub source: String,
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    pub patient_id: Option<String>,
    pub received_at_ms: i64,
    pub status: EventStatus,
    /// Each bot's run of it, by bot name.
    pub runs: Vec<RunState>,
}

/// A bot's run of an event, in short.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunState {
    pub bot: String,
    /// `pending`, `done` or `failed`.
    pub status: String,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<FoundEvent>,
    /// The cursor for the next page, when there are more.
    pub next_before: Option<i64>,
}

/// Most distinct MSH-9 values a type pattern drives the search by (one
/// index walk each); with more, the pattern is checked as a filter.
const MAX_TYPE_WALKS: usize = 16;
/// Most distinct MSH-9 values a type pattern is matched against; a pattern
/// whose literal prefix covers more is refused ([`JournalError::Refused`]).
const MAX_TYPE_VALUES: usize = 4096;

/// The index a query walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    ControlId,
    Patient,
    /// One walk per matching MSH-9 value.
    Type,
    FailedRuns,
    PendingRuns,
    Unrouted,
    Source,
    /// The table, by id.
    Events,
}

/// A query ready to run, and its parameters.
#[derive(Debug)]
struct Statement {
    sql: String,
    params: Vec<Value>,
}

impl Reader {
    /// One page of events matching `q`, newest first;
    /// [`JournalError::Refused`] for a type pattern too broad to search.
    pub fn search(&self, q: &EventQuery) -> Result<EventPage> {
        self.with(|db| find(db, q))?.map_err(|TooBroad| {
            JournalError::Refused(format!(
                "type: {:?} covers more than {MAX_TYPE_VALUES} message types \
                 in the journal; give more of it before the first '*' or '?'",
                q.message_type.as_deref().unwrap_or_default()
            ))
        })
    }
}

/// A type pattern whose literal prefix covers more than
/// [`MAX_TYPE_VALUES`] message types.
struct TooBroad;

/// [`Reader::search`] on one connection.
fn find(db: Db, q: &EventQuery) -> DbResult<std::result::Result<EventPage, TooBroad>> {
    let empty = EventPage {
        events: Vec::new(),
        next_before: None,
    };
    let Some(window) = id_window(db, q)? else {
        return Ok(Ok(empty));
    };
    let types = match &q.message_type {
        Some(pattern) => match matching_types(db, pattern)? {
            Ok(types) => Some(types),
            Err(too_broad) => return Ok(Err(too_broad)),
        },
        None => None,
    };
    if types.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Ok(empty));
    }
    let mut events = Vec::new();
    for s in statements(q, window, types.as_deref(), db.dialect()) {
        let params: Vec<&dyn ToSql> = s.params.iter().map(|v| v as &dyn ToSql).collect();
        let rows = db.query_map(&s.sql, &params, |r| {
            Ok((
                FoundEvent {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    source: r.get(2)?,
                    message_type: r.get(3)?,
                    control_id: r.get(4)?,
                    patient_id: r.get(5)?,
                    received_at_ms: r.get(6)?,
                    status: EventStatus::Done,
                    runs: Vec::new(),
                },
                r.get::<i64>(7)?,
            ))
        })?;
        events.extend(rows);
    }
    // Several walks (one per message type) each gave their newest.
    events.sort_by_key(|(e, _)| std::cmp::Reverse(e.id));
    events.dedup_by_key(|(e, _)| e.id);
    let more = events.len() > q.limit;
    events.truncate(q.limit);
    let mut page = Vec::with_capacity(events.len());
    for (mut e, routed) in events {
        e.runs = db.query_map(
            "SELECT bot, status FROM runs WHERE event_id = ?1 ORDER BY bot",
            params![e.id],
            |r| {
                Ok(RunState {
                    bot: r.get(0)?,
                    status: r.get(1)?,
                })
            },
        )?;
        e.status = EventStatus::of_runs(routed, e.runs.iter().map(|r| r.status.as_str()));
        page.push(e);
    }
    let next_before = page.last().filter(|_| more).map(|e| e.id);
    Ok(Ok(EventPage {
        events: page,
        next_before,
    }))
}

/// The ids events of `q`'s time range can have (from `events_by_time`),
/// with its cursor applied; `None` when no event can match.
fn id_window(db: Db, q: &EventQuery) -> DbResult<Option<(i64, i64)>> {
    let mut lo = 1;
    let mut hi = q.before.map_or(i64::MAX, |b| b - 1);
    if let Some(since) = q.since_ms {
        let first: Option<i64> = db.query_opt(
            "SELECT id FROM events INDEXED BY events_by_time WHERE received_at_ms >= ?1
             ORDER BY received_at_ms, id LIMIT 1",
            params![since],
            |r| r.get(0),
        )?;
        match first {
            Some(id) => lo = id,
            None => return Ok(None),
        }
    }
    if let Some(until) = q.until_ms {
        let last: Option<i64> = db.query_opt(
            "SELECT id FROM events INDEXED BY events_by_time WHERE received_at_ms <= ?1
             ORDER BY received_at_ms DESC, id DESC LIMIT 1",
            params![until],
            |r| r.get(0),
        )?;
        match last {
            Some(id) => hi = hi.min(id),
            None => return Ok(None),
        }
    }
    Ok((lo <= hi).then_some((lo, hi)))
}

/// The distinct MSH-9 values in the journal that `pattern` matches,
/// found by skipping through `events_by_type` within the pattern's
/// literal prefix, case-insensitively (one index seek per distinct value);
/// [`TooBroad`] when that prefix covers more than [`MAX_TYPE_VALUES`]
/// values. SQLite compares `COLLATE NOCASE`; PostgreSQL's index is on
/// `lower(message_type) COLLATE "C"`, so both sides are lower-cased there
/// and compared byte by byte, whatever the database's collation (a
/// linguistic one would put values outside the prefix's range).
fn matching_types(db: Db, pattern: &str) -> DbResult<std::result::Result<Vec<String>, TooBroad>> {
    let prefix: String = pattern.chars().take_while(|c| !"*?".contains(*c)).collect();
    let upper = format!("{prefix}\u{10FFFF}");
    let first = db.pick(
        "SELECT message_type FROM events INDEXED BY events_by_type
         WHERE message_type COLLATE NOCASE >= ?1 AND message_type COLLATE NOCASE < ?2
         ORDER BY message_type COLLATE NOCASE LIMIT 1",
        r#"SELECT message_type FROM events
         WHERE lower(message_type) COLLATE "C" >= lower(?1)
           AND lower(message_type) COLLATE "C" < lower(?2)
         ORDER BY lower(message_type) COLLATE "C" LIMIT 1"#,
    );
    let next = db.pick(
        "SELECT message_type FROM events INDEXED BY events_by_type
         WHERE message_type COLLATE NOCASE > ?1 AND message_type COLLATE NOCASE < ?2
         ORDER BY message_type COLLATE NOCASE LIMIT 1",
        r#"SELECT message_type FROM events
         WHERE lower(message_type) COLLATE "C" > lower(?1)
           AND lower(message_type) COLLATE "C" < lower(?2)
         ORDER BY lower(message_type) COLLATE "C" LIMIT 1"#,
    );
    let mut found = Vec::new();
    let mut at: Option<String> = db.query_opt(first, params![prefix, upper], |r| r.get(0))?;
    let mut seen = 0;
    while let Some(value) = at {
        seen += 1;
        if seen > MAX_TYPE_VALUES {
            return Ok(Err(TooBroad));
        }
        at = db.query_opt(next, params![value, upper], |r| r.get(0))?;
        if type_matches(pattern, &value) {
            found.push(value);
        }
    }
    Ok(Ok(found))
}

/// The queries that find `q`'s page: one, or one per message type when the
/// type drives. Each yields at most `limit + 1` rows (the extra one says
/// there is a next page): `id, kind, source, message_type, control_id,
/// patient_id, received_at_ms, routed`.
fn statements(
    q: &EventQuery,
    (lo, hi): (i64, i64),
    types: Option<&[String]>,
    dialect: Dialect,
) -> Vec<Statement> {
    let driver = driver(q, types);
    match (driver, types) {
        (Driver::Type, Some(types)) => types
            .iter()
            .map(|t| statement(q, (lo, hi), driver, Some(t), None, dialect))
            .collect(),
        _ => vec![statement(q, (lo, hi), driver, None, types, dialect)],
    }
}

fn driver(q: &EventQuery, types: Option<&[String]>) -> Driver {
    if q.control_id.is_some() {
        Driver::ControlId
    } else if q.patient.is_some() {
        Driver::Patient
    } else if q.status == Some(EventStatus::Failed) {
        Driver::FailedRuns
    } else if q.status == Some(EventStatus::Received) {
        Driver::PendingRuns
    } else if types.is_some_and(|t| t.len() <= MAX_TYPE_WALKS) {
        Driver::Type
    } else if q.status == Some(EventStatus::Unrouted) {
        Driver::Unrouted
    } else if q.source.is_some() {
        Driver::Source
    } else {
        Driver::Events
    }
}

/// One query walking `driver`: `type_value` is the MSH-9 value a type walk
/// is on; `types`, the values a type filter (not driving) allows.
///
/// SQLite is told the index (`INDEXED BY`, and `CROSS JOIN` to walk the
/// runs first); PostgreSQL's planner picks its own, and compares types on
/// `lower(message_type) COLLATE "C"`, which its `events_by_type` is on.
fn statement(
    q: &EventQuery,
    (lo, hi): (i64, i64),
    driver: Driver,
    type_value: Option<&str>,
    types: Option<&[String]>,
    dialect: Dialect,
) -> Statement {
    let postgres = dialect == Dialect::Postgres;
    let mut params: Vec<Value> = Vec::new();
    let mut bind = |v: Value| {
        params.push(v);
        format!("?{}", params.len())
    };
    let (from, id) = match driver {
        Driver::ControlId => ("events e INDEXED BY events_by_control", "e.id"),
        Driver::Patient => ("events e INDEXED BY events_by_patient", "e.id"),
        Driver::Type => ("events e INDEXED BY events_by_type", "e.id"),
        Driver::Unrouted => ("events e INDEXED BY events_unrouted", "e.id"),
        Driver::Source => ("events e INDEXED BY events_by_source", "e.id"),
        Driver::Events => ("events e NOT INDEXED", "e.id"),
        Driver::FailedRuns => (
            "runs r INDEXED BY runs_failed CROSS JOIN events e ON e.id = r.event_id",
            "r.event_id",
        ),
        Driver::PendingRuns => (
            "runs r INDEXED BY runs_pending CROSS JOIN events e ON e.id = r.event_id",
            "r.event_id",
        ),
    };
    let from = match (postgres, driver) {
        (false, _) => from,
        (true, Driver::FailedRuns | Driver::PendingRuns) => {
            "runs r JOIN events e ON e.id = r.event_id"
        }
        (true, _) => "events e",
    };
    let mut conds = vec![
        format!("{id} >= {}", bind(lo.into())),
        format!("{id} <= {}", bind(hi.into())),
    ];
    if let Some(c) = &q.control_id {
        conds.push(format!("e.control_id = {}", bind(c.clone().into())));
    }
    if let Some(p) = &q.patient {
        conds.push(format!("e.patient_id = {}", bind(p.clone().into())));
    }
    match (type_value, types) {
        (Some(t), _) if postgres => conds.push(format!(
            "lower(e.message_type) COLLATE \"C\" = lower({})",
            bind(t.to_string().into())
        )),
        (Some(t), _) => conds.push(format!(
            "e.message_type COLLATE NOCASE = {}",
            bind(t.to_string().into())
        )),
        // PostgreSQL's lower() may fold more than ASCII: it lowers both sides.
        (None, Some(types)) if postgres => {
            let list: Vec<String> = types
                .iter()
                .map(|t| format!("lower({})", bind(t.clone().into())))
                .collect();
            conds.push(format!(
                "lower(e.message_type) COLLATE \"C\" IN ({})",
                list.join(", ")
            ));
        }
        (None, Some(types)) => {
            let list: Vec<String> = types
                .iter()
                .map(|t| bind(t.to_ascii_lowercase().into()))
                .collect();
            conds.push(format!("lower(e.message_type) IN ({})", list.join(", ")));
        }
        (None, None) => {}
    }
    if let Some(s) = &q.source {
        conds.push(format!("e.source = {}", bind(s.clone().into())));
    }
    if let Some(since) = q.since_ms {
        conds.push(format!("e.received_at_ms >= {}", bind(since.into())));
    }
    if let Some(until) = q.until_ms {
        conds.push(format!("e.received_at_ms <= {}", bind(until.into())));
    }
    let has_run = |status: &str| {
        format!("EXISTS (SELECT 1 FROM runs x WHERE x.event_id = e.id AND x.status = '{status}')")
    };
    match (q.status, driver) {
        (Some(EventStatus::Failed), Driver::FailedRuns) => conds.push("r.status = 'failed'".into()),
        // Received: a run pending and none failed (see `EventStatus::of_runs`).
        (Some(EventStatus::Received), Driver::PendingRuns) => conds.push(format!(
            "r.status = 'pending' AND NOT {}",
            has_run("failed")
        )),
        (Some(EventStatus::Failed), _) => conds.push(has_run("failed")),
        (Some(EventStatus::Received), _) => conds.push(format!(
            "{} AND NOT {}",
            has_run("pending"),
            has_run("failed")
        )),
        (Some(EventStatus::Unrouted), _) => conds.push("e.routed = 0".into()),
        (Some(EventStatus::Done), _) => conds.push(format!(
            "e.routed > 0 AND NOT {} AND NOT {}",
            has_run("pending"),
            has_run("failed")
        )),
        (None, _) => {}
    }
    // An event with several runs in the walked state comes once.
    // PostgreSQL groups by the events' key (so that their other columns may
    // be selected), and orders by it.
    let (group, order) = match (id, postgres) {
        ("r.event_id", false) => (" GROUP BY r.event_id", id),
        ("r.event_id", true) => (" GROUP BY e.id", "e.id"),
        _ => ("", id),
    };
    let limit = bind((q.limit as i64 + 1).into());
    let sql = format!(
        "SELECT e.id, e.kind, e.source, e.message_type, e.control_id, e.patient_id,
                e.received_at_ms, e.routed
         FROM {from} WHERE {}{group} ORDER BY {order} DESC LIMIT {limit}",
        conds.join(" AND ")
    );
    Statement { sql, params }
}

#[cfg(test)]
mod tests {
    use super::super::read::Source;
    use super::*;
    use rusqlite::{Connection, params_from_iter};

    /// The SQLite connection of a reader the tests opened.
    fn conn(r: &Reader) -> &Connection {
        match &r.source {
            Source::Sqlite(c) => c,
            _ => unreachable!("the tests read SQLite"),
        }
    }

    /// A journal in a temporary file: ids 1..=12 from two sources over
    /// 12 seconds; patients P1/P2; types ADT^A04, ADT^A08, ORU^R01;
    /// event 5 failed (and pending for a second bot), 7 pending, 9 unrouted.
    fn journal() -> (tempfile::TempDir, Reader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut c = Connection::open(&path).unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        for id in 1..=12i64 {
            let ty = ["ADT^A04^ADT_A01", "ADT^A08", "ORU^R01"][id as usize % 3];
            let source = if id % 2 == 0 { "lab" } else { "adt" };
            let routed = i64::from(id != 9);
            c.execute(
                "INSERT INTO events (id, kind, source, message_type, control_id, patient_id, body,
                                     received_at_ms, routed)
                 VALUES (?1, 'hl7', ?2, ?3, 'C' || ?1, 'P' || (?1 % 2 + 1), 'MSH', ?1 * 1000, ?4)",
                params![id, source, ty, routed],
            )
            .unwrap();
            if routed == 1 {
                let status = match id {
                    5 => "failed",
                    7 => "pending",
                    _ => "done",
                };
                c.execute(
                    "INSERT INTO runs (event_id, bot, status) VALUES (?1, 'b', ?2)",
                    params![id, status],
                )
                .unwrap();
            }
        }
        c.execute(
            "INSERT INTO runs (event_id, bot, status) VALUES (5, 'c', 'pending')",
            [],
        )
        .unwrap();
        drop(c);
        let reader = Reader::open(&path).unwrap();
        (dir, reader)
    }

    fn ids(r: &Reader, q: EventQuery) -> Vec<i64> {
        let q = EventQuery {
            limit: if q.limit == 0 { 50 } else { q.limit },
            ..q
        };
        r.search(&q).unwrap().events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn each_filter_finds_its_events_newest_first() {
        let (_dir, r) = journal();
        let q = EventQuery::default;
        let some = |s: &str| Some(s.to_string());
        assert_eq!(ids(&r, q()), (1..=12).rev().collect::<Vec<_>>());
        let by_control = EventQuery {
            control_id: some("C4"),
            ..q()
        };
        assert_eq!(ids(&r, by_control), [4]);
        let by_patient = EventQuery {
            patient: some("P2"),
            ..q()
        };
        assert_eq!(ids(&r, by_patient), [11, 9, 7, 5, 3, 1]);
        let a04 = EventQuery {
            message_type: some("adt^a04"),
            ..q()
        };
        assert_eq!(ids(&r, a04), [12, 9, 6, 3]);
        let adt = EventQuery {
            message_type: some("ADT^A0*"),
            ..q()
        };
        assert_eq!(ids(&r, adt), [12, 10, 9, 7, 6, 4, 3, 1]);
        let oru = EventQuery {
            message_type: some("ORU"),
            ..q()
        };
        assert_eq!(ids(&r, oru), [11, 8, 5, 2]);
        let lab = EventQuery {
            source: some("lab"),
            ..q()
        };
        assert_eq!(ids(&r, lab), [12, 10, 8, 6, 4, 2]);
        let status = |s| {
            ids(
                &r,
                EventQuery {
                    status: Some(s),
                    ..q()
                },
            )
        };
        assert_eq!(status(EventStatus::Failed), [5]);
        assert_eq!(status(EventStatus::Received), [7]);
        assert_eq!(status(EventStatus::Unrouted), [9]);
        assert_eq!(status(EventStatus::Done), [12, 11, 10, 8, 6, 4, 3, 2, 1]);
        let window = EventQuery {
            since_ms: Some(3000),
            until_ms: Some(5500),
            ..q()
        };
        assert_eq!(ids(&r, window), [5, 4, 3]);
        let combined = EventQuery {
            source: some("adt"),
            message_type: some("ADT*"),
            until_ms: Some(9000),
            ..q()
        };
        assert_eq!(ids(&r, combined), [9, 7, 3, 1]);
        let none = EventQuery {
            since_ms: Some(99_000),
            ..q()
        };
        assert_eq!(ids(&r, none), Vec::<i64>::new());
    }

    #[test]
    fn a_type_pattern_covering_too_many_types_is_refused() {
        let (dir, r) = journal();
        let c = Connection::open(dir.path().join("j.db")).unwrap();
        c.execute_batch("BEGIN").unwrap();
        for n in 0..MAX_TYPE_VALUES {
            c.execute(
                "INSERT INTO events (kind, source, message_type, body, received_at_ms, routed)
                 VALUES ('hl7', 'adt', ?1, 'MSH', 0, 0)",
                params![format!("Z{n:05}")],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let search = |pattern: &str| {
            r.search(&EventQuery {
                message_type: Some(pattern.into()),
                limit: 50,
                ..EventQuery::default()
            })
        };
        match search("*") {
            Err(JournalError::Refused(message)) => {
                assert!(message.starts_with("type: "), "{message}")
            }
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(search("ORU").unwrap().events.len(), 4);
        let types: Vec<String> = search("Z0001?")
            .unwrap()
            .events
            .into_iter()
            .filter_map(|e| e.message_type)
            .collect();
        let want: Vec<String> = (10..20).rev().map(|n| format!("Z{n:05}")).collect();
        assert_eq!(types, want);
    }

    #[test]
    fn pages_follow_the_cursor() {
        let (_dir, r) = journal();
        let mut q = EventQuery {
            limit: 5,
            ..EventQuery::default()
        };
        let mut pages = Vec::new();
        loop {
            let page = r.search(&q).unwrap();
            pages.push(page.events.iter().map(|e| e.id).collect::<Vec<_>>());
            match page.next_before {
                Some(b) => q.before = Some(b),
                None => break,
            }
        }
        assert_eq!(
            pages,
            [vec![12, 11, 10, 9, 8], vec![7, 6, 5, 4, 3], vec![2, 1]]
        );
        let page = r
            .search(&EventQuery {
                limit: 12,
                ..EventQuery::default()
            })
            .unwrap();
        assert_eq!(page.next_before, None);
        assert_eq!(page.events[7].status, EventStatus::Failed);
    }

    /// The plan of each kind of query walks the index meant for it.
    #[test]
    fn every_filter_is_served_by_its_index() {
        let (_dir, r) = journal();
        let some = |s: &str| Some(s.to_string());
        let q = || EventQuery {
            limit: 50,
            ..EventQuery::default()
        };
        let types = vec!["ADT^A04".to_string()];
        let cases: Vec<(EventQuery, Option<&[String]>, &str)> = vec![
            (
                EventQuery {
                    control_id: some("C1"),
                    ..q()
                },
                None,
                "INDEX events_by_control (control_id=? AND id>? AND id<?)",
            ),
            (
                EventQuery {
                    patient: some("P1"),
                    ..q()
                },
                None,
                "INDEX events_by_patient (patient_id=? AND id>? AND id<?)",
            ),
            (
                EventQuery {
                    message_type: some("ADT^A04"),
                    ..q()
                },
                Some(&types),
                "INDEX events_by_type (message_type=? AND id>? AND id<?)",
            ),
            (
                EventQuery {
                    status: Some(EventStatus::Failed),
                    ..q()
                },
                None,
                "INDEX runs_failed (event_id>? AND event_id<?)",
            ),
            (
                EventQuery {
                    status: Some(EventStatus::Received),
                    ..q()
                },
                None,
                "INDEX runs_pending",
            ),
            // Combined: the failed runs drive, the rest are checked per row.
            (
                EventQuery {
                    status: Some(EventStatus::Failed),
                    source: some("lab"),
                    message_type: some("ADT^A04"),
                    ..q()
                },
                Some(&types),
                "INDEX runs_failed (event_id>? AND event_id<?)\nSEARCH e USING INTEGER PRIMARY KEY (rowid=?)",
            ),
            (
                EventQuery {
                    source: some("lab"),
                    message_type: some("ADT^A04"),
                    ..q()
                },
                Some(&types),
                "INDEX events_by_type (message_type=? AND id>? AND id<?)",
            ),
            (
                EventQuery {
                    status: Some(EventStatus::Unrouted),
                    ..q()
                },
                None,
                "INDEX events_unrouted (id>? AND id<?)",
            ),
            (
                EventQuery {
                    source: some("lab"),
                    ..q()
                },
                None,
                "INDEX events_by_source (source=? AND id>? AND id<?)",
            ),
            (
                EventQuery {
                    status: Some(EventStatus::Done),
                    ..q()
                },
                None,
                "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
            ),
        ];
        for (query, types, index) in cases {
            for s in statements(&query, (1, 100), types, Dialect::Sqlite) {
                let plan = explain(&r, &s);
                assert!(plan.contains(index), "{query:?}: {plan}");
                if !matches!(query.status, Some(EventStatus::Received)) {
                    assert!(!plan.contains("TEMP B-TREE"), "{query:?} sorts: {plan}");
                }
            }
        }
        let time = conn(&r)
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM events INDEXED BY events_by_time
                      WHERE received_at_ms >= 1 ORDER BY received_at_ms, id LIMIT 1",
            )
            .unwrap()
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(time.contains("events_by_time (received_at_ms>?)"), "{time}");
        assert!(!time.contains("TEMP B-TREE"), "{time}");
    }

    fn explain(r: &Reader, s: &Statement) -> String {
        let mut stmt = conn(r)
            .prepare(&format!("EXPLAIN QUERY PLAN {}", s.sql))
            .unwrap();
        stmt.query_map(params_from_iter(s.params.iter()), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("\n")
    }
}
