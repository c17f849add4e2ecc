//! The results-to-ehr bot (`plugins/results-to-ehr`): first through
//! `interlink test --json` on its fixtures (the ORU field by field, time
//! zones, P/F/C, escaping, bad requests and bad settings), then against the
//! real host with three python-hl7 MLLP servers as EHRs (one taking
//! preliminary results, one added by a config reload after the exam, which
//! gets it only by a one-off resend, and exams finalized after it joined
//! automatically) and a folder as the PACS (the file
//! arrives no earlier than its delay, also across a SIGKILL).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use interlink_sdk::hl7::Message;
use interlink_tests::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> PathBuf {
    plugin_fixture("results-to-ehr", name)
}

/// `interlink test --json` of the bot on `inputs` with `config` written to
/// a file, at 2026-11-24T10:00:00Z: (exit success, the outcomes, stderr).
fn run_test(config: &str, inputs: &[PathBuf]) -> (bool, Vec<Value>, String) {
    let run = bot_test(
        "results_to_ehr",
        config,
        Some("2026-11-24T10:00:00Z"),
        inputs,
    );
    (run.code == Some(0), run.outcomes, run.stderr)
}

/// The fixtures' own configuration, with `replace` applied to its text.
fn fixture_config(replace: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(fixture("results.toml")).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{from:?} is not in results.toml");
        text = text.replace(from, to);
    }
    text
}

/// An HL7 message, read by the SDK's parser.
fn hl7(text: &str) -> Message {
    Message::parse(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// The value at `path` (`MSH-7`, `OBR-25`, `OBX[2]-5`) as written: escape
/// sequences kept, as on the wire.
fn field<'a>(msg: &'a Message, path: &str) -> &'a str {
    msg.get_raw(path)
        .unwrap_or_else(|| panic!("no {path} in {:?}", msg.as_str()))
}

/// How many `id` segments `msg` has.
fn count(msg: &Message, id: &str) -> usize {
    msg.segments().filter(|s| s.id == id).count()
}

/// The HL7 messages an outcome sent, as (destination, message).
fn sent(outcome: &Value) -> Vec<(String, Message)> {
    outcome["send"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            Some((
                s["destination"].as_str()?.to_string(),
                hl7(s["message"].as_str()?),
            ))
        })
        .collect()
}

fn http_json(outcome: &Value) -> (u64, Value) {
    let http = &outcome["http"];
    let body = serde_json::from_str(http["text"].as_str().unwrap()).unwrap();
    (http["status"].as_u64().unwrap(), body)
}

