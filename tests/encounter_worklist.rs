//! The encounter-worklist bot (`plugins/encounter-worklist`): first
//! through `interlink test --json` on its fixtures (every ADT event kind,
//! out-of-order feeds, accession rules, filters), then against the real
//! host: an ADT feed from python-hl7's client over MLLP, the worklist over
//! HTTP, and settings refused until a reload fixes them.

use std::path::PathBuf;
use std::time::Duration;

use interlink_tests::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const NOW: &str = "2026-11-24T09:00:00Z";
const SETTINGS: &str = "accession_prefix = \"BF\"\ntimezone = \"America/Chicago\"\n\
                        procedure_id = \"US-ABD\"\nprocedure_description = \"Abdominal ultrasound\"\n";

fn fixture(name: &str) -> PathBuf {
    plugin_fixture("encounter-worklist", name)
}

/// `interlink test --json` of the bot with `settings` on `inputs`; the
/// exit success and the outcomes.
fn run(settings: &str, inputs: &[PathBuf]) -> (bool, String, Vec<Value>) {
    let config = base_config(&format!("[bots.encounter-worklist.settings]\n{settings}"));
    let run = bot_test("encounter_worklist", &config, Some(NOW), inputs);
    (run.code == Some(0), run.stderr, run.outcomes)
}

/// The body of an outcome's HTTP answer, as JSON.
fn body(outcome: &Value) -> Value {
    serde_json::from_str(outcome["http"]["text"].as_str().expect("an HTTP answer")).unwrap()
}

/// The visit numbers of a list answer, in order.
fn visits(outcome: &Value) -> Vec<String> {
    body(outcome)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["visit_number"].as_str().unwrap().to_string())
        .collect()
}

fn fixtures(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| fixture(n)).collect()
}

