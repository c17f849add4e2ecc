//! Shadow runs (`interlink shadow`, `POST /api/v1/bots/{name}/shadow`): a
//! candidate version of a bot replayed on the journal of a real host that
//! ran the live version (`visit-stamp`, built as v1, v2 and a panicking
//! v1), with what each found checked event by event and path by path.
//!
//! visit-stamp stamps each message with `now-ms` in ZVS-2. The live bot
//! read the wall clock when it ran, a few ms after the event arrived; the
//! candidate reads the event's arrival time. So ZVS-2 always differs (the
//! first test checks it holds exactly the arrival time) and the other
//! comparisons ignore it.

use std::collections::BTreeSet;
use std::time::Duration;

use interlink_tests::*;
use serde_json::Value;

const BOT: &str = "visit-stamp";
const WAIT: Duration = Duration::from_secs(60);
/// The `now-ms` stamp, ignored where the clock is not what is compared.
const STAMP: &str = "ZVS-2";

/// Message `i`: ADT^A04, ADT^A08 or ORU^R01 in turn, for patient
/// `P<i % 20>` named `DOE^John<i>`, control id `MSG<i>` (5 digits).
fn message(i: usize) -> String {
    let kind = ["ADT^A04^ADT_A01", "ADT^A08^ADT_A01", "ORU^R01^ORU_R01"][i % 3];
    format!(
        "MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||{kind}|MSG{i:05}|P|2.5.1\r\
         PID|1||P{}^^^CLINIC^MR||DOE^John{i}||19800101|F\r",
        i % 20
    )
}

/// Drops messages `range` as one file and waits until the bot has run on
/// every event so far (`total`).
fn send(host: &Host, name: &str, range: std::ops::Range<usize>, total: i64) {
    let text: String = range.map(message).collect();
    host.drop_file(name, &text);
    host.wait_query(
        "SELECT COUNT(*) FROM runs WHERE status IN ('done', 'failed')",
        total,
        WAIT,
    );
}

/// `interlink shadow` with `args`; its exit code and JSON report.
fn shadow(host: &Host, candidate: &str, args: &[&str]) -> (i32, Value) {
    let wasm = bot_wasm(candidate);
    let mut all = vec!["shadow", wasm.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = host.cli(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn summary(report: &Value) -> [u64; 5] {
    let s = &report["summary"];
    [
        "compared",
        "same",
        "differing",
        "new_failures",
        "fixed_failures",
    ]
    .map(|k| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("no {k} in {report}"))
    })
}

fn event_ids(report: &Value) -> BTreeSet<i64> {
    report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_i64().unwrap())
        .collect()
}

fn ids_where(host: &Host, cond: &str) -> BTreeSet<i64> {
    host.query_col(&format!("SELECT id FROM events WHERE {cond}"))
        .into_iter()
        .collect()
}