#[test]
fn oru_field_by_field_with_local_times_and_p_f_c() {
    let (ok, out, stderr) = run_test(&fixture_config(&[]), &[fixture("exam_lifecycle.http")]);
    assert!(ok, "{stderr}");
    assert_eq!(out.len(), 4);

    // Attestation requested: a preliminary ORU to the one EHR that wants it.
    let (status, body) = http_json(&out[0]);
    assert_eq!(status, 201);
    assert_eq!(
        body["queued"],
        json!([{"destination": "ehr_chicago", "result_status": "P", "control_id": "RTE000000001"}])
    );
    assert_eq!(body["skipped"][0]["reason"], "takes no preliminary results");
    let first = sent(&out[0]);
    assert_eq!(first.len(), 1);
    let (dest, oru) = &first[0];
    assert_eq!(dest, "ehr_chicago");
    let f = |path| field(oru, path);
    assert_eq!(f("MSH-3"), "BUTTERFLY", "MSH-3 sending application");
    assert_eq!(
        (f("MSH-4"), f("MSH-6")),
        ("", ""),
        "MSH-4/MSH-6 are the host's"
    );
    assert_eq!(f("MSH-7"), "20261124040000-0600", "MSH-7 in Chicago time");
    assert_eq!(f("MSH-9"), "ORU^R01^ORU_R01");
    assert_eq!(f("MSH-10"), "RTE000000001");
    assert_eq!(f("MSH-12"), "2.5.1");
    assert_eq!(
        (f("PID-3"), f("PID-5"), f("PID-7"), f("PID-8")),
        ("MRN777", "LOVELACE^ADA^K", "19701210", "F")
    );
    assert_eq!(f("PV1-19"), "V123");
    assert_eq!(
        (f("OBR-2"), f("OBR-3")),
        ("BF000000000042", "BF000000000042")
    );
    assert_eq!(f("OBR-4"), "US-LUNG^Lung ultrasound");
    assert_eq!(
        f("OBR-7"),
        "20261124031500-0600",
        "OBR-7: exam time in Chicago"
    );
    assert_eq!(
        f("OBR-22"),
        "20261124040000-0600",
        "OBR-22: reported, in Chicago"
    );
    assert_eq!(f("OBR-25"), "P");
    assert_eq!(f("OBR-32"), "&SMITH&JOHN");
    assert_eq!(count(oru, "OBX"), 2, "one TX OBX per report line");
    assert_eq!(
        f("OBX[1]-5"),
        r"Findings: B-lines \F\ 3 \S\ left \T\ right \R\ \E\ basal",
        "|^&~\\ escaped"
    );
    assert_eq!(f("OBX[2]-5"), "Impression: interstitial syndrome");
    for i in 1..=2 {
        let o = |n| field(oru, &format!("OBX[{i}]-{n}"));
        assert_eq!(o(1), i.to_string());
        assert_eq!(
            (o(2), o(3), o(4), o(11)),
            ("TX", "US-LUNG^Lung ultrasound", "1", "P")
        );
    }

    // Final: every EHR, each in its own time zone, and the file for the
    // PACS 30 s later.
    let (status, body) = http_json(&out[1]);
    assert_eq!(status, 200, "an update of a known exam");
    let finals = sent(&out[1]);
    let zones: Vec<(&str, &str, &str, &str)> = finals
        .iter()
        .map(|(d, m)| {
            let f = |path| field(m, path);
            (d.as_str(), f("MSH-7"), f("OBR-7"), f("OBR-25"))
        })
        .collect();
    assert_eq!(
        zones,
        [
            (
                "ehr_chicago",
                "20261124040000-0600",
                "20261124031500-0600",
                "F"
            ),
            (
                "ehr_kolkata",
                "20261124153000+0530",
                "20261124144500+0530",
                "F"
            ),
            ("ehr_utc", "20261124100000+0000", "20261124091500+0000", "F"),
        ]
    );
    let controls: Vec<&str> = finals.iter().map(|(_, m)| field(m, "MSH-10")).collect();
    assert_eq!(controls, ["RTE000000002", "RTE000000003", "RTE000000004"]);
    let push = &out[1]["send"][3];
    assert_eq!(push["destination"], "pacs");
    assert_eq!(push["name"], "BF000000000042.dcm");
    assert_eq!(push["content_type"], "application/dicom");
    assert_eq!(push["base64"], "RElDTQABAv/+");
    let due = 1_795_514_400_000u64 + 30_000; // 2026-11-24T10:00:30Z
    assert_eq!(push["not_before_ms"], due);
    assert_eq!(
        body["pacs"],
        json!({"destination": "pacs", "name": "BF000000000042.dcm", "not_before_ms": due})
    );

    // Corrected: C everywhere, with the new report.
    let corrected = sent(&out[2]);
    assert_eq!(corrected.len(), 3);
    for (_, m) in &corrected {
        assert_eq!(field(m, "OBR-25"), "C");
        assert_eq!(count(m, "OBX"), 1);
        assert_eq!(
            (field(m, "OBX-5"), field(m, "OBX-11")),
            ("Impression: no interstitial syndrome", "C")
        );
    }

    // A resend: the latest ORU (C) to one EHR, with a fresh control id.
    let (status, body) = http_json(&out[3]);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"accession": "BF000000000042", "destination": "ehr_utc",
               "result_status": "C", "control_id": "RTE000000008"})
    );
    let again = sent(&out[3]);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, "ehr_utc");
    assert_eq!(field(&again[0].1, "MSH-10"), "RTE000000008");
    assert_eq!(field(&again[0].1, "OBR-25"), "C");
    // Control ids and counts in the log, never the patient nor the
    // accession number (it identifies the patient's exam).
    let logs: Vec<&str> = out
        .iter()
        .flat_map(|o| o["logs"].as_array().unwrap().iter())
        .map(|line| line["message"].as_str().unwrap())
        .collect();
    assert!(
        logs.contains(&"exam final: ORU queued [RTE000000002, RTE000000003, RTE000000004], 0 skipped, file for the PACS"),
        "{logs:?}"
    );
    assert!(
        logs.contains(&"ORU RTE000000008 sent again to ehr_utc"),
        "{logs:?}"
    );
    for text in logs {
        assert!(
            !text.contains("MRN777")
                && !text.contains("LOVELACE")
                && !text.contains("BF000000000042"),
            "{text}"
        );
    }
}

