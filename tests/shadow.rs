//! Shadow runs (`interlink shadow`, `POST /api/v1/bots/{name}/shadow`): a
//! candidate version of a bot replayed on the journal of a real host that
//! ran the live version (`visit-stamp`, built as v1, v2 and a panicking
//! v1), with what each found checked event by event and path by path.

use std::collections::BTreeSet;
use std::time::Duration;

use interlink_tests::*;
use serde_json::Value;

const BOT: &str = "visit-stamp";
const WAIT: Duration = Duration::from_secs(60);

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
    let db = host.db();
    let mut q = db
        .prepare(&format!("SELECT id FROM events WHERE {cond}"))
        .unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Row counts of every table a run could write, and the delivered files.
fn footprint(host: &Host) -> (Vec<i64>, Vec<(String, String)>) {
    let tables = ["events", "runs", "outbox", "kv", "sequences", "state_undo"];
    let counts = tables
        .iter()
        .map(|t| host.query::<i64>(&format!("SELECT COUNT(*) FROM {t}")))
        .collect();
    (counts, host.outputs())
}

#[test]
fn a_candidate_is_compared_event_by_event_and_nothing_is_written_or_sent() {
    let port = free_port();
    let mut host = Host::new(&config(&http_config(port)));
    host.install_bot("visit_stamp_v1", "visit_stamp.wasm");
    host.start();
    // 300 HL7 messages of three types, then 5 files that are not HL7.
    send(&host, "batch.hl7", 0..300, 300);
    for n in 0..5 {
        host.drop_file(&format!("note{n}.hl7"), &format!("not HL7 {n}\n"));
    }
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 305, WAIT);
    host.wait_outputs(305, WAIT);
    let before = footprint(&host);

    // v1 against itself: the same, state and clock included (each output
    // carries the patient's visit count, the file sequence and now-ms).
    let (code, report) = shadow(&host, "visit_stamp_v1", &["--since", "1h"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(summary(&report), [305, 305, 0, 0, 0]);

    // v2 changes PID-5.2 of ADT^A08 only: exactly those events, that path.
    let (code, report) = shadow(&host, "visit_stamp_v2", &["--details", "1000"]);
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
        let fields = &messages[0]["fields"];
        let want = serde_json::json!([
            {"path": "PID-5.2", "old": format!("John{i}"), "new": format!("JOHN{i}")}
        ]);
        assert_eq!(fields, &want, "{d}");
    }
    // Ignoring that path leaves nothing; a filter narrows the events.
    let (code, report) = shadow(&host, "visit_stamp_v2", &["--ignore", "PID-5.2"]);
    assert_eq!((code, summary(&report)), (0, [305, 305, 0, 0, 0]));
    let args = ["--type", "ADT^A08", "--limit", "10", "--source", "inbox"];
    let (code, report) = shadow(&host, "visit_stamp_v2", &args);
    assert_eq!((code, summary(&report)), (1, [10, 0, 10, 0, 0]));

    // A candidate that panics on MSG00077: one new failure, and the visit
    // it did not count shows in the later messages of that patient (P17).
    let (code, report) = shadow(&host, "visit_stamp_panic", &["--details", "100"]);
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
            let paths: Vec<&str> = d["messages"][0]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap())
                .collect();
            assert_eq!(paths, ["ZVS-1"], "{d}");
            d["event_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(differing, later_p17);

    // The HTTP API: the same run for a write token, refused to a reader.
    let v2 = std::fs::read(bot_wasm("visit_stamp_v2")).unwrap();
    let path = format!("/api/v1/bots/{BOT}/shadow?since=1h&details=0");
    let r = http(port, "POST", &path, Some(WRITE_TOKEN), &[], &v2);
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(summary(&report), [305, 205, 100, 0, 0]);
    assert_eq!(report["more_differences"], 100);
    let r = http(port, "POST", &path, Some(READ_TOKEN), &[], &v2);
    assert_eq!(r.status, 403, "{}", r.text());
    let bad = format!("/api/v1/bots/{BOT}/shadow?ignore=pid");
    let r = http(port, "POST", &bad, Some(WRITE_TOKEN), &[], &v2);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("ignore:"), "{}", r.text());
    let r = http(port, "POST", &path, Some(WRITE_TOKEN), &[], b"not wasm");
    assert_eq!(r.status, 400, "{}", r.text());
    host.wait_log(&format!("shadow bot {BOT}"), WAIT);

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
    assert!(
        host.query::<i64>(&format!(
            "SELECT MIN(received_at_ms) >= {boundary} FROM events WHERE id > 20"
        )) == 1
    );
    // Replaying the second half needs the counts as they were at the
    // boundary (1 each), not as they are now (2 each).
    let from = boundary.to_string();
    let (code, report) = shadow(&host, "visit_stamp_v1", &["--from", &from]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(summary(&report), [20, 20, 0, 0, 0]);
    // And from the very start, with the state as it was before anything.
    let (code, report) = shadow(&host, "visit_stamp_v1", &["--from", "0"]);
    assert_eq!((code, summary(&report)), (0, [40, 40, 0, 0, 0]));
    // An unknown candidate path is an error (exit code 2).
    let out = host.cli(&["shadow", "missing.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.wasm"));
}