/// What every table a run could write holds (the state tables value by
/// value, the others row by row; a row's values joined by spaces, a NULL
/// empty, a blob in hex), and the delivered files.
fn footprint(host: &Host) -> (Vec<String>, Vec<(String, String)>) {
    let tables = [
        "SELECT id, kind, received_at_ms FROM events ORDER BY id",
        "SELECT event_id, bot, status, attempts FROM runs ORDER BY event_id, bot",
        "SELECT id, status, attempts, sent_ms FROM outbox ORDER BY id",
        "SELECT bot, key, value FROM kv ORDER BY bot, key",
        "SELECT bot, name, value FROM sequences ORDER BY bot, name",
        "SELECT id, last_event, key FROM state_undo ORDER BY id",
    ];
    let contents = tables
        .iter()
        .map(|sql| {
            host.query_rows(sql)
                .iter()
                .map(|row| {
                    row.iter()
                        .map(DbValue::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    (contents, host.outputs())
}

/// The paths of the fields that differ in the first message of `d`.
fn paths(d: &Value) -> Vec<&str> {
    d["messages"][0]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {d}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

/// The HL7 messages of the first test: 300 of three types, then 5 files
/// that are not HL7; all 305 handled and delivered.
fn journal_of_mixed_events(host: &Host) {
    send(host, "batch.hl7", 0..300, 300);
    for n in 0..5 {
        host.drop_file(&format!("note{n}.hl7"), &format!("not HL7 {n}\n"));
    }
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 305, WAIT);
    host.wait_outputs(305, WAIT);
    // Marked sent too, so the journal stands still from here.
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE status = 'sent'",
        305,
        WAIT,
    );
}

#[test]
fn a_candidate_is_compared_event_by_event_and_nothing_is_written_or_sent() {
    let port = free_port();
    let mut host = Host::new(&config(&http_config(port)));
    host.install_bot("visit_stamp_v1", "visit_stamp.wasm");
    host.start();
    journal_of_mixed_events(&host);
    let before = footprint(&host);

    // v1 against itself: only the clock stamp differs, and the candidate's
    // clock read each event's arrival time. The visit counts (KV) and the
    // file sequence come out the same.
    let (code, report) = shadow(&host, "visit_stamp_v1", &["--details", "1000"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(summary(&report), [305, 5, 300, 0, 0]);
    for d in report["differences"].as_array().unwrap() {
        assert_eq!(paths(d), [STAMP], "{d}");
        let field = &d["messages"][0]["fields"][0];
        let received: i64 = host.query(&format!(
            "SELECT received_at_ms FROM events WHERE id = {}",
            d["event_id"].as_i64().unwrap()
        ));
        assert_eq!(field["new"], received.to_string(), "{d}");
        let live: i64 = field["old"].as_str().unwrap().parse().unwrap();
        assert!(live >= received, "{d}");
    }
    let (code, report) = shadow(
        &host,
        "visit_stamp_v1",
        &["--since", "1h", "--ignore", STAMP],
    );
    assert_eq!(
        (code, summary(&report)),
        (0, [305, 305, 0, 0, 0]),
        "{report}"
    );

    // v2 changes PID-5.2 of ADT^A08 only: exactly those events, that path.
    let args = ["--ignore", STAMP, "--details", "1000"];
    let (code, report) = shadow(&host, "visit_stamp_v2", &args);
    assert_eq!(code, 1, "{report}");
    assert_eq!(summary(&report), [305, 205, 100, 0, 0]);
    let a08 = ids_where(&host, "message_type LIKE 'ADT^A08%'");
    assert_eq!(a08.len(), 100);
    assert_eq!(event_ids(&report), a08);
    for d in report["differences"].as_array().unwrap() {
        assert_eq!(d["verdict"], "different", "{d}");
        let i: usize = d["control_id"].as_str().unwrap()[3..].parse().unwrap();
        let messages = d["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{d}");
        assert_eq!(messages[0]["destination"], "out");
        assert_eq!(messages[0]["change"], "different");
        let want = serde_json::json!([
            {"path": "PID-5.2", "old": format!("John{i}"), "new": format!("JOHN{i}")}
        ]);
        assert_eq!(messages[0]["fields"], want, "{d}");
    }
    // Ignoring that path too leaves nothing; a filter narrows the events.
    let ignore = format!("{STAMP},PID-5.2");
    let (code, report) = shadow(&host, "visit_stamp_v2", &["--ignore", &ignore]);
    assert_eq!(
        (code, summary(&report)),
        (0, [305, 305, 0, 0, 0]),
        "{report}"
    );
    let args = [
        "--type", "ADT^A08", "--limit", "10", "--source", "inbox", "--ignore", STAMP,
    ];
    let (code, report) = shadow(&host, "visit_stamp_v2", &args);
    assert_eq!((code, summary(&report)), (1, [10, 0, 10, 0, 0]), "{report}");
    // The events not compared still ran, so the visit counts kept in step.
    for d in report["differences"].as_array().unwrap() {
        assert_eq!(paths(d), ["PID-5.2"], "{d}");
    }
    let args = ["--source", "elsewhere", "--ignore", STAMP];
    let (code, report) = shadow(&host, "visit_stamp_v2", &args);
    assert_eq!((code, summary(&report)), (0, [0, 0, 0, 0, 0]), "{report}");
    let args = ["--type", "ADT^A0*", "--ignore", STAMP];
    let (_, report) = shadow(&host, "visit_stamp_v2", &args);
    assert_eq!(summary(&report), [200, 100, 100, 0, 0], "{report}");

    // A candidate that panics on MSG00077: one new failure, and the visit
    // it did not count shows in the later messages of that patient (P17).
    let args = ["--ignore", STAMP, "--details", "100"];
    let (code, report) = shadow(&host, "visit_stamp_panic", &args);
    assert_eq!(code, 1, "{report}");
    let later_p17: BTreeSet<i64> = (97..300)
        .step_by(20)
        .map(|i| format!("MSG{i:05}"))
        .flat_map(|c| ids_where(&host, &format!("control_id = '{c}'")))
        .collect();
    assert_eq!(later_p17.len(), 11);
    assert_eq!(summary(&report), [305, 293, 11, 1, 0]);
    let failed = &report["differences"][0];
    assert_eq!(failed["control_id"], "MSG00077");
    assert_eq!(failed["verdict"], "new_failure");
    let why = failed["candidate_error"].as_str().unwrap();
    assert!(why.contains("panicked on purpose on MSG00077"), "{why}");
    let differing: BTreeSet<i64> = report["differences"].as_array().unwrap()[1..]
        .iter()
        .map(|d| {
            assert_eq!(paths(d), ["ZVS-1"], "{d}");
            d["event_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(differing, later_p17);

    // The text report names the counts and the first difference.
    let v2 = bot_wasm("visit_stamp_v2");
    let out = host.cli(&["shadow", v2.to_str().unwrap(), "--ignore", STAMP]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "305 events compared: 205 same, 100 differing, 0 new failures, 0 fixed failures ("
        ),
        "{text}"
    );
    assert!(
        text.contains("PID-5.2      \"John1\" -> \"JOHN1\""),
        "{text}"
    );

    // The HTTP API gives the same report.
    let wasm = std::fs::read(&v2).unwrap();
    let path = format!("/api/v1/bots/{BOT}/shadow?since=1h&ignore={STAMP}&details=0");
    let r = http(port, "POST", &path, Some(WRITE_TOKEN), &[], &wasm);
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(summary(&report), [305, 205, 100, 0, 0]);
    assert_eq!(report["more_differences"], 100);

    // Nothing was journaled or delivered by any of it.
    assert_eq!(footprint(&host), before);
}

#[test]
fn kv_state_replays_as_it_was_at_the_window_start() {
    let mut host = Host::new(&config(""));
    host.install_bot("visit_stamp_v1", "visit_stamp.wasm");
    host.start();
    // Patients P0-P19 get one visit each before the boundary, one after.
    send(&host, "first.hl7", 0..20, 20);
    let boundary: i64 = host.query("SELECT MAX(received_at_ms) + 1 FROM events");
    send(&host, "second.hl7", 20..40, 40);
    let after: i64 = host.query(&format!(
        "SELECT COUNT(*) FROM events WHERE received_at_ms >= {boundary}"
    ));
    assert_eq!(after, 20);
    // Replaying the second half needs the counts as they were at the
    // boundary (1 each), not as they are now (2 each).
    let from = boundary.to_string();
    let args = ["--from", &from, "--ignore", STAMP];
    let (code, report) = shadow(&host, "visit_stamp_v1", &args);
    assert_eq!((code, summary(&report)), (0, [20, 20, 0, 0, 0]), "{report}");
    // And from the very start, with the state as it was before anything;
    // up to the boundary only the first half.
    let args = ["--from", "1970-01-01T00:00:00Z", "--ignore", STAMP];
    let (code, report) = shadow(&host, "visit_stamp_v1", &args);
    assert_eq!((code, summary(&report)), (0, [40, 40, 0, 0, 0]), "{report}");
    let args = ["--from", "0", "--to", &from, "--ignore", STAMP];
    let (code, report) = shadow(&host, "visit_stamp_v1", &args);
    assert_eq!((code, summary(&report)), (0, [20, 20, 0, 0, 0]), "{report}");
}

#[test]
fn a_run_that_cannot_be_made_exits_2_naming_why() {
    let mut host = Host::new(&config(""));
    host.install_bot("visit_stamp_v1", "visit_stamp.wasm");
    host.start();
    send(&host, "first.hl7", 0..3, 3);
    let v1 = bot_wasm("visit_stamp_v1");
    let v1 = v1.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["shadow", "missing.wasm"], "missing.wasm"),
        (&["shadow", v1, "--since", "yesterday"], "since:"),
        (&["shadow", v1, "--ignore", "pid"], "ignore:"),
        (&["shadow", v1, "--from", "2026-13-01"], "from:"),
        (&["shadow", "interlink.toml"], "invalid bot"),
    ];
    for (args, why) in cases {
        let out = host.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    // A bot that never ran compares nothing: no difference.
    let (code, report) = shadow(&host, "visit_stamp_v1", &["--bot", "other"]);
    assert_eq!((code, summary(&report)), (0, [0, 0, 0, 0, 0]), "{report}");
}

#[test]
fn the_api_runs_it_for_writers_and_answers_json_errors() {
    let port = free_port();
    let mut host = Host::new(&config(&http_config(port)));
    host.install_bot("visit_stamp_v1", "visit_stamp.wasm");
    host.start();
    send(&host, "first.hl7", 0..6, 6);
    let v2 = std::fs::read(bot_wasm("visit_stamp_v2")).unwrap();
    let path = format!("/api/v1/bots/{BOT}/shadow?ignore={STAMP}");
    let post = |path: &str, token: Option<&str>, body: &[u8]| {
        let r = http(port, "POST", path, token, &[], body);
        (r.status, r.json())
    };

    // A writer gets the report: MSG00001 and MSG00004 are the ADT^A08s.
    let (status, report) = post(&path, Some(WRITE_TOKEN), &v2);
    assert_eq!(status, 200, "{report}");
    assert_eq!(summary(&report), [6, 4, 2, 0, 0]);
    let ids: Vec<&str> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["control_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["MSG00001", "MSG00004"]);
    assert_eq!(report["candidate"]["version"], "2.0.0");
    host.wait_log(&format!("shadow bot {BOT}"), WAIT);

    // Everything else is a JSON error with the status that says why.
    let (writer, wasm) = (Some(WRITE_TOKEN), &v2[..]);
    let bot_path = format!("/api/v1/bots/{BOT}/shadow");
    let cases = [
        (path.clone(), None, wasm, 401, "authentication required"),
        (
            path.clone(),
            Some(READ_TOKEN),
            wasm,
            403,
            "has the read role; this needs write",
        ),
        (
            "/api/v1/bots/nobody/shadow".into(),
            writer,
            wasm,
            404,
            "nobody",
        ),
        (path.clone(), writer, b"not wasm", 400, "body:"),
        (
            format!("{path}&since=yesterday"),
            writer,
            wasm,
            400,
            "since:",
        ),
        (format!("{path}&limit=ten"), writer, wasm, 400, "limit:"),
        (
            format!("{bot_path}?ignore=pid"),
            writer,
            wasm,
            400,
            "ignore:",
        ),
        (format!("{path}&colour=red"), writer, wasm, 400, "colour"),
    ];
    for (path, token, body, want, why) in cases {
        let (status, answer) = post(&path, token, body);
        assert_eq!(status, want, "{path}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(error.contains(why), "{path}: {error}");
    }
}

#[test]
fn a_failure_the_candidate_no_longer_has_is_a_fixed_failure() {
    let mut host = Host::new(&config(""));
    host.install_bot("visit_stamp_panic", "visit_stamp.wasm");
    host.start();
    // MSG00077 fails live (after its retries); no other message of P17.
    send(&host, "batch.hl7", 70..80, 10);
    let failed = host.query::<i64>("SELECT COUNT(*) FROM runs WHERE status = 'failed'");
    assert_eq!(failed, 1);
    let (code, report) = shadow(&host, "visit_stamp_v1", &["--ignore", STAMP]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(summary(&report), [10, 9, 0, 0, 1]);
    let fixed = &report["differences"][0];
    assert_eq!(fixed["control_id"], "MSG00077");
    assert_eq!(fixed["verdict"], "fixed_failure");
    let why = fixed["live_error"].as_str().unwrap();
    assert!(why.contains("panicked on purpose on MSG00077"), "{why}");
    // The panicking build against itself: failed both times is the same.
    let (code, report) = shadow(&host, "visit_stamp_panic", &["--ignore", STAMP]);
    assert_eq!((code, summary(&report)), (0, [10, 10, 0, 0, 0]), "{report}");
}

#[test]
fn a_candidate_that_refuses_the_live_settings_is_not_run() {
    // The probe refuses `refuse = "true"` (so the live one is held too:
    // the settings, not the events, are what is checked first).
    let port = free_port();
    let mut host = Host::new(&config(&format!(
        "{}\n[bots.probe]\nsettings = {{ refuse = \"true\" }}\n",
        http_config(port)
    )));
    host.install_bot("probe_v2", "probe.wasm");
    host.start();
    let says = "the candidate refuses the settings of [bots.probe]: \
                setting refuse: the probe refuses to start while it is true";
    let wasm = std::fs::read(bot_wasm("probe_v2")).unwrap();
    let path = "/api/v1/bots/probe/shadow?since=1h";
    let r = http(port, "POST", path, Some(WRITE_TOKEN), &[], &wasm);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"], says);
    let candidate = bot_wasm("probe_v2");
    let out = host.cli(&["shadow", candidate.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(says), "{stderr}");
}
