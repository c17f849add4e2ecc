//! Operations over HTTP against the real binary: `/metrics` after known
//! traffic (exact counts), `/health` and `/ready`, the sources and
//! destinations of the admin API, pausing a destination across a restart,
//! and a flood of idle and half-sent HTTP connections while MLLP keeps
//! being served.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use interlink_tests::*;

const T: Duration = Duration::from_secs(20);

/// A host with listener `adt`, drop folder `inbox`, folder destination
/// `out`, the probe bot (which forwards to `out`) and the HTTP server.
/// Returns it with the MLLP and HTTP ports.
fn start_host() -> (Host, u16, u16) {
    start_host_with("")
}

/// [`start_host`] with `http_keys` added to `[http]`.
fn start_host_with(http_keys: &str) -> (Host, u16, u16) {
    let (mllp, http_port) = (free_port(), free_port());
    let http = http_config(http_port).replace("[http]\n", &format!("[http]\n{http_keys}\n"));
    let cfg = config(&format!(
        "[[listener]]\nname = \"adt\"\nlisten = \"127.0.0.1:{mllp}\"\n{http}"
    ));
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    (host, mllp, http_port)
}

/// Sends one MLLP frame on `s` and returns the ACK's text.
fn exchange(s: &mut TcpStream, message: &[u8]) -> String {
    s.write_all(&[&[0x0b], message, &[0x1c, 0x0d]].concat())
        .unwrap();
    let mut ack = Vec::new();
    let mut byte = [0u8];
    while !ack.ends_with(&[0x1c, 0x0d]) {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "connection closed before the ACK"
        );
        ack.push(byte[0]);
    }
    String::from_utf8_lossy(&ack).into_owned()
}

fn mllp_connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s
}

/// Writes each message to a file for the python-hl7 client.
fn message_files(host: &Host, messages: &[(&str, &str)]) -> Vec<PathBuf> {
    messages
        .iter()
        .map(|(id, mrn)| {
            let p = host.path(&format!("{id}.hl7"));
            std::fs::write(&p, adt_a04(id, mrn)).unwrap();
            p
        })
        .collect()
}

/// The samples of a Prometheus text page, keyed `name{labels sorted}`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            let key = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    labels.sort();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => series.to_string(),
            };
            (key, value.parse().expect("sample value"))
        })
        .collect()
}