#[test]
fn ft_report_is_one_obx_with_line_breaks() {
    let config = fixture_config(&[("pacs_push_delay_s = \"30\"", "report_format = \"ft\"")]);
    let (ok, out, stderr) = run_test(&config, &[fixture("exam_lifecycle.http")]);
    assert!(ok, "{stderr}");
    let (_, oru) = &sent(&out[1])[0];
    assert_eq!(count(oru, "OBX"), 1);
    assert_eq!(field(oru, "OBX-2"), "FT");
    assert_eq!(
        field(oru, "OBX-5"),
        r"Findings: B-lines \F\ 3 \S\ left \T\ right \R\ \E\ basal\.br\Impression: interstitial syndrome"
    );
    assert_eq!(field(oru, "OBX-11"), "F");
    // Without a delay the file is due at once.
    assert_eq!(out[1]["send"][3]["not_before_ms"], 1_795_514_400_000u64);
}

#[test]
fn bad_requests_get_an_answer_naming_the_field() {
    let (ok, out, stderr) = run_test(&fixture_config(&[]), &[fixture("bad_requests.http")]);
    assert!(ok, "every request is answered: {stderr}");
    let answers: Vec<(u64, String)> = out
        .iter()
        .map(|o| {
            let (status, body) = http_json(o);
            (status, body["error"].as_str().unwrap_or("").to_string())
        })
        .collect();
    let want = [
        (400, "unknown field ward"),
        (400, "missing field patient_id"),
        (
            400,
            "status: must be final, attestation-requested or corrected",
        ),
        (
            400,
            "exam_time: must be an RFC 3339 time, e.g. 2026-11-24T09:15:00Z",
        ),
        (
            400,
            "accession: 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`",
        ),
        (
            400,
            "the body must be a JSON object with the exam's fields (invalid type: sequence, expected a map at line 1 column 0)",
        ),
        (404, "no exam with accession BF404"),
        (201, ""),
        (400, "destination: pacs is not one of ehr_destinations"),
        (400, "destination: add ?destination=NAME"),
        (405, "use POST"),
        (405, "use POST"),
    ];
    let want: Vec<(u64, String)> = want.iter().map(|(s, e)| (*s, e.to_string())).collect();
    assert_eq!(answers, want);
    // A wrong method is told which one to use.
    for o in &out[10..] {
        let allow = o["http"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "allow");
        assert_eq!(allow, Some(&json!(["allow", "POST"])), "{o}");
    }
    // Nothing is sent for a refused request.
    for (i, o) in out.iter().enumerate() {
        assert_eq!(
            o["send"].as_array().unwrap().is_empty(),
            i != 7,
            "event {i}"
        );
    }

    // A report too big to keep is refused too, not failed.
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.http");
    let body = exam(
        "BF2",
        "final",
        "2026-11-24T09:15:00Z",
        &"x".repeat(600 * 1024),
    );
    std::fs::write(&huge, format!("POST /exams\n\n{body}\n")).unwrap();
    let (ok, out, stderr) = run_test(&fixture_config(&[]), std::slice::from_ref(&huge));
    assert!(ok, "{stderr}");
    assert_eq!(
        http_json(&out[0]),
        (400, json!({"error": "report: at most 524288 bytes"}))
    );

    // So is an exam too big to store (over the 1 MiB KV value limit),
    // naming its biggest field.
    let mut body = exam("BF3", "final", "2026-11-24T09:15:00Z", "ok");
    body["patient_name"] = json!("DOE^".repeat(300 * 1024));
    std::fs::write(&huge, format!("POST /exams\n\n{body}\n")).unwrap();
    let (ok, out, stderr) = run_test(&fixture_config(&[]), &[huge]);
    assert!(ok, "{stderr}");
    let (status, answer) = http_json(&out[0]);
    let error = answer["error"].as_str().unwrap();
    assert_eq!(status, 400, "{error}");
    assert!(
        error
            .starts_with("patient_name: too big to keep (1228802 bytes); the stored exam would be"),
        "{error}"
    );
    assert!(out[0]["send"].as_array().unwrap().is_empty());
}

