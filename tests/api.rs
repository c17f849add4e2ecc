//! The admin API (`/api/v1`) against the real binary with the probe bot, a
//! real MLLP listener and a python-hl7 peer as the destination: the message
//! search by every filter with pagination, message detail (ACK, runs with
//! their log lines, outbound messages), the bot list, replay and resend
//! with their effect at the peer, and every role outcome.

use std::path::PathBuf;
use std::time::Duration;

use interlink_tests::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A host with MLLP listener `in`, drop folder `inbox`, MLLP destination
/// `out` to `peer_port`, the HTTP server, and probe subscribed to ADT only
/// (so an ORM is unrouted). A `RETRY` message stays pending for a minute.
fn host(peer_port: u16) -> (Host, u16, u16) {
    let (mllp, http_port) = (free_port(), free_port());
    let cfg = format!(
        r#"
[journal]
path = "data/interlink.db"

[plugins]
dir = "plugins"
timeout_ms = 500
memory_mb = 32
max_attempts = 3
retry_backoff_ms = 60000

[[listener]]
name = "in"
listen = "127.0.0.1:{mllp}"

[[folder]]
name = "inbox"
dir = "inbox"
pattern = "*.hl7"
after = "move:done"
settle_ms = 50
poll_ms = 200

[[destination]]
name = "out"
kind = "mllp"
host = "127.0.0.1"
port = {peer_port}
ack_timeout_s = 1
connect_timeout_s = 1
retry = {{ initial_backoff_ms = 100, max_backoff_s = 1 }}

[bots.probe]
subscribe = [{{ hl7 = ["ADT^*"] }}]
{}"#,
        http_config(http_port)
    );
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    (host, mllp, http_port)
}

/// Sends `text` to the host's listener with python-hl7; returns the ACK.
fn send(host: &Host, port: u16, name: &str, text: &str) -> String {
    let p: PathBuf = host.path(name);
    std::fs::write(&p, text).unwrap();
    peer_send(Peer::Python, port, &[p]).remove(0)
}

