//! The journal's tables, on SQLite and on PostgreSQL. Each backend has its
//! own list of migrations: SQLite records how many a database has in
//! `PRAGMA user_version`, PostgreSQL in `schema_version`. Opening applies
//! the rest in order, and refuses a database that has more than this host
//! knows (a newer host migrated it).

use rusqlite::Connection;

use super::JournalError;
use super::db::{Db, DbResult};

const MIGRATIONS: &[&str] = &[
    r#"
-- Every inbound item, as received, before anything acknowledges it.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,      -- hl7 | file | tick | http
    source          TEXT NOT NULL,      -- listener, folder, sftp source or schedule
    name            TEXT,               -- file name (origin file for hl7)
    message_type    TEXT,               -- MSH-9 for hl7
    control_id      TEXT,               -- MSH-10 for hl7
    body            BLOB NOT NULL,      -- hl7: decoded text; file: bytes
    received_at_ms  INTEGER NOT NULL,
    routed          INTEGER NOT NULL    -- bots it was routed to; 0 = unrouted
);

-- One row per (event, bot): the bot's processing of the event.
CREATE TABLE runs (
    event_id        INTEGER NOT NULL,
    bot             TEXT NOT NULL,
    status          TEXT NOT NULL,      -- pending | done | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    bot_version     TEXT,
    duration_us     INTEGER,
    updated_ms      INTEGER,
    PRIMARY KEY (event_id, bot)
) WITHOUT ROWID;
CREATE INDEX runs_by_bot ON runs (bot, status, event_id);
CREATE INDEX runs_by_status ON runs (status, event_id);

-- Bots' durable state, committed with the events that wrote it.
CREATE TABLE kv (
    bot   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (bot, key)
) WITHOUT ROWID;
CREATE TABLE sequences (
    bot   TEXT NOT NULL,
    name  TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (bot, name)
) WITHOUT ROWID;

-- Messages bots asked the host to deliver (transactional outbox).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL,
    bot             TEXT NOT NULL,
    destination     TEXT NOT NULL,
    message         TEXT NOT NULL,
    status          TEXT NOT NULL,      -- pending | sent | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    sent_ms         INTEGER
);
CREATE INDEX outbox_by_destination ON outbox (destination, status, id);

-- Files already taken from a folder or SFTP source.
CREATE TABLE files (
    source    TEXT NOT NULL,
    name      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ms  INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    taken_ms  INTEGER NOT NULL,
    PRIMARY KEY (source, name, size, mtime_ms, sha256)
) WITHOUT ROWID;
"#,
    r#"
-- MLLP: the bytes as received, when they are not the UTF-8 of `body`.
ALTER TABLE events ADD COLUMN raw BLOB;

-- Messages received by listeners, for duplicate suppression: a resend
-- within the window gets `ack` again.
CREATE TABLE received (
    listener    TEXT NOT NULL,
    sender      TEXT NOT NULL,      -- MSH-3^MSH-4
    control_id  TEXT NOT NULL,      -- MSH-10
    event_id    INTEGER NOT NULL,
    ack         BLOB,               -- the ACK as sent; NULL until known
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (listener, sender, control_id)
) WITHOUT ROWID;
"#,
    r#"