#[test]
fn status_only_moves_forward_and_a_retry_sends_nothing_again() {
    let (ok, out, stderr) = run_test(&fixture_config(&[]), &[fixture("status_order.http")]);
    assert!(ok, "{stderr}");
    let already_final =
        "status: the exam is already final; it cannot go back to attestation-requested";
    let already_corrected =
        "status: the exam is already corrected; it cannot go back to attestation-requested";
    // (HTTP status, error, result statuses sent)
    let want: [(u64, &str, &[&str]); 10] = [
        (409, "status: no final result to correct", &[]),
        (201, "", &["F", "F", "F"]),
        (200, "", &[]),
        (
            409,
            "status: post status corrected to change a final result",
            &[],
        ),
        (409, already_final, &[]),
        (200, "", &["C", "C", "C"]),
        (
            409,
            "status: the exam is already corrected; post status corrected to change it",
            &[],
        ),
        (409, already_corrected, &[]),
        (201, "", &["P"]),
        (409, "status: no final result to correct", &[]),
    ];
    assert_eq!(out.len(), want.len());
    for (i, (o, (status, error, results))) in out.iter().zip(want).enumerate() {
        let (got, body) = http_json(o);
        assert_eq!(
            (got, body["error"].as_str().unwrap_or("")),
            (status, error),
            "request {}",
            i + 1
        );
        let sent_results: Vec<String> = sent(o)
            .iter()
            .map(|(_, m)| field(m, "OBR-25").to_string())
            .collect();
        assert_eq!(sent_results, results, "request {}", i + 1);
    }
    // The retry of the final result: answered as such, nothing queued.
    let (_, retry) = http_json(&out[2]);
    assert_eq!(
        (&retry["queued"], &retry["skipped"], &retry["repeat"]),
        (&json!([]), &json!([]), &json!(true))
    );
    // The file came with the final result and goes to the PACS once: its
    // retry (with the same file) sends nothing at all.
    let pushes = |o: &Value| -> Vec<Value> {
        o["send"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["destination"] == "pacs")
            .map(|s| s["base64"].clone())
            .collect()
    };
    assert_eq!(pushes(&out[1]), [json!("RElDTQABAv/+")]);
    assert_eq!(http_json(&out[1]).1["pacs"]["name"], "BF7.dcm");
    assert_eq!(out[2]["send"], json!([]), "the retry sends nothing");
    assert_eq!(retry["pacs"], Value::Null);
}

