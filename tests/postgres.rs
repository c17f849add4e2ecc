//! The PostgreSQL servers the end-to-end tests start for themselves
//! ([`PgServer`]): the shared one hands out fresh databases, journal
//! queries read PostgreSQL's types as they read SQLite's, hosts get a
//! database each under `INTERLINK_TEST_JOURNAL=postgres`, and a private
//! server is gone, its port closed, once dropped. The shared server is
//! stopped when this process exits (`pgrep -a postgres` shows nothing
//! afterwards).

use interlink_tests::{
    Backend, DbValue, Host, PgServer, base_config, journal_backend, skip_unless_sqlite,
};

#[test]
fn the_shared_server_hands_out_separate_fresh_databases() {
    let server = PgServer::shared();
    let (a, b) = (server.create_database(), server.create_database());
    assert_ne!(a, b);
    let mut one = server.connect(&a);
    one.batch_execute("CREATE TABLE events (id BIGINT PRIMARY KEY); INSERT INTO events VALUES (7)")
        .unwrap();
    let id: i64 = one.query_one("SELECT id FROM events", &[]).unwrap().get(0);
    assert_eq!(id, 7);
    let mut other = server.connect(&b);
    assert!(other.query("SELECT id FROM events", &[]).is_err());
    drop((one, other));
    server.drop_database(&a);
    server.drop_database(&b);
    assert!(postgres::Client::connect(&server.url(&a), postgres::NoTls).is_err());
}

#[test]
fn journal_queries_read_postgres_types_as_sqlite_ones() {
    let server = PgServer::shared();
    let db = server.create_database();
    server
        .connect(&db)
        .batch_execute(
            "CREATE TABLE events (id BIGINT, name TEXT, body BYTEA, routed BOOLEAN);
             INSERT INTO events VALUES (1, 'a.hl7', 'MSH|', TRUE), (2, NULL, '\\x00ff', FALSE)",
        )
        .unwrap();
    let host = Host::new(&base_config("")).with_journal_url(&server.url(&db));
    assert_eq!(host.query::<i64>("SELECT count(*) FROM events"), 2);
    assert_eq!(
        host.query::<String>("SELECT body FROM events WHERE id = 1"),
        "MSH|"
    );
    assert_eq!(
        host.query_col::<Option<String>>("SELECT name FROM events ORDER BY id"),
        [Some("a.hl7".to_string()), None]
    );
    assert_eq!(
        host.query::<i64>("SELECT id FROM events WHERE id = 3"),
        0,
        "no row: the default"
    );
    let rows = host.query_rows("SELECT id, name, body, routed FROM events WHERE id = 2");
    assert_eq!(
        rows,
        [[
            DbValue::Int(2),
            DbValue::Null,
            DbValue::Blob(vec![0, 255]),
            DbValue::Int(0)
        ]]
    );
    assert_eq!(rows[0][2].to_string(), "00FF");
    assert!(host.query::<bool>("SELECT routed FROM events WHERE id = 1"));
    drop(host);
    server.drop_database(&db);
}

#[test]
fn a_private_server_stops_when_dropped() {
    let server = PgServer::start();
    let port = server.port;
    let mut c = server.connect("postgres");
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    // Stopped like a crash and started again: it recovers, same port.
    server.kill();
    assert!(c.query_one("SELECT 1", &[]).is_err());
    server.resume();
    assert!(
        server
            .connect("postgres")
            .query_one("SELECT 1", &[])
            .is_ok()
    );
    drop(server);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn under_the_switch_every_host_journals_to_a_fresh_database() {
    if journal_backend() != Backend::Postgres {
        println!("skipped: INTERLINK_TEST_JOURNAL=postgres is not set");
        return;
    }
    // Written by hand, with a key of its own, and with no [journal] at all.
    let own =
        "[journal]\npath = \"data/interlink.db\"\nmax_size_mb = 1\n[plugins]\ndir = \"plugins\"\n";
    let host = Host::new(own);
    let written = std::fs::read_to_string(host.path("interlink.toml")).unwrap();
    assert_eq!(
        written,
        "[journal]\nbackend = \"postgres\"\nurl_env = \"INTERLINK_PG_URL\"\nmax_size_mb = 1\n\
         [plugins]\ndir = \"plugins\"\n"
    );
    let bare = Host::new("[plugins]\ndir = \"plugins\"\n");
    let written = std::fs::read_to_string(bare.path("interlink.toml")).unwrap();
    assert!(
        written.ends_with("\n[journal]\nbackend = \"postgres\"\nurl_env = \"INTERLINK_PG_URL\"\n"),
        "{written}"
    );
    // Each its own database, dropped with the host.
    let db: String = host.query("SELECT current_database()");
    assert_ne!(db, bare.query::<String>("SELECT current_database()"));
    drop(host);
    let left: i64 = bare.query(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{db}'"
    ));
    assert_eq!(left, 0);
}

#[test]
fn journal_queries_read_sqlite_as_they_read_postgres() {
    if skip_unless_sqlite("reads an SQLite journal it writes itself") {
        return;
    }
    let host = Host::new(&base_config(""));
    std::fs::create_dir_all(host.path("data")).unwrap();
    rusqlite::Connection::open(host.path("data/interlink.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE events (id INTEGER, name TEXT, body BLOB, routed INTEGER);
             INSERT INTO events VALUES (1, 'a.hl7', CAST('MSH|' AS BLOB), 1), (2, NULL, X'00ff', 0)",
        )
        .unwrap();
    assert_eq!(
        host.query::<String>("SELECT body FROM events WHERE id = 1"),
        "MSH|"
    );
    assert_eq!(
        host.query_rows("SELECT id, name, body, routed FROM events WHERE id = 2"),
        [[
            DbValue::Int(2),
            DbValue::Null,
            DbValue::Blob(vec![0, 255]),
            DbValue::Int(0)
        ]]
    );
    assert!(host.query::<bool>("SELECT routed FROM events WHERE id = 1"));
}