fn get(port: u16, path: &str) -> Value {
    let (status, body) = http_get_json(port, path, READ_TOKEN);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The control ids of a search's events, in order.
fn search(port: u16, query: &str) -> Vec<String> {
    get(port, &format!("/api/v1/events?{query}"))["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["control_id"].as_str().unwrap_or("-").to_string())
        .collect()
}

fn status_of(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> u16 {
    let headers: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[("Content-Type", "application/json")]
    };
    let r = http(port, method, path, token, headers, body.as_bytes());
    r.json(); // every answer is JSON
    r.status
}

#[test]
fn search_detail_bots_and_replay() {
    let peer_port = free_port();
    let (host, mllp, port) = host(peer_port);
    let peer = PeerServer::start(Peer::Python, peer_port, "aa", &host.path("peer.log"));
    let a08 = |c: &str, p: &str| adt_a04(c, p).replace("ADT^A04^ADT_A01", "ADT^A08^ADT_A01");
    let orm = |c: &str, p: &str| adt_a04(c, p).replace("ADT^A04^ADT_A01", "ORM^O01");
    assert_eq!(send(&host, mllp, "1.hl7", &adt_a04("A1", "P1")), "AA A1");
    assert_eq!(send(&host, mllp, "2.hl7", &a08("A2", "P2")), "AA A2");
    assert_eq!(
        send(&host, mllp, "3.hl7", &adt_a04("FAILPHI1", "P3")),
        "AA FAILPHI1"
    );
    assert_eq!(
        send(&host, mllp, "4.hl7", &adt_a04("RETRY1", "P4")),
        "AA RETRY1"
    );
    assert_eq!(send(&host, mllp, "5.hl7", &orm("O1", "P5")), "AA O1");
    host.wait_query("SELECT COUNT(*) FROM runs WHERE attempts > 0", 4, T);
    host.drop_file("6.hl7", &adt_a04("F1", "P6"));
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 3, T);
    assert!(wait_until(T, || peer.received().len() == 3));

    // Roles: any token reads; none is 401.
    for path in [
        "/api/v1/events",
        "/api/v1/events/1",
        "/api/v1/bots",
        "/api/v1/outbox",
    ] {
        assert_eq!(status_of(port, "GET", path, None, ""), 401, "{path}");
        assert_eq!(
            status_of(port, "GET", path, Some(WRITE_TOKEN), ""),
            200,
            "{path}"
        );
    }

    // The search, newest first, by each filter.
    let all = ["F1", "O1", "RETRY1", "FAILPHI1", "A2", "A1"];
    assert_eq!(search(port, ""), all);
    assert_eq!(search(port, "control_id=A2"), ["A2"]);
    assert_eq!(search(port, "patient=P3"), ["FAILPHI1"]);
    assert_eq!(
        search(port, "type=ADT%5EA04"),
        ["F1", "RETRY1", "FAILPHI1", "A1"]
    );
    assert_eq!(
        search(port, "type=ADT%5EA0*"),
        ["F1", "RETRY1", "FAILPHI1", "A2", "A1"]
    );
    assert_eq!(search(port, "type=ORM"), ["O1"]);
    assert_eq!(search(port, "source=inbox"), ["F1"]);
    assert_eq!(search(port, "source=in&type=ADT&patient=P1"), ["A1"]);
    assert_eq!(search(port, "status=done"), ["F1", "A2", "A1"]);
    assert_eq!(search(port, "status=failed"), ["FAILPHI1"]);
    assert_eq!(search(port, "status=received"), ["RETRY1"]);
    assert_eq!(search(port, "status=unrouted"), ["O1"]);
    // A time range, RFC 3339 or ms since the epoch: A2 to O1.
    let events = get(port, "/api/v1/events")["events"].clone();
    let since = events[4]["received_at"].as_str().unwrap().to_string();
    let until: i64 = host.query("SELECT received_at_ms FROM events WHERE control_id = 'O1'");
    let window = search(port, &format!("since={since}&until={until}"));
    assert_eq!(window, ["O1", "RETRY1", "FAILPHI1", "A2"]);
    assert!(search(port, "since=2999-01-01T00:00:00Z").is_empty());

    // The list shows each event's status, patient and runs.
    let first = &events[5];
    assert_eq!(first["type"], "ADT^A04^ADT_A01");
    assert_eq!(first["patient"], "P1");
    assert_eq!(first["source"], "in");
    assert_eq!(first["status"], "done");
    assert_eq!(first["bots"][0]["bot"], "probe");
    assert_eq!(events[1]["status"], "unrouted");
    assert_eq!(events[1]["bots"], serde_json::json!([]));

    // Pagination: pages of 2 follow `next_before` to the end.
    let (mut seen, mut before) = (Vec::new(), String::new());
    loop {
        let page = get(port, &format!("/api/v1/events?limit=2{before}"));
        let ids = page["events"].as_array().unwrap();
        assert!(ids.len() <= 2);
        seen.extend(
            ids.iter()
                .map(|e| e["control_id"].as_str().unwrap().to_string()),
        );
        match page["next_before"].as_i64() {
            Some(b) => before = format!("&before={b}"),
            None => break,
        }
    }
    assert_eq!(seen, all);

    // Bad parameters: 400 naming them.
    for (query, names) in [
        ("status=lost", "status"),
        ("limit=many", "limit"),
        ("limit=501", "limit"),
        ("since=yesterday", "since"),
        ("before=-1", "before"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = http_get_json(port, &format!("/api/v1/events?{query}"), READ_TOKEN);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(names),
            "{query}: {body}"
        );
    }

    // Detail: the text, the ACK sent, the run with its log lines, and the
    // message delivered to the peer.
    let id_of = |c: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["control_id"] == c)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let a1 = get(port, &format!("/api/v1/events/{}", id_of("A1")));
    assert_eq!(a1["text"], adt_a04("A1", "P1"));
    assert!(a1.get("raw_base64").is_none());
    assert!(a1["ack"].as_str().unwrap().contains("MSA|AA|A1"), "{a1}");
    let run = &a1["runs"][0];
    assert_eq!(
        (&run["bot"], &run["status"], &run["attempts"]),
        (&"probe".into(), &"done".into(), &1.into())
    );
    assert_eq!(run["bot_version"], "1.0.0");
    assert!(run["duration_us"].as_i64().unwrap() > 0);
    assert!(
        run["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "probe v1 handled A1"),
        "{run}"
    );
    let out = &a1["outbox"][0];
    assert_eq!(
        (&out["destination"], &out["status"]),
        (&"out".into(), &"sent".into())
    );
    assert!(out["sent_at"].is_string());
    let failed = get(port, &format!("/api/v1/events/{}", id_of("FAILPHI1")));
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["runs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot register patient P3")
    );
    assert_eq!(failed["outbox"], serde_json::json!([]));
    for (path, status) in [("/api/v1/events/999999", 404), ("/api/v1/events/abc", 400)] {
        let (got, body) = http_get_json(port, path, READ_TOKEN);
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string());
    }

    // Bots: version, file, subscriptions, runs and the last error. (The
    // workers count a batch just after its commit.)
    let ok_runs = || get(port, "/api/v1/bots")["bots"][0]["runs"]["ok"].as_i64();
    assert!(wait_until(T, || ok_runs() == Some(3)));
    let bots = get(port, "/api/v1/bots");
    let probe = &bots["bots"][0];
    assert_eq!(probe["name"], "probe");
    assert_eq!(probe["version"], "1.0.0");
    assert!(probe["file"].as_str().unwrap().ends_with("probe.wasm"));
    assert_eq!(probe["enabled"], true);
    assert_eq!(probe["subscriptions"], serde_json::json!(["hl7 ADT^*"]));
    assert_eq!(probe["runs"]["ok"], 3);
    assert_eq!(probe["runs"]["failed"], 1);
    assert_eq!(probe["runs"]["failed_in_journal"], 1);
    assert_eq!(probe["last_error"]["event_id"], id_of("FAILPHI1"));
    assert!(probe["last_error"]["at"].is_string());

    // Replay: write only; unknown event or bot 404; malformed body 400.
    let replay = |id: i64| format!("/api/v1/events/{id}/replay");
    let a1_id = id_of("A1");
    assert_eq!(status_of(port, "POST", &replay(a1_id), None, ""), 401);
    assert_eq!(
        status_of(port, "POST", &replay(a1_id), Some(READ_TOKEN), ""),
        403
    );
    assert_eq!(
        status_of(port, "POST", &replay(999_999), Some(WRITE_TOKEN), ""),
        404
    );
    assert_eq!(
        status_of(
            port,
            "POST",
            &replay(a1_id),
            Some(WRITE_TOKEN),
            r#"{"bot":"nobody"}"#
        ),
        404
    );
    let r = http(
        port,
        "POST",
        &replay(a1_id),
        Some(WRITE_TOKEN),
        &[("Content-Type", "application/json")],
        b"{\"bot\":",
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
    // Without a bot: the failed run goes again (and fails again).
    let (status, body) = http_post_json(port, &replay(id_of("FAILPHI1")), WRITE_TOKEN, "");
    assert_eq!((status, &body), (200, &serde_json::json!({"replayed": 1})));
    host.wait_log("audit: ops replay event", T);
    // With a bot: a done event runs again, and the peer gets A1 once more.
    let (status, body) = http_post_json(port, &replay(a1_id), WRITE_TOKEN, r#"{"bot":"probe"}"#);
    assert_eq!((status, &body), (200, &serde_json::json!({"replayed": 1})));
    assert!(
        wait_until(T, || peer.received().len() == 4),
        "{:?}",
        peer.received()
    );
    assert_eq!(peer.received()[3].0, "A1");
    let a1 = get(port, &format!("/api/v1/events/{a1_id}"));
    assert_eq!(a1["outbox"].as_array().unwrap().len(), 2);
    assert!(
        host.log()
            .contains(&format!("audit: ops replay event {a1_id} bot probe"))
    );
    host.wait_query(
        &format!(
            "SELECT COUNT(*) FROM runs WHERE status = 'failed' AND event_id = {}",
            id_of("FAILPHI1")
        ),
        1,
        T,
    );
}

#[test]
fn outbox_listing_and_resend_to_the_peer() {
    let peer_port = free_port();
    let (host, mllp, port) = host(peer_port);
    let peer = PeerServer::start(Peer::Python, peer_port, "ar", &host.path("peer-ar.log"));
    for c in ["D1", "D2", "D3"] {
        assert_eq!(
            send(&host, mllp, &format!("{c}.hl7"), &adt_a04(c, "P1")),
            format!("AA {c}")
        );
    }
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'dead'", 3, T);
    drop(peer);

    let list = |q: &str| -> Vec<(i64, String)> {
        get(port, &format!("/api/v1/outbox?{q}"))["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_i64().unwrap(),
                    m["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let dead = list("state=dead");
    assert_eq!(dead.len(), 3);
    assert!(
        dead[0].0 > dead[1].0 && dead[1].0 > dead[2].0,
        "newest first: {dead:?}"
    );
    assert_eq!(list("destination=out").len(), 3);
    assert!(list("destination=elsewhere").is_empty());
    assert!(list("state=pending").is_empty());
    // Empty page parameters count as absent, as for the search.
    assert_eq!(list("limit=&before=&state=dead").len(), 3);
    let first = &get(port, "/api/v1/outbox?state=dead")["messages"][2];
    assert_eq!(first["last_error"], "AR: peer says AR");
    assert_eq!(first["destination"], "out");
    // Pages of 2.
    let page = get(port, "/api/v1/outbox?limit=2");
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    let next = page["next_before"].as_i64().unwrap();
    let rest = get(port, &format!("/api/v1/outbox?limit=2&before={next}"));
    assert_eq!(rest["messages"][0]["id"].as_i64(), Some(dead[2].0));
    assert!(rest["next_before"].is_null());
    let (status, body) = http_get_json(port, "/api/v1/outbox?state=gone", READ_TOKEN);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("state"));

    // Resend the oldest dead letter to a peer that now accepts it.
    let id = dead[2].0;
    let resend = |id: i64| format!("/api/v1/outbox/{id}/resend");
    assert_eq!(status_of(port, "POST", &resend(id), None, ""), 401);
    assert_eq!(
        status_of(port, "POST", &resend(id), Some(READ_TOKEN), ""),
        403
    );
    assert_eq!(
        status_of(port, "POST", &resend(999_999), Some(WRITE_TOKEN), ""),
        404
    );
    let peer = PeerServer::start(Peer::Python, peer_port, "aa", &host.path("peer-aa.log"));
    let (status, body) = http_post_json(port, &resend(id), WRITE_TOKEN, "");
    assert_eq!((status, &body), (200, &serde_json::json!({"resent": id})));
    assert!(wait_until(T, || peer.received().len() == 1));
    assert_eq!(peer.received()[0].0, "D1");
    host.wait_query(
        &format!("SELECT COUNT(*) FROM outbox WHERE id = {id} AND status = 'sent'"),
        1,
        T,
    );
    assert_eq!(list("state=sent"), [(id, "sent".to_string())]);
    assert!(
        host.log()
            .contains(&format!("audit: ops resend outbox {id}"))
    );
    // It is no longer a dead letter: 409.
    let (status, body) = http_post_json(port, &resend(id), WRITE_TOKEN, "");
    assert_eq!(status, 409, "{body}");
    // The event's detail shows the delivery.
    let event = dead_event(&host, id);
    let detail = get(port, &format!("/api/v1/events/{event}"));
    assert_eq!(detail["outbox"][0]["status"], "sent");
    assert_eq!(detail["outbox"][0]["attempts"], 2);
}

fn dead_event(host: &Host, outbox_id: i64) -> i64 {
    host.query(&format!(
        "SELECT event_id FROM outbox WHERE id = {outbox_id}"
    ))
}

/// `GET /api/v1/cluster` and `interlink cluster`: on SQLite, one host and
/// no cluster; on PostgreSQL, this host, live, leading, with its bot and
/// destination.
#[test]
fn the_cluster_shows_this_host_and_what_it_runs() {
    let (host, _, http_port) = host(free_port());
    match journal_backend() {
        Backend::Sqlite => {
            let cluster = get(http_port, "/api/v1/cluster");
            assert_eq!(cluster["backend"], "sqlite");
            assert_eq!(cluster["hosts"], serde_json::json!([]));
            let cli = host.cli(&["cluster"]);
            assert!(cli.status.success(), "{cli:?}");
            let text = String::from_utf8_lossy(&cli.stdout);
            assert!(text.contains("SQLite: one host, no cluster"), "{text}");
        }
        Backend::Postgres => {
            let mut cluster = Value::Null;
            let settled = wait_until(T, || {
                cluster = get(http_port, "/api/v1/cluster");
                cluster["hosts"][0]["destinations"] == serde_json::json!(["out"])
                    && cluster["hosts"][0]["bots"] == serde_json::json!(["probe"])
            });
            assert!(settled, "{cluster}");
            assert_eq!(cluster["backend"], "postgres");
            assert_eq!(
                cluster["hosts"].as_array().map(Vec::len),
                Some(1),
                "{cluster}"
            );
            let me = &cluster["hosts"][0];
            let pid = host.pid().expect("running");
            assert_eq!(me["pid"], pid);
            assert_eq!(me["live"], true);
            assert_eq!(me["leader"], true);
            // The same, as the CLI's table row: id, live, leader, bots,
            // destinations.
            let cli = host.cli(&["cluster"]);
            assert!(cli.status.success(), "{cli:?}");
            let text = String::from_utf8_lossy(&cli.stdout);
            let row: Vec<&str> = text
                .lines()
                .find(|l| l.contains(&format!(":{pid} ")))
                .unwrap_or_else(|| panic!("no row for pid {pid}: {text}"))
                .split_whitespace()
                .collect();
            assert_eq!(
                (row[1], row[2], row[4], row[5]),
                ("yes", "yes", "probe", "out"),
                "{text}"
            );
        }
    }
}