#[test]
fn pacs_file_takes_its_name_and_type_and_comes_with_the_final_result() {
    let (ok, out, stderr) = run_test(&fixture_config(&[]), &[fixture("pacs_files.http")]);
    assert!(ok, "{stderr}");
    let push = &out[0]["send"][3];
    assert_eq!(
        (
            &push["destination"],
            &push["name"],
            &push["content_type"],
            &push["base64"]
        ),
        (
            &json!("pacs"),
            &json!("BF9-report.pdf"),
            &json!("application/pdf"),
            &json!("JVBERi3/")
        )
    );
    assert_eq!(http_json(&out[0]).1["pacs"]["name"], "BF9-report.pdf");
    let refused: Vec<(u64, Value)> = out[1..5]
        .iter()
        .map(|o| {
            let (status, body) = http_json(o);
            (status, body["error"].clone())
        })
        .collect();
    assert_eq!(
        refused,
        [
            (
                400,
                json!("payload_base64: send the file with the final result")
            ),
            (
                400,
                json!("payload_name: must be a single path segment without control characters")
            ),
            (400, json!("payload_name: must not start with a dot")),
            (400, json!("payload_name: goes with payload_base64")),
        ]
    );
    for o in &out[1..5] {
        assert!(o["send"].as_array().unwrap().is_empty(), "{o}");
    }
    // Without a name or type: `<accession>.dcm`, DICOM.
    let (status, _) = http_json(&out[5]);
    assert_eq!(status, 201, "the refused posts stored nothing");
    let push = &out[5]["send"][3];
    assert_eq!(
        (&push["name"], &push["content_type"]),
        (&json!("BF10.dcm"), &json!("application/dicom"))
    );
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let ehrs = "ehr_destinations = \"ehr_chicago, ehr_kolkata, ehr_utc\"";
    // (setting as in results.toml, replaced by, the error)
    let cases = [
        (
            ehrs,
            "ehr_destinations = \"ehr_chicago, ehr_kolkata, ehr_utc, pacs\"",
            "setting ehr_destinations: at most 3 destinations, got 4",
        ),
        (
            ehrs,
            "ehr_destinations = \"ehr_chicago, ehr_nowhere\"",
            "setting ehr_destinations: no destination named ehr_nowhere that this bot may use",
        ),
        (
            ehrs,
            "ehr_destinations = \"ehr_chicago, ehr_chicago\"",
            "setting ehr_destinations: ehr_chicago is listed twice",
        ),
        (ehrs, "", "setting ehr_destinations is required"),
        (
            "\"preliminary.ehr_chicago\" = \"true\"",
            "\"preliminary.ehr_chicago\" = \"yes\"",
            "setting preliminary.ehr_chicago: \"yes\" is not valid",
        ),
        (
            "procedure_id = \"US-LUNG\"",
            "",
            "setting procedure_id is required",
        ),
        (
            "pacs_destination = \"pacs\"",
            "pacs_destination = \"ehr_utc\"",
            "setting pacs_destination: ehr_utc is an MLLP destination",
        ),
        (
            "pacs_destination = \"pacs\"",
            "",
            "setting pacs_push_delay_s: set pacs_destination too",
        ),
        (
            "pacs_push_delay_s = \"30\"",
            "pacs_push_delay_s = \"soon\"",
            "setting pacs_push_delay_s: \"soon\" is not valid",
        ),
        (
            "pacs_push_delay_s = \"30\"",
            "report_format = \"pdf\"",
            "setting report_format: \"pdf\" is not valid (tx or ft)",
        ),
    ];
    for (from, to, want) in cases {
        let config = fixture_config(&[(from, to)]);
        let (ok, out, stderr) = run_test(&config, &[fixture("exam_lifecycle.http")]);
        assert!(!ok && out.is_empty(), "{to:?} was accepted");
        assert!(
            stderr.contains(&format!("results-to-ehr: settings refused: {want}")),
            "{to:?}: {stderr}"
        );
    }
    // `interlink check` shows the operator the same message.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("interlink.toml");
    std::fs::write(&cfg, fixture_config(&[("procedure_id = \"US-LUNG\"", "")])).unwrap();
    let out = Command::new(interlink_bin())
        .arg("check")
        .arg(bot_wasm("results_to_ehr"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("settings: refused: setting procedure_id is required"),
        "{stdout}"
    );
}

// ---- end to end ----------------------------------------------------------

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An exam for `accession` as a modality posts it.
fn exam(accession: &str, status: &str, exam_time: &str, report: &str) -> Value {
    json!({
        "accession": accession, "patient_id": "MRN777", "patient_name": "LOVELACE^ADA^K",
        "birth_date": "19701210", "sex": "F", "visit_number": "V123",
        "exam_time": exam_time, "status": status, "performer": "SMITH^JOHN",
        "report": report,
    })
}

/// POSTs `exam` to the bot on the host's HTTP `port`: status and answer.
fn post_exam(port: u16, exam: &Value) -> (u16, Value) {
    http_post_json(
        port,
        "/bots/results-to-ehr/exams",
        WRITE_TOKEN,
        &exam.to_string(),
    )
}

/// An MLLP `[[destination]]` to 127.0.0.1:`port`; `extra` adds keys.
fn ehr_destination(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"{name}\"\nkind = \"mllp\"\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n"
    )
}