-- The latest firing journaled for each cron schedule (for catch-up).
CREATE TABLE ticks (
    schedule TEXT PRIMARY KEY,
    last_ms  INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Partial indexes: only the rows still to be worked on. Finished runs and
-- sent messages leave them, so each commit rewrites a few hot index pages
-- instead of moving entries between sections of whole-table indexes.
DROP INDEX runs_by_bot;
DROP INDEX runs_by_status;
CREATE INDEX runs_pending ON runs (bot, event_id) WHERE status = 'pending';
CREATE INDEX runs_failed ON runs (event_id) WHERE status = 'failed';
DROP INDEX outbox_by_destination;
CREATE INDEX outbox_pending ON outbox (destination, id) WHERE status = 'pending';

-- Receipts keyed by event id: appended in order (a resend's key lands in
-- the small index, not in a table of whole rows with their ACKs), and the
-- application ACK is stored by a rowid lookup. The newest row of a key wins.
CREATE TABLE received_by_event (
    event_id    INTEGER PRIMARY KEY,
    listener    TEXT NOT NULL,
    sender      TEXT NOT NULL,      -- MSH-3^MSH-4
    control_id  TEXT NOT NULL,      -- MSH-10
    ack         BLOB,               -- the ACK as sent; NULL until known
    at_ms       INTEGER NOT NULL
);
INSERT INTO received_by_event (event_id, listener, sender, control_id, ack, at_ms)
    SELECT event_id, listener, sender, control_id, ack, at_ms FROM received;
DROP TABLE received;
ALTER TABLE received_by_event RENAME TO received;
CREATE INDEX received_by_key ON received (listener, sender, control_id);
"#,
    r#"
-- Which lane of a destination with `connections = N` carries a message:
-- `order_hash % N`, worked out once when it is queued.
ALTER TABLE outbox ADD COLUMN order_hash INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- One receipt per (listener, sender, control id): the writer resolves a
-- resend against it, so copies arriving at once are journaled once. Keeps
-- the newest receipt of a key that older versions recorded twice.
DELETE FROM received WHERE event_id NOT IN
    (SELECT MAX(event_id) FROM received GROUP BY listener, sender, control_id);
DROP INDEX received_by_key;
CREATE UNIQUE INDEX received_by_key ON received (listener, sender, control_id);
"#,
    r#"
-- What the bot made of a message received by a listener with application
-- ACKs, committed with its run: a resend after a crash that lost the ACK
-- is answered from it instead of waiting for a run that is already over.
-- reply_kind: 'ack' (reply_text = the bot's ACK, or NULL for AA) | 'failed'
-- (reply_text = the reason).
ALTER TABLE received ADD COLUMN reply_kind TEXT;
ALTER TABLE received ADD COLUMN reply_text TEXT;
"#,
    r#"
-- The purge deletes an event's messages in chunks of events: by event id.
CREATE INDEX outbox_by_event ON outbox (event_id);
"#,
    r#"
-- The admin API's message search (`journal/search.rs`), newest first: each
-- filter has an index ending in the event id, so a page is an index walk.
ALTER TABLE events ADD COLUMN patient_id TEXT;   -- PID-3.1 for hl7; NULL before this
CREATE INDEX events_by_control ON events (control_id, id);
CREATE INDEX events_by_patient ON events (patient_id, id) WHERE patient_id IS NOT NULL;
CREATE INDEX events_by_type ON events (message_type COLLATE NOCASE, id);
CREATE INDEX events_by_source ON events (source, id);
CREATE INDEX events_by_time ON events (received_at_ms);
CREATE INDEX events_unrouted ON events (id) WHERE routed = 0;
-- The bot list: each bot's failed runs, its newest failure first.
CREATE INDEX runs_failed_by_bot ON runs (bot, event_id) WHERE status = 'failed';
-- A run's log lines: JSON array of {"level", "message"}; NULL for none.
ALTER TABLE runs ADD COLUMN logs TEXT;
-- The outbox listing: by destination (immutable columns: no index moves
-- when a message is sent) and the dead letters.
CREATE INDEX outbox_by_destination ON outbox (destination, id);
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
"#,
    r#"
-- Destinations an operator paused: their messages queue and wait until
-- resumed, across restarts.
CREATE TABLE paused_destinations (
    destination TEXT PRIMARY KEY,
    paused_ms   INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- HTTP commands sent with an `Idempotency-Key`: a repeat (same bot and
-- key) gets the first answer and is not journaled again. The writer
-- resolves the key, so copies arriving at once are journaled once. The
-- answer (status, headers as a JSON list of pairs, body) is committed with
-- the run; NULL until then.
CREATE TABLE http_commands (
    event_id        INTEGER PRIMARY KEY,
    bot             TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          INTEGER,
    headers         TEXT,
    body            BLOB,
    at_ms           INTEGER NOT NULL
);
CREATE UNIQUE INDEX http_commands_by_key ON http_commands (bot, idempotency_key);
"#,
    r#"
-- SHA-256 of the command's method, path and body: a key reused for another
-- request is refused. NULL for commands journaled before this migration.
ALTER TABLE http_commands ADD COLUMN request_sha256 TEXT;
"#,
    r#"
-- Contract 0.2.0: a message may be bytes (`data`, with an optional file
-- name and media type; `message` is then empty) and may wait in the outbox
-- until `not_before_ms` (0: due at once). The deferred ones are found by
-- when they fall due.
ALTER TABLE outbox ADD COLUMN data BLOB;
ALTER TABLE outbox ADD COLUMN file_name TEXT;
ALTER TABLE outbox ADD COLUMN content_type TEXT;
ALTER TABLE outbox ADD COLUMN not_before_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_deferred ON outbox (destination, not_before_ms)
    WHERE status = 'pending' AND not_before_ms > 0;
"#,
    r#"
-- Shadow runs: what each committed batch of a bot's runs overwrote in its
-- state, so the state as it was before any event can be rebuilt. One row
-- per key (kind 'kv': value = the previous BLOB) or sequence (kind 'seq':
-- value = the previous INTEGER) the batch wrote; NULL: there was none.
-- Rows are appended in commit order (id) and tagged with the batch's
-- newest event, with which they are purged.
CREATE TABLE state_undo (
    id          INTEGER PRIMARY KEY,
    bot         TEXT NOT NULL,
    last_event  INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    value               -- no type: a BLOB or an INTEGER, as kind says
);
-- A shadow run finds a bot's first undo row at or after an event.
CREATE INDEX state_undo_by_bot ON state_undo (bot, last_event);
CREATE INDEX state_undo_by_event ON state_undo (last_event);
"#,
    r#"
-- 15, HTTP destinations: the method, path and extra headers a bot gave a
-- bytes payload (JSON: {"method", "path", "headers": [[name, value]]}),
-- NULL when it gave none.
ALTER TABLE outbox ADD COLUMN http_request TEXT;
"#,
];

/// Prepared statements a connection keeps: every statement goes through
/// `prepare_cached` (`journal/db.rs`), and one message's writes, reads and
/// transaction control are more than rusqlite's default 16, which would
/// have them evicted and prepared again per message.
pub const STATEMENT_CACHE: usize = 64;

/// Settings every connection gets.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (fsync'd) before anything acknowledges it.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Brings the schema up to date.
pub fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    refuse_newer(version, MIGRATIONS.len())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// A database migrated by a newer host: this one would misread it.
fn refuse_newer(found: usize, known: usize) -> Result<(), JournalError> {
    if found > known {
        return Err(JournalError::Refused(format!(
            "the journal's schema is version {found}, newer than this host knows \
             ({known}): run the newer interlink, or restore a backup taken before it migrated"
        )));
    }
    Ok(())
}

/// The PostgreSQL schema: the SQLite one as of its migration 15, with
/// PostgreSQL's types (`BIGINT` for every integer, `BYTEA` for bytes),
/// plus what several hosts on one database need.
const POSTGRES_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    source          TEXT NOT NULL,
    name            TEXT,
    message_type    TEXT,
    control_id      TEXT,
    body            BYTEA NOT NULL,
    received_at_ms  BIGINT NOT NULL,
    routed          BIGINT NOT NULL,
    raw             BYTEA,
    patient_id      TEXT
);
CREATE INDEX events_by_control ON events (control_id, id);
CREATE INDEX events_by_patient ON events (patient_id, id) WHERE patient_id IS NOT NULL;
CREATE INDEX events_by_type ON events (lower(message_type), id);
CREATE INDEX events_by_source ON events (source, id);
CREATE INDEX events_by_time ON events (received_at_ms);
CREATE INDEX events_unrouted ON events (id) WHERE routed = 0;

CREATE TABLE runs (
    event_id        BIGINT NOT NULL,
    bot             TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    error           TEXT,
    bot_version     TEXT,
    duration_us     BIGINT,
    updated_ms      BIGINT,
    logs            TEXT,
    PRIMARY KEY (event_id, bot)
);
CREATE INDEX runs_pending ON runs (bot, event_id) WHERE status = 'pending';
CREATE INDEX runs_failed ON runs (event_id) WHERE status = 'failed';
CREATE INDEX runs_failed_by_bot ON runs (bot, event_id) WHERE status = 'failed';

CREATE TABLE kv (
    bot   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (bot, key)
);
CREATE TABLE sequences (
    bot   TEXT NOT NULL,
    name  TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (bot, name)
);

CREATE TABLE outbox (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    event_id        BIGINT NOT NULL,
    bot             TEXT NOT NULL,
    destination     TEXT NOT NULL,
    message         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_ms      BIGINT NOT NULL,
    sent_ms         BIGINT,
    order_hash      BIGINT NOT NULL DEFAULT 0,
    data            BYTEA,
    file_name       TEXT,
    content_type    TEXT,
    not_before_ms   BIGINT NOT NULL DEFAULT 0,
    http_request    TEXT
);
CREATE INDEX outbox_pending ON outbox (destination, id) WHERE status = 'pending';
CREATE INDEX outbox_by_event ON outbox (event_id);
CREATE INDEX outbox_by_destination ON outbox (destination, id);
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
CREATE INDEX outbox_deferred ON outbox (destination, not_before_ms)
    WHERE status = 'pending' AND not_before_ms > 0;

CREATE TABLE files (
    source    TEXT NOT NULL,
    name      TEXT NOT NULL,
    size      BIGINT NOT NULL,
    mtime_ms  BIGINT NOT NULL,
    sha256    TEXT NOT NULL,
    taken_ms  BIGINT NOT NULL,
    PRIMARY KEY (source, name, size, mtime_ms, sha256)
);

CREATE TABLE received (
    event_id    BIGINT PRIMARY KEY,
    listener    TEXT NOT NULL,
    sender      TEXT NOT NULL,
    control_id  TEXT NOT NULL,
    ack         BYTEA,
    at_ms       BIGINT NOT NULL,
    reply_kind  TEXT,
    reply_text  TEXT
);
CREATE UNIQUE INDEX received_by_key ON received (listener, sender, control_id);

CREATE TABLE ticks (
    schedule TEXT PRIMARY KEY,
    last_ms  BIGINT NOT NULL
);

CREATE TABLE paused_destinations (
    destination TEXT PRIMARY KEY,
    paused_ms   BIGINT NOT NULL
);

CREATE TABLE http_commands (
    event_id        BIGINT PRIMARY KEY,
    bot             TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          BIGINT,
    headers         TEXT,
    body            BYTEA,
    at_ms           BIGINT NOT NULL,
    request_sha256  TEXT
);
CREATE UNIQUE INDEX http_commands_by_key ON http_commands (bot, idempotency_key);

-- value: a key's previous bytes (kind 'kv'); number: a sequence's previous
-- value (kind 'seq'). SQLite keeps both in one untyped column.
CREATE TABLE state_undo (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    bot         TEXT NOT NULL,
    last_event  BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BYTEA,
    number      BIGINT
);
CREATE INDEX state_undo_by_bot ON state_undo (bot, last_event);
CREATE INDEX state_undo_by_event ON state_undo (last_event);
"#,
    r#"
-- The hosts sharing the journal, as each last reported itself (see
-- journal/lease.rs). Whether a host is alive is not read from here but
-- from the advisory lock its session holds; what it owns is informative
-- (the locks decide): bots and destinations are JSON lists of names.
CREATE TABLE cluster_hosts (
    id            TEXT PRIMARY KEY,
    pid           BIGINT NOT NULL,
    backend_pid   BIGINT NOT NULL,
    started_ms    BIGINT NOT NULL,
    heartbeat_ms  BIGINT NOT NULL,
    leader        BOOLEAN NOT NULL DEFAULT FALSE,
    bots          TEXT NOT NULL DEFAULT '[]',
    destinations  TEXT NOT NULL DEFAULT '[]'
);
"#,
];

/// Brings a PostgreSQL journal's schema up to date. Several hosts may
/// start at once: an advisory lock held for the transaction lets one
/// migrate while the others wait, then find nothing left to do.
pub fn migrate_postgres(db: Db) -> Result<(), JournalError> {
    db.batch(
        "BEGIN; SELECT pg_advisory_xact_lock(7236518);
         CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
    )?;
    let result = (|| -> Result<(), JournalError> {
        let version = postgres_version(db)?;
        refuse_newer(version, POSTGRES_MIGRATIONS.len())?;
        for (i, sql) in POSTGRES_MIGRATIONS.iter().enumerate().skip(version) {
            db.batch(sql)?;
            db.execute("DELETE FROM schema_version", &[])?;
            db.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                &[&((i + 1) as i64)],
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(db.batch("COMMIT")?),
        Err(e) => {
            let _ = db.batch("ROLLBACK");
            Err(e)
        }
    }
}

fn postgres_version(db: Db) -> DbResult<usize> {
    let version: Option<i64> = db
        .query_opt("SELECT MAX(version) FROM schema_version", &[], |r| r.get(0))?
        .flatten();
    Ok(version.unwrap_or(0) as usize)
}