#[test]
fn every_adt_event_kind_changes_the_worklist() {
    let all = [
        "a04_register.hl7",
        "a01_admit.hl7",
        "a05_preadmit.hl7",
        "list.http",
        "a08_update.hl7",
        "a02_transfer.hl7",
        "a03_discharge.hl7",
        "list.http",
        "a13_cancel_discharge.hl7",
        "a11_cancel_admit.hl7",
        "list.http",
        "a40_merge.hl7",
        "worklist.http",
    ];
    let (ok, stderr, out) = run(SETTINGS, &fixtures(&all));
    assert!(ok, "{stderr}");
    let opened = &out[3];
    assert_eq!(visits(opened), ["V123", "V200", "V300"]);
    // Every field of the first item, in the modality's time zone.
    let item = &body(opened)["items"][0];
    let expected = serde_json::json!({
        "patient_id": "MRN777", "patient_name": "LOVELACE^ADA^K", "birth_date": "19701210",
        "sex": "F", "visit_number": "V123", "location": "ER^12^B",
        "attending_doctor": "SMITH^JOHN", "accession_number": "BF000000000001",
        "procedure_id": "US-ABD", "procedure_description": "Abdominal ultrasound",
        "scheduled_time": "2026-11-24T02:55:00-06:00"
    });
    assert_eq!(item, &expected);
    // The item's fields come in a stable, documented order.
    assert!(
        opened["http"]["text"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"items":[{"patient_id":"MRN777","patient_name":"#)
    );
    let pre_admit = &body(opened)["items"][2];
    assert_eq!(pre_admit["scheduled_time"], "2026-11-25T08:00:00-06:00");
    assert_eq!(pre_admit["accession_number"], "BF000000000003");
    // A08 renamed, A02 moved V123; A03 closed V200.
    let after = &out[7];
    assert_eq!(visits(after), ["V123", "V300"]);
    let v123 = &body(after)["items"][0];
    assert_eq!(
        (
            &v123["patient_name"],
            &v123["location"],
            &v123["accession_number"]
        ),
        (
            &Value::from("LOVELACE KING^ADA^K"),
            &Value::from("WARD^5^1"),
            &Value::from("BF000000000001")
        )
    );
    // A13 reopened V200 (with its accession number), A11 removed V300.
    assert_eq!(visits(&out[10]), ["V123", "V200"]);
    assert_eq!(
        body(&out[10])["items"][1]["accession_number"],
        "BF000000000002"
    );
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o["ok"], true, "event {i}: {o}");
    }
    let logs: Vec<&str> = out[..3]
        .iter()
        .map(|o| o["logs"][0]["message"].as_str().unwrap())
        .collect();
    assert_eq!(logs[0], "ADT^A04^ADT_A01 REG0001: encounter open");
    // No patient data in the log.
    assert!(out.iter().all(|o| !o["logs"].to_string().contains("MRN")));

    // A40 moved V200 from MRN888 to MRN777, with MRN777's name.
    let q = &out[12..];
    assert_eq!(visits(&q[0]), ["V123", "V200"]);
    assert_eq!(visits(&q[1]), ["V123", "V200"]);
    let v200 = &body(&q[1])["items"][1];
    assert_eq!(
        (&v200["patient_id"], &v200["patient_name"]),
        (&Value::from("MRN777"), &Value::from("LOVELACE KING^ADA^K"))
    );
    assert_eq!(visits(&q[2]), ["V123", "V200"], "name prefix, any case");
    assert_eq!(visits(&q[3]), ["V123"], "location WARD");
    assert_eq!(visits(&q[4]), ["V200"], "date and location ICU^3");
    assert_eq!(visits(&q[5]), Vec::<String>::new(), "another day");
    assert_eq!(body(&q[6])["visit_number"], "V200");
    assert_eq!(q[7]["http"]["status"], 404);
    assert_eq!(
        body(&q[7])["error"],
        "no open encounter has this accession number"
    );
    assert_eq!(q[8]["http"]["status"], 400);
    assert!(
        body(&q[8])["error"]
            .as_str()
            .unwrap()
            .starts_with("filter date:")
    );
    assert_eq!(q[9]["http"]["status"], 400);
    assert!(
        body(&q[9])["error"]
            .as_str()
            .unwrap()
            .contains("\"colour\"")
    );
    assert_eq!(q[10]["http"]["status"], 405);
}

#[test]
fn late_and_repeated_messages_do_not_undo_newer_ones() {
    let (ok, stderr, out) = run(SETTINGS, &fixtures(&["out_of_order.hl7", "list.http"]));
    assert!(ok, "{stderr}");
    assert_eq!(out.len(), 16);
    let list = out.last().unwrap();
    // V501 stays discharged (late A08, repeated A01), V502 never opens
    // (discharge first), V506 neither (cancel first); V503 opens with the
    // A08's newer location, V504 once, V505 stays open (A13 before A03).
    assert_eq!(visits(list), ["V503", "V504", "V505"]);
    let items = body(list)["items"].as_array().unwrap().clone();
    assert_eq!(items[0]["location"], "ICU^9");
    // One accession number per opening: V501, V503, V504 (once), V505.
    let numbers: Vec<&str> = items
        .iter()
        .map(|i| i["accession_number"].as_str().unwrap())
        .collect();
    assert_eq!(
        numbers,
        ["BF000000000002", "BF000000000003", "BF000000000004"]
    );
}

#[test]
fn a_merge_is_remembered_for_late_messages_and_joins_duplicate_records() {
    let (ok, stderr, out) = run(SETTINGS, &fixtures(&["merge_then_late.hl7", "list.http"]));
    assert!(ok, "{stderr}");
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o["ok"], true, "event {i}: {o}");
    }
    let items = body(out.last().unwrap())["items"]
        .as_array()
        .unwrap()
        .clone();
    let seen: Vec<(&str, &str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["patient_id"].as_str().unwrap(),
                i["visit_number"].as_str().unwrap(),
                i["location"].as_str().unwrap(),
                i["accession_number"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            // The A08 for MRN888 after the merge updates the survivor's
            // encounter; it does not move it back.
            ("MRN777", "V200", "ICU^4", "BF000000000001"),
            // A late A01 for MRN888 opens the encounter for MRN777.
            ("MRN777", "", "ER^3", "BF000000000004"),
            // MRN777 and MRN888 both had the 01:10 admit: one record, the
            // newer status (with its number) and details.
            ("MRN777", "", "ER^2", "BF000000000003"),
        ]
    );
    assert_eq!(
        out[3]["logs"][0]["message"],
        "ADT^A40^ADT_A39 MRL0004: 2 encounter(s) moved to the surviving patient"
    );
}