/// A host config: `[http]` on `http`, the EHR destinations and settings
/// for `ehrs` (a comma-separated list), a `pacs` folder with `delay_s`.
fn results_config(http: u16, destinations: &str, ehrs: &str, delay_s: u64) -> String {
    base_config(&format!(
        r#"{}
{destinations}
[[destination]]
name = "pacs"
kind = "folder"
dir = "pacs"

[bots.results-to-ehr.settings]
ehr_destinations = "{ehrs}"
"preliminary.ehr_a" = "true"
procedure_id = "US-LUNG"
procedure_description = "Lung ultrasound"
sending_application = "BUTTERFLY"
pacs_destination = "pacs"
pacs_push_delay_s = "{delay_s}"
"#,
        http_config(http)
    ))
}

/// Three python-hl7 EHRs, started in `dir`.
fn ehrs(dir: &Path) -> [PeerServer; 3] {
    ["a", "b", "c"].map(|n| PeerServer::start(Peer::Python, free_port(), "aa", &dir.join(n)))
}

/// Waits until `peer` has received `n` messages; returns them.
fn wait_received(peer: &PeerServer, n: usize, host: &Host) -> Vec<Message> {
    if !wait_until(WAIT, || peer.received().len() >= n) {
        panic!(
            "peer on {} got {:?}, not {n}; log:\n{}",
            peer.port,
            peer.received(),
            host.log()
        );
    }
    peer.received().iter().map(|(_, text)| hl7(text)).collect()
}

fn outbox_count(host: &Host, destination: &str) -> i64 {
    host.query(&format!(
        "SELECT COUNT(*) FROM outbox WHERE destination = '{destination}'"
    ))
}