fn scrape(port: u16) -> BTreeMap<String, f64> {
    let r = http(port, "GET", "/metrics", Some(READ_TOKEN), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    samples(&r.text())
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let (host, mllp, port) = start_host();

    // No token: only /health answers.
    let r = http(port, "GET", "/health", None, &[], b"");
    assert_eq!(r.status, 200);
    for path in [
        "/metrics",
        "/ready",
        "/api/v1/sources",
        "/api/v1/destinations",
    ] {
        let r = http(port, "GET", path, None, &[], b"");
        assert_eq!(r.status, 401, "{path}");
        assert!(r.json()["error"].is_string());
    }
    let (status, ready) = http_get_json(port, "/ready", READ_TOKEN);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["listeners_unbound"], serde_json::json!([]));

    // 3 messages from python-hl7, one the probe bot fails on, one that is
    // not HL7 (AR), and one file in the drop folder.
    let files = message_files(&host, &[("M1", "P1"), ("M2", "P2"), ("M3", "P3")]);
    let acks = peer_send(Peer::Python, mllp, &files);
    assert_eq!(acks, ["AA M1", "AA M2", "AA M3"]);
    let mut s = mllp_connect(mllp);
    assert!(exchange(&mut s, adt_a04("FAILPHI1", "P4").as_bytes()).contains("MSA|AA|FAILPHI1"));
    assert!(exchange(&mut s, b"this is not HL7").contains("MSA|AR"));
    drop(s);
    host.drop_file("f1.hl7", &adt_a04("F1", "P5"));
    host.wait_outputs(4, T);
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'failed'", 1, T);

    let want: &[(&str, f64)] = &[
        (r#"interlink_messages_received_total{source="adt"}"#, 4.0),
        (r#"interlink_messages_received_total{source="inbox"}"#, 1.0),
        (r#"interlink_acks_sent_total{code="AA",source="adt"}"#, 4.0),
        (r#"interlink_acks_sent_total{code="AR",source="adt"}"#, 1.0),
        (
            r#"interlink_bot_runs_total{bot="probe",outcome="done"}"#,
            4.0,
        ),
        (
            r#"interlink_bot_runs_total{bot="probe",outcome="failed"}"#,
            1.0,
        ),
        (
            r#"interlink_bot_run_duration_seconds_count{bot="probe"}"#,
            5.0,
        ),
        (
            r#"interlink_deliveries_total{destination="out",outcome="sent"}"#,
            4.0,
        ),
        (r#"interlink_outbox_depth{destination="out"}"#, 0.0),
        (
            r#"interlink_outbox_oldest_age_seconds{destination="out"}"#,
            0.0,
        ),
    ];
    // The counters follow the commits the journal shows: wait for the last.
    let mut m = scrape(port);
    wait_until(T, || {
        m = scrape(port);
        want.iter().all(|(k, v)| m.get(*k) == Some(v))
    });
    for (key, value) in want {
        assert_eq!(m.get(*key), Some(value), "{key} in\n{m:#?}");
    }
    assert!(m[r#"interlink_folder_scans_total{outcome="ok",source="inbox"}"#] >= 1.0);
    assert!(m["interlink_journal_size_bytes"] > 0.0);
    assert!(m["interlink_journal_commit_duration_seconds_count"] >= 1.0);
    assert!(m.contains_key(r#"interlink_bot_run_duration_seconds_bucket{bot="probe",le="0.001"}"#));
    // No label holds message content.
    assert!(
        !m.keys().any(|k| k.contains("P1") || k.contains("M1")),
        "{m:#?}"
    );

    let (status, sources) = http_get_json(port, "/api/v1/sources", READ_TOKEN);
    assert_eq!(status, 200);
    let adt = &sources["listeners"][0];
    assert_eq!(adt["name"], "adt");
    assert_eq!(adt["bound"], true);
    assert_eq!(
        (adt["messages"].as_u64(), adt["nacks_ar"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(adt["nacks_ae"], 0);
    assert!(adt["last_message_ms"].as_i64().is_some());
    let inbox = &sources["folders"][0];
    assert_eq!(
        (inbox["name"].as_str(), inbox["files_taken"].as_u64()),
        (Some("inbox"), Some(1))
    );
    assert!(inbox["last_poll_ms"].as_i64().is_some());
    assert_eq!(inbox["last_error"], serde_json::Value::Null);

    let (status, dests) = http_get_json(port, "/api/v1/destinations", READ_TOKEN);
    assert_eq!(status, 200);
    let out = &dests["destinations"][0];
    assert_eq!(out["name"], "out");
    assert_eq!(out["kind"], "folder");
    assert_eq!(
        (out["sent"].as_u64(), out["failed"].as_u64()),
        (Some(4), Some(0))
    );
    assert_eq!(
        (out["queue_depth"].as_u64(), out["state"].as_str()),
        (Some(0), Some("idle"))
    );
}

#[test]
fn a_paused_destination_queues_until_resumed_across_a_restart() {
    let (mut host, mllp, port) = start_host();
    let pause = "/api/v1/destinations/out/pause";

    let (status, body) = http_post_json(port, pause, READ_TOKEN, "");
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        http_post_json(port, "/api/v1/destinations/nowhere/pause", WRITE_TOKEN, "");
    assert_eq!(status, 404, "{body}");
    let r = http(port, "POST", pause, None, &[], b"");
    assert_eq!(r.status, 401);
    let (status, body) = http_post_json(port, pause, WRITE_TOKEN, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["paused"].as_bool(), body["state"].as_str()),
        (Some(true), Some("paused"))
    );
    host.wait_log("audit: ops pause destination out", T);

    let mut s = mllp_connect(mllp);
    for id in ["Q1", "Q2"] {
        assert!(exchange(&mut s, adt_a04(id, "P1").as_bytes()).contains(&format!("MSA|AA|{id}")));
    }
    // The bot has committed both messages to the outbox, and delivery was
    // woken for them: they stay queued.
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'", 2, T);
    let (_, dests) = http_get_json(port, "/api/v1/destinations", READ_TOKEN);
    assert_eq!(dests["destinations"][0]["queue_depth"], 2);
    assert!(
        dests["destinations"][0]["oldest_pending_age_ms"]
            .as_i64()
            .is_some()
    );
    assert!(host.outputs().is_empty(), "{:?}", host.outputs());

    host.kill();
    host.start();
    host.wait_log("paused: messages queue until it is resumed", T);
    let (_, dests) = http_get_json(port, "/api/v1/destinations", READ_TOKEN);
    assert_eq!(dests["destinations"][0]["paused"], true);
    // A third message after the restart: queued too, nothing delivered.
    let mut s = mllp_connect(mllp);
    assert!(exchange(&mut s, adt_a04("Q3", "P1").as_bytes()).contains("MSA|AA|Q3"));
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'", 3, T);
    assert!(host.outputs().is_empty(), "{:?}", host.outputs());

    let (status, body) = http_post_json(port, "/api/v1/destinations/out/resume", WRITE_TOKEN, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], false);
    host.wait_log("audit: ops resume destination out", T);
    let out = host.wait_outputs(3, T);
    assert!(out.iter().all(|(_, text)| text.contains("ADT^A04")));
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 3, T);
}

/// The soft limit on open files of this process (the host inherits it).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// Whether `GET /health` gets 200 (false if the connection is refused or
/// closed without an answer).
fn health_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(T)).unwrap();
    let mut answer = Vec::new();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .and_then(|()| s.read_to_end(&mut answer))
        .is_ok_and(|_| answer.starts_with(b"HTTP/1.1 200"))
}

#[test]
fn a_flood_of_http_connections_does_not_stop_mllp() {
    // Each connection is a descriptor here and one in the host.
    let limit = open_files_limit();
    let flood = 1000.min(limit.saturating_sub(200) / 2);
    if flood < 1000 {
        eprintln!("open files limited to {limit}: holding {flood} connections instead of 1000");
    }
    // Room for the flood and the test's own requests; more are refused.
    let max = flood + 10;
    let (host, mllp, port) = start_host_with(&format!("max_connections = {max}"));
    let held: Vec<TcpStream> = (0..flood)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            // Half send the start of a request and stop; the rest say nothing.
            if i % 2 == 0 {
                s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
            }
            s
        })
        .collect();

    let mut s = mllp_connect(mllp);
    for i in 0..20 {
        let id = format!("FL{i}");
        let ack = exchange(&mut s, adt_a04(&id, "P1").as_bytes());
        assert!(ack.contains(&format!("MSA|AA|{id}")), "{ack}");
    }
    // Still answering, with the flood held open.
    let r = http(port, "GET", "/health", None, &[], b"");
    assert_eq!(r.status, 200);
    let (_, sources) = http_get_json(port, "/api/v1/sources", READ_TOKEN);
    assert_eq!(sources["listeners"][0]["messages"], 20);

    // Past max_connections: accepted and closed at once, and logged.
    let over: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    host.wait_log("refused", T);
    assert!(
        host.log()
            .contains(&format!("max_connections = {max} are open"))
    );
    drop((held, over));
    assert!(wait_until(T, || health_answers(port)), "{}", host.log());
    host.wait_outputs(20, T);
}

#[test]
fn sources_show_sftp_polls_and_cron_schedules() {
    let server = SshServer::start();
    let remote = server.remote("in/a.hl7");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    std::fs::write(&remote, adt_a04("S1", "P1")).unwrap();
    let port = free_port();
    let source = server.source_table("lab", "in", "user_key", "known_hosts");
    let cfg = config(&format!(
        "{}\n{source}after = \"delete\"\n\n\
         [bots.probe]\nsubscribe_also = [{{ cron = \"0 0 3 * * *\" }}]\n",
        http_config(port)
    ));
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();

    let lab = |port| {
        let (_, sources) = http_get_json(port, "/api/v1/sources", READ_TOKEN);
        sources["sftp"][0].clone()
    };
    assert!(
        wait_until(T, || lab(port)["files_taken"] == 1),
        "{}",
        lab(port)
    );
    let status = lab(port);
    assert_eq!(
        (status["name"].as_str(), status["port"].as_u64()),
        (Some("lab"), Some(u64::from(server.port)))
    );
    assert_eq!(status["last_error"], serde_json::Value::Null);
    assert!(status["last_poll_ms"].as_i64().is_some());

    let (_, sources) = http_get_json(port, "/api/v1/sources", READ_TOKEN);
    let cron = &sources["cron"][0];
    assert_eq!(cron["schedule"], "0 0 3 * * *");
    let in_a_day =
        cron["next_firing_ms"].as_i64().unwrap() - status["last_poll_ms"].as_i64().unwrap();
    assert!((0..=86_400_000).contains(&in_a_day), "{cron}");

    let m = scrape(port);
    assert_eq!(m[r#"interlink_messages_received_total{source="lab"}"#], 1.0);
    assert!(m[r#"interlink_sftp_polls_total{outcome="ok",source="lab"}"#] >= 2.0);

    // The directory goes away: the failing poll shows, with its reason.
    std::fs::remove_dir_all(server.remote("in")).unwrap();
    assert!(
        wait_until(T, || lab(port)["last_error"].is_string()),
        "{}\n{}",
        lab(port),
        host.log()
    );
    let m = scrape(port);
    assert!(m[r#"interlink_sftp_polls_total{outcome="failed",source="lab"}"#] >= 1.0);
}