#[test]
fn an_admit_past_max_open_hours_gets_no_accession_number() {
    let (ok, stderr, out) = run(
        SETTINGS,
        &fixtures(&[
            "old_admit.hl7",
            "list.http",
            "a04_register.hl7",
            "list.http",
        ]),
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        out[0]["logs"][0]["message"],
        "ADT^A01^ADT_A01 OLD0001: encounter open"
    );
    assert_eq!(visits(&out[1]), Vec::<String>::new());
    // No number was used up by it: the next opening gets the first one.
    assert_eq!(visits(&out[3]), ["V123"]);
    assert_eq!(
        body(&out[3])["items"][0]["accession_number"],
        "BF000000000001"
    );
}

#[test]
fn hl7_null_clears_composite_fields() {
    let (ok, stderr, out) = run(
        SETTINGS,
        &fixtures(&["a04_register.hl7", "null_fields.hl7", "list.http"]),
    );
    assert!(ok, "{stderr}");
    let item = &body(&out[2])["items"][0];
    assert_eq!(
        (
            &item["patient_name"],
            &item["location"],
            &item["attending_doctor"],
            &item["birth_date"],
        ),
        (
            &Value::from(""),
            &Value::from(""),
            &Value::from(""),
            &Value::from("19701210")
        ),
        "PID-5, PV1-3 and PV1-7 were \"\"; PID-7 was given: {item}"
    );
}