#[test]
fn three_ehrs_and_one_added_later_that_gets_the_exam_only_by_resend() {
    let peers_dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ehrs(peers_dir.path());
    let http = free_port();
    let ab = ehr_destination(
        "ehr_a",
        a.port,
        "timezone = \"Asia/Kolkata\"\nsending_facility = \"BF\"\nreceiving_facility = \"HOSP_A\"",
    ) + &ehr_destination("ehr_b", b.port, "timezone = \"America/Phoenix\"");
    let mut host = Host::new(&results_config(http, &ab, "ehr_a, ehr_b", 60));
    host.install_bot("results_to_ehr", "results_to_ehr.wasm");
    host.start();

    // Written, waiting for attestation: only ehr_a (preliminary) hears.
    let report =
        "Findings: B-lines | 3 ^ left & right ~ \\ basal\nImpression: interstitial syndrome";
    let done = "2026-11-24T09:15:00Z";
    let (status, body) = post_exam(
        http,
        &exam("BF000000000042", "attestation-requested", done, report),
    );
    assert_eq!(status, 201, "{body}");
    let got = wait_received(&a, 1, &host);
    let f = |path| field(&got[0], path);
    assert_eq!(
        (f("MSH-3"), f("MSH-4"), f("MSH-6")),
        ("BUTTERFLY", "BF", "HOSP_A"),
        "MSH-3/4/6"
    );
    assert!(
        f("MSH-7").ends_with("+0530"),
        "MSH-7 in Kolkata time: {}",
        f("MSH-7")
    );
    assert_eq!(
        f("MSH-10"),
        body["queued"][0]["control_id"].as_str().unwrap()
    );
    assert_eq!(
        (f("OBR-2"), f("OBR-3"), f("OBR-7"), f("OBR-25")),
        (
            "BF000000000042",
            "BF000000000042",
            "20261124144500+0530",
            "P"
        )
    );
    assert_eq!(
        (f("PID-3"), f("PID-5"), f("PID-7"), f("PID-8")),
        ("MRN777", "LOVELACE^ADA^K", "19701210", "F")
    );
    assert_eq!(f("PV1-19"), "V123");
    assert_eq!(
        f("OBX[1]-5"),
        r"Findings: B-lines \F\ 3 \S\ left \T\ right \R\ \E\ basal"
    );
    assert_eq!(
        (f("OBX[2]-5"), f("OBX[2]-11")),
        ("Impression: interstitial syndrome", "P")
    );
    assert_eq!(
        outbox_count(&host, "ehr_b"),
        0,
        "ehr_b takes no preliminary results"
    );

    // Signed: F at both, ehr_b in Phoenix time.
    let (status, _) = post_exam(http, &exam("BF000000000042", "final", done, report));
    assert_eq!(status, 200);
    let got_a = wait_received(&a, 2, &host);
    assert_eq!(field(&got_a[1], "OBR-25"), "F");
    let got_b = wait_received(&b, 1, &host);
    let f = |path| field(&got_b[0], path);
    assert_eq!((f("OBR-7"), f("OBR-25")), ("20261124021500-0700", "F"));
    assert!(f("MSH-7").ends_with("-0700"));

    // ehr_c joins by a config reload, after the exam was done.
    let abc = ab + &ehr_destination("ehr_c", c.port, "");
    std::fs::write(
        host.path("interlink.toml"),
        results_config(http, &abc, "ehr_a, ehr_b, ehr_c", 60),
    )
    .unwrap();
    let (status, body) = http_post_json(http, "/api/v1/config/reload", WRITE_TOKEN, "");
    assert_eq!(status, 200, "{body}");

    // A correction of that exam goes to ehr_a and ehr_b, not to ehr_c.
    let (status, body) = post_exam(
        http,
        &exam(
            "BF000000000042",
            "corrected",
            done,
            "Impression: no interstitial syndrome",
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["skipped"],
        json!([{"destination": "ehr_c", "reason": "added after the exam was finalized"}])
    );
    assert_eq!(field(&wait_received(&a, 3, &host)[2], "OBR-25"), "C");
    assert_eq!(field(&wait_received(&b, 2, &host)[1], "OBR-25"), "C");
    // Answered after the commit: nothing is queued for ehr_c.
    assert_eq!(outbox_count(&host, "ehr_c"), 0);
    assert!(c.received().is_empty());

    // Until an operator sends it once.
    let (status, body) = http_post_json(
        http,
        "/bots/results-to-ehr/exams/BF000000000042/send?destination=ehr_c",
        WRITE_TOKEN,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let got_c = wait_received(&c, 1, &host);
    let f = |path| field(&got_c[0], path);
    assert_eq!(
        (f("OBR-2"), f("OBR-7"), f("OBR-25")),
        ("BF000000000042", "20261124091500+0000", "C")
    );
    assert_eq!(f("OBX-5"), "Impression: no interstitial syndrome");
    assert_eq!(f("MSH-10"), body["control_id"].as_str().unwrap());

    // An exam finalized after ehr_c joined goes to all three, even one
    // done (exam_time) before it joined.
    let (status, body) = post_exam(http, &exam("BF000000000043", "final", done, "Normal."));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["skipped"], json!([]));
    for (peer, n) in [(&a, 4), (&b, 3), (&c, 2)] {
        let last = wait_received(peer, n, &host).pop().unwrap();
        assert_eq!(field(&last, "OBR-2"), "BF000000000043");
    }
    // Every control id is different.
    let mut ids: Vec<String> = [&a, &b, &c]
        .iter()
        .flat_map(|p| p.received().into_iter().map(|(id, _)| id))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);

    // Unknown accession and destination get JSON errors.
    let r = http_post_json(
        http,
        "/bots/results-to-ehr/exams/BF404/send?destination=ehr_c",
        WRITE_TOKEN,
        "",
    );
    assert_eq!(r.0, 404);
    let r = http_post_json(
        http,
        "/bots/results-to-ehr/exams/BF000000000042/send?destination=nope",
        WRITE_TOKEN,
        "",
    );
    assert_eq!(
        (r.0, r.1["error"].as_str().unwrap()),
        (400, "destination: nope is not one of ehr_destinations")
    );
}

/// The file a modality sent along, with bytes that are not UTF-8.
const DICOM: &[u8] = b"DICM\x00\x01\x02\xff\xfe";
const DICOM_B64: &str = "RElDTQABAv/+";

#[test]
fn pacs_file_waits_for_its_delay_and_survives_a_sigkill() {
    let peers_dir = tempfile::tempdir().unwrap();
    let ehr = PeerServer::start(Peer::Python, free_port(), "aa", &peers_dir.path().join("a"));
    let http = free_port();
    let dest = ehr_destination("ehr_a", ehr.port, "");
    let mut host = Host::new(&results_config(http, &dest, "ehr_a", 3));
    host.install_bot("results_to_ehr", "results_to_ehr.wasm");
    host.start();
    let pacs = host.path("pacs");
    let file = |accession: &str| pacs.join(format!("{accession}.dcm"));

    // Without a crash: the ORU at once, the file no earlier than the delay.
    let mut first = exam("BF1", "final", "2026-11-24T09:15:00Z", "Normal.");
    first["payload_base64"] = json!(DICOM_B64);
    let (status, body) = post_exam(http, &first);
    assert_eq!(status, 201, "{body}");
    let due = body["pacs"]["not_before_ms"].as_u64().unwrap();
    assert_eq!(body["pacs"]["name"], "BF1.dcm");
    wait_received(&ehr, 1, &host);
    assert!(wait_until(WAIT, || file("BF1").exists()), "{}", host.log());
    let seen = now_ms();
    assert!(seen >= due, "arrived {} ms before its time", due - seen);
    assert_eq!(std::fs::read(file("BF1")).unwrap(), DICOM);

    // Killed while the file waits: it is still delivered, still not early.
    let mut second = exam("BF2", "final", "2026-11-24T09:20:00Z", "Normal.");
    second["payload_base64"] = json!(DICOM_B64);
    let (status, body) = post_exam(http, &second);
    assert_eq!(status, 201, "{body}");
    let due = body["pacs"]["not_before_ms"].as_u64().unwrap();
    host.kill();
    assert!(
        now_ms() < due,
        "the host was killed before the file was due"
    );
    assert!(!file("BF2").exists());
    host.start();
    assert!(wait_until(WAIT, || file("BF2").exists()), "{}", host.log());
    let seen = now_ms();
    assert!(seen >= due, "arrived {} ms before its time", due - seen);
    assert_eq!(std::fs::read(file("BF2")).unwrap(), DICOM);
    // Marked sent once written (the file shows up just before).
    let sent_rows = || {
        host.query::<i64>(
            "SELECT COUNT(*) FROM outbox WHERE destination = 'pacs' AND status = 'sent'",
        )
    };
    assert!(wait_until(WAIT, || sent_rows() == 2), "{}", host.log());
}