#[test]
fn accession_numbers_rotate_after_the_period_and_not_before() {
    let settings = format!("{SETTINGS}accession_period_min = \"5\"\nmax_open_hours = \"72\"\n");
    let (ok, stderr, out) = run(
        &settings,
        &fixtures(&[
            "a04_register.hl7",
            "a01_admit.hl7",
            "list.http",
            "rotation_not_yet.tick",
            "list.http",
            "rotation_due.tick",
            "list.http",
            "stale.tick",
            "list.http",
        ]),
    );
    assert!(ok, "{stderr}");
    let numbers = |o: &Value| -> Vec<String> {
        body(o)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["accession_number"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(numbers(&out[2]), ["BF000000000001", "BF000000000002"]);
    assert_eq!(numbers(&out[4]), ["BF000000000001", "BF000000000002"]);
    assert_eq!(
        out[3]["logs"],
        serde_json::json!([]),
        "nothing rotated at 4:59"
    );
    assert_eq!(numbers(&out[6]), ["BF000000000003", "BF000000000004"]);
    assert_eq!(
        out[5]["logs"][0]["message"],
        "tick: 2 accession number(s) replaced, 0 stale encounter(s) dropped"
    );
    // max_open_hours later they have dropped off.
    assert_eq!(numbers(&out[8]), Vec::<String>::new());
    assert_eq!(
        out[7]["logs"][0]["message"],
        "tick: 0 accession number(s) replaced, 2 stale encounter(s) dropped"
    );
}

#[test]
fn ten_thousand_accession_numbers_are_unique() {
    // 100 open encounters, and 99 ticks five minutes apart, each replacing
    // all of their numbers: 10,000 numbers, every one seen on the worklist.
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    let feed: String = (0..100)
        .map(|n| {
            std::fs::read_to_string(fixture("a04_register.hl7"))
                .unwrap()
                .replace("V123", &format!("V{n:04}"))
                .replace("REG0001", &format!("REG{n:04}"))
        })
        .collect();
    std::fs::write(dir.path().join("feed.hl7"), feed).unwrap();
    inputs.push(dir.path().join("feed.hl7"));
    inputs.push(fixture("list.http"));
    for round in 1..100 {
        let tick = dir.path().join(format!("round{round}.tick"));
        // Ms since the epoch: 2026-11-24T09:00:00Z plus five minutes a round.
        let at_ms: i64 = 1_795_510_800_000 + round * 300_000;
        std::fs::write(&tick, format!("{at_ms}\n")).unwrap();
        inputs.push(tick);
        inputs.push(fixture("list.http"));
    }
    let settings = "accession_prefix = \"EW\"\naccession_digits = \"14\"\n";
    let (ok, stderr, out) = run(settings, &inputs);
    assert!(ok, "{stderr}");
    let mut seen = std::collections::HashSet::new();
    for o in out.iter().filter(|o| o["kind"] == "http") {
        let items = body(o)["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 100);
        for i in items {
            let number = i["accession_number"].as_str().unwrap().to_string();
            assert!(
                number.len() == 16
                    && number.starts_with("EW")
                    && number[2..].bytes().all(|b| b.is_ascii_digit()),
                "{number}"
            );
            assert!(seen.insert(number.clone()), "{number} issued twice");
        }
    }
    assert_eq!(seen.len(), 10_000);
    assert!(seen.contains("EW00000000010000"));
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    for (settings, named) in [
        (
            "accession_prefix = \"B\"\n",
            "setting accession_prefix: \"B\" must be 2 to 4 capital letters (A-Z)",
        ),
        (
            "accession_prefix = \"BF1\"\n",
            "setting accession_prefix: \"BF1\" must be 2 to 4 capital letters (A-Z)",
        ),
        (
            "accession_prefix = \"bf\"\n",
            "setting accession_prefix: \"bf\" must be 2 to 4 capital letters (A-Z)",
        ),
        (
            "accession_digits = \"11\"\n",
            "setting accession_digits: 11 is too few (at least 12)",
        ),
        (
            "accession_prefix = \"ABCD\"\naccession_digits = \"13\"\n",
            "setting accession_digits: 13 digits after the 4-letter prefix make more than 16 characters",
        ),
        (
            "accession_period_min = \"0\"\n",
            "setting accession_period_min: must be at least 1 (minutes)",
        ),
        (
            "accession_period_min = \"soon\"\n",
            "setting accession_period_min: \"soon\" is not valid",
        ),
        (
            "timezone = \"Mars/Olympus\"\n",
            "setting timezone: \"Mars/Olympus\" is not an IANA time zone",
        ),
        (
            "max_open_hours = \"0\"\n",
            "setting max_open_hours: must be at least 1 (hours)",
        ),
        (
            "procedure_id = \" \"\n",
            "setting procedure_id: must not be blank",
        ),
    ] {
        let (ok, stderr, _) = run(settings, &fixtures(&["a04_register.hl7"]));
        assert!(!ok && stderr.contains(named), "{settings}: {stderr}");
    }
}

/// A host with an MLLP listener, `[http]` and the bot with `settings`.
fn worklist_host(settings: &str) -> (Host, u16, u16) {
    let (mllp, port) = (free_port(), free_port());
    let cfg = config(&format!(
        "{}\n[[listener]]\nname = \"adt\"\nlisten = \"127.0.0.1:{mllp}\"\n\n\
         [bots.encounter-worklist.settings]\n{settings}",
        http_config(port)
    ));
    let host = Host::new(&cfg);
    host.install_bot("encounter_worklist", "encounter_worklist.wasm");
    (host, mllp, port)
}

fn worklist(port: u16, query: &str) -> (u16, Value) {
    http_get_json(
        port,
        &format!("/bots/encounter-worklist/worklist{query}"),
        READ_TOKEN,
    )
}

#[test]
fn an_adt_feed_over_mllp_becomes_a_worklist_over_http() {
    let (mut host, mllp, port) = worklist_host(SETTINGS);
    host.start();
    let acks = peer_send(
        Peer::Python,
        mllp,
        &fixtures(&[
            "a04_register.hl7",
            "a01_admit.hl7",
            "a05_preadmit.hl7",
            "a03_discharge.hl7",
        ]),
    );
    assert_eq!(
        acks,
        ["AA REG0001", "AA ADM0001", "AA PRE0001", "AA DIS0001"]
    );
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 4, WAIT);
    let (status, list) = worklist(port, "");
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["visit_number"].as_str().unwrap(),
                i["patient_id"].as_str().unwrap(),
                i["accession_number"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("V123", "MRN777", "BF000000000001"),
            ("V300", "MRN999", "BF000000000003")
        ]
    );
    assert_eq!(items[0]["scheduled_time"], "2026-11-24T02:55:00-06:00");
    assert_eq!(items[0]["procedure_description"], "Abdominal ultrasound");
    let (status, one) = worklist(port, "/BF000000000003");
    assert_eq!(
        (status, &one["patient_name"]),
        (200, &Value::from("HOPPER^GRACE^B"))
    );
    let (status, gone) = worklist(port, "/BF000000000002");
    assert_eq!(status, 404, "{gone}");
    let (status, filtered) = worklist(port, "?name=hop&date=2026-11-25");
    assert_eq!(status, 200, "{filtered}");
    let found: Vec<(&str, &str)> = filtered["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["visit_number"].as_str().unwrap(),
                i["accession_number"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, [("V300", "BF000000000003")]);
    let (status, bad) = worklist(port, "?date=tomorrow");
    assert_eq!(status, 400);
    assert!(
        bad["error"].as_str().unwrap().contains("filter date"),
        "{bad}"
    );
    // Queries are not journaled; the log holds no patient data.
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM events WHERE kind = 'http'"),
        0
    );
    host.wait_log("DIS0001: encounter discharged", WAIT);
    assert_eq!(
        host.log_lines(&|l| l.contains("MRN") || l.contains("LOVELACE")),
        0
    );
}

#[test]
fn bad_settings_hold_the_feed_until_a_reload_fixes_them() {
    let (mut host, mllp, port) = worklist_host("accession_digits = \"10\"\n");
    // `interlink check` with the host's config (and the tokens it names).
    let wasm = bot_wasm("encounter_worklist");
    let check = host.cli(&["check", wasm.to_str().unwrap()]);
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{printed}");
    assert!(
        printed.contains("settings: refused: setting accession_digits: 10 is too few"),
        "{printed}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    host.start();
    host.wait_log("settings refused: setting accession_digits", WAIT);
    let (status, bots) = http_get_json(port, "/api/v1/bots", READ_TOKEN);
    assert_eq!(status, 200);
    let bot = bots["bots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "encounter-worklist")
        .cloned()
        .unwrap();
    assert!(
        bot["settings_error"]
            .as_str()
            .unwrap()
            .starts_with("setting accession_digits:"),
        "{bot}"
    );
    // The feed is acknowledged and journaled, and waits.
    assert_eq!(
        peer_send(Peer::Python, mllp, &fixtures(&["a04_register.hl7"])),
        ["AA REG0001"]
    );
    host.wait_query(
        "SELECT COUNT(*) FROM runs WHERE status = 'pending'",
        1,
        WAIT,
    );
    let (status, held) = worklist(port, "");
    assert_eq!(status, 503, "{held}");

    let cfg = std::fs::read_to_string(host.path("interlink.toml")).unwrap();
    std::fs::write(
        host.path("interlink.toml"),
        cfg.replace("accession_digits = \"10\"", "accession_digits = \"12\""),
    )
    .unwrap();
    let (status, answer) = http_post_json(port, "/api/v1/config/reload", WRITE_TOKEN, "");
    assert_eq!(status, 200, "{answer}");
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 1, WAIT);
    let (status, list) = worklist(port, "");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["accession_number"], "ACC000000000001");
}
