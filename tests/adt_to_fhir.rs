//! The adt-to-fhir bot (`plugins/adt-to-fhir`): its fixtures through
//! `interlink test --json`, the FHIR JSON checked field by field (escapes,
//! repetitions, `""` against empty) and against the FHIR R4 rules the bot
//! relies on; then the real host delivering an ADT feed to a scripted HTTP
//! server as conditional updates.

use std::path::PathBuf;
use std::time::Duration;

use interlink_tests::*;
use serde_json::{Value, json};

const SETTINGS: &str = "destination = \"fhir\"\n\"system.GENERAL\" = \"http://general.example.org/mrn\"\n\
                        timezone = \"America/Chicago\"\nordering_header = \"X-Patient-Id\"\n";
const FHIR: &str =
    "[[destination]]\nname = \"fhir\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/fhir\"\n";

fn fixture(name: &str) -> PathBuf {
    plugin_fixture("adt-to-fhir", name)
}

/// `interlink test --json` of the bot with `settings` (and `destinations`)
/// on the fixtures `names`: the exit success, stderr and the outcomes.
fn run_with(destinations: &str, settings: &str, names: &[&str]) -> (bool, String, Vec<Value>) {
    let config = base_config(&format!(
        "{destinations}\n[bots.adt-to-fhir.settings]\n{settings}"
    ));
    let inputs: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    let run = bot_test("adt_to_fhir", &config, None, &inputs);
    (run.code == Some(0), run.stderr, run.outcomes)
}

fn run(names: &[&str]) -> Vec<Value> {
    let (ok, stderr, out) = run_with(FHIR, SETTINGS, names);
    assert!(ok, "{stderr}\n{out:#?}");
    out
}

/// The `i`th message an outcome sends: its request line and resource.
fn sent(outcome: &Value, i: usize) -> (String, String, Value) {
    let s = &outcome["send"][i];
    assert_eq!(s["destination"], "fhir");
    assert_eq!(s["content_type"], "application/fhir+json");
    let http = &s["http"];
    let resource = serde_json::from_str(s["text"].as_str().unwrap()).unwrap();
    (
        http["method"].as_str().unwrap().to_string(),
        http["path"].as_str().unwrap_or_default().to_string(),
        resource,
    )
}

#[test]
fn an_admission_becomes_a_patient_and_an_encounter() {
    let out = run(&["a01_admit.hl7"]);
    let (method, path, patient) = sent(&out[0], 0);
    assert_eq!(method, "PUT");
    assert_eq!(
        path,
        "Patient?identifier=http://general.example.org/mrn|MRN888"
    );
    assert_eq!(
        out[0]["send"][0]["http"]["headers"],
        json!([
            ["Accept", "application/fhir+json"],
            ["X-Patient-Id", "MRN888"]
        ])
    );
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["active"], true);
    // Both PID-3 repetitions; an authority without `system.X` goes below
    // identifier_system.
    assert_eq!(
        patient["identifier"],
        json!([
            {"system": "http://general.example.org/mrn", "value": "MRN888",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
            {"system": "http://interlink.local/fhir/identifier/SSA", "value": "123-45-6789",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]}}
        ])
    );
    assert_eq!(
        patient["name"],
        json!([
            {"use": "official", "family": "BABBAGE", "given": ["CHARLES", "H"],
             "suffix": ["JR"], "prefix": ["DR"]},
            {"use": "nickname", "family": "BABBAGE", "given": ["CHARLIE"]}
        ])
    );
    assert_eq!(patient["birthDate"], "1950-12-26");
    assert_eq!(patient["gender"], "male");
    // Escapes decoded: \T\ is `&`, \F\ is `|`.
    assert_eq!(
        patient["address"],
        json!([
            {"use": "home", "line": ["Flat 2&3, 1 Main St", "Dept | 7"], "city": "ST. LOUIS",
             "state": "MO", "postalCode": "63101", "country": "USA"},
            {"type": "postal", "line": ["PO Box 5"], "city": "ST. LOUIS", "state": "MO",
             "postalCode": "63102", "country": "USA"}
        ])
    );
    assert_eq!(
        patient["telecom"],
        json!([
            {"system": "phone", "value": "(314) 5551234", "use": "home"},
            {"system": "email", "value": "cb@example.org"}
        ])
    );

    let (method, path, encounter) = sent(&out[0], 1);
    assert_eq!(
        (method.as_str(), path.as_str()),
        (
            "PUT",
            "Encounter?identifier=http://interlink.local/fhir/identifier/visit|V200"
        )
    );
    assert_eq!(
        encounter,
        json!({
            "resourceType": "Encounter",
            "identifier": [{"system": "http://interlink.local/fhir/identifier/visit", "value": "V200"}],
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP",
                      "display": "inpatient encounter"},
            "subject": {"type": "Patient",
                        "identifier": {"system": "http://general.example.org/mrn", "value": "MRN888"}},
            // PV1-44 has no offset: read in the `timezone` setting.
            "period": {"start": "2026-11-24T02:56:00-06:00"},
            "location": [{"location": {"display": "ICU 3 A"}}]
        })
    );
    // Types and control ids in the log, no patient data.
    assert_eq!(
        out[0]["logs"],
        json!([{"level": "info", "message": "ADT^A01 ADM0001: Patient, Encounter"}])
    );
}

#[test]
fn an_update_keeps_what_is_empty_and_clears_what_is_null() {
    let out = run(&["a01_admit.hl7", "a08_update.hl7", "a03_discharge.hl7"]);
    let (_, _, patient) = sent(&out[1], 0);
    // PID-5 empty: the names stay; PID-13 `""`: the telecom goes; PID-11
    // given: replaced.
    assert_eq!(patient["name"][0]["family"], "BABBAGE");
    assert_eq!(patient["name"].as_array().unwrap().len(), 2);
    assert!(patient.get("telecom").is_none(), "{patient}");
    assert_eq!(
        patient["address"],
        json!([{"use": "home", "line": ["12 New Rd"], "city": "CHICAGO", "state": "IL",
                "postalCode": "60601", "country": "USA"}])
    );
    // The A08's Encounter keeps its status and class, moves the location.
    let (_, _, encounter) = sent(&out[1], 1);
    assert_eq!(encounter["status"], "in-progress");
    assert_eq!(encounter["class"]["code"], "IMP");
    assert_eq!(
        encounter["location"],
        json!([{"location": {"display": "WARD 5 1"}}])
    );
    // A03: the Encounter only, finished, with the discharge time.
    assert_eq!(out[2]["send"].as_array().unwrap().len(), 1);
    let (_, path, encounter) = sent(&out[2], 0);
    assert!(path.starts_with("Encounter?"));
    assert_eq!(encounter["status"], "finished");
    assert_eq!(
        encounter["period"],
        json!({"start": "2026-11-24T02:56:00-06:00", "end": "2026-11-25T10:30:00-06:00"})
    );
}

#[test]
fn a_registration_and_a_message_without_a_patient_id() {
    let out = run_with(FHIR, SETTINGS, &["a04_register.hl7", "no_patient_id.hl7"]).2;
    let (_, path, patient) = sent(&out[0], 0);
    // No assigning authority: identifier_system itself.
    assert_eq!(
        path,
        "Patient?identifier=http://interlink.local/fhir/identifier|MRN777"
    );
    assert_eq!(patient["birthDate"], "1970-12", "as precise as given");
    assert_eq!(patient["gender"], "female");
    assert_eq!(
        patient["name"],
        json!([{"family": "LOVELACE", "given": ["ADA", "K"]}])
    );
    let (_, _, encounter) = sent(&out[0], 1);
    assert_eq!(
        (&encounter["status"], &encounter["class"]["code"]),
        (&json!("arrived"), &json!("AMB"))
    );
    assert_eq!(out[1]["ok"], false);
    assert_eq!(
        out[1]["error"],
        "failed: no patient identifier (PID-3.1 is empty)"
    );
}

#[test]
fn results_become_a_transaction_bundle_of_observations() {
    let out = run(&["oru_r01.hl7"]);
    let (method, path, bundle) = sent(&out[0], 0);
    assert_eq!((method.as_str(), path.as_str()), ("POST", ""));
    assert_eq!(
        (&bundle["resourceType"], &bundle["type"]),
        (&json!("Bundle"), &json!("transaction"))
    );
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "the OBX without a code is left out");
    let system = "http://interlink.local/fhir/identifier/observation";
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            e["request"],
            json!({"method": "PUT", "url": format!("Observation?identifier={system}|F123-{}", i + 1)})
        );
        assert_eq!(e["resource"]["subject"]["identifier"]["value"], "MRN888");
    }
    let obs = |i: usize| &entries[i]["resource"];
    assert_eq!(
        obs(0),
        &json!({
            "resourceType": "Observation",
            "identifier": [{"system": system, "value": "F123-1"}],
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}],
                     "text": "Potassium"},
            "subject": {"type": "Patient",
                        "identifier": {"system": "http://general.example.org/mrn", "value": "MRN888"}},
            "effectiveDateTime": "2026-11-24T10:00:00-06:00",
            "valueQuantity": {"value": 5.4, "unit": "millimole per liter",
                              "system": "http://unitsofmeasure.org", "code": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.5, "unit": "mmol/L"},
                                "high": {"value": 5.1, "unit": "mmol/L"}}],
            "interpretation": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                "code": "H"}]}]
        })
    );
    // A comparator kept; OBX-14 wins over OBR-7.
    assert_eq!(
        obs(1)["valueQuantity"],
        json!({"value": 0.5, "comparator": "<", "unit": "mg/dL"})
    );
    assert_eq!(obs(1)["effectiveDateTime"], "2026-11-24T10:15:00-06:00");
    // ST with an escape; TX repetitions as lines; statuses by OBX-11.
    assert_eq!(
        (&obs(2)["valueString"], &obs(2)["status"]),
        (&json!("Hemolysed & repeated"), &json!("preliminary"))
    );
    assert_eq!(
        (&obs(3)["valueString"], &obs(3)["status"]),
        (
            &json!("Line one | with a bar\nLine two"),
            &json!("corrected")
        )
    );
    assert_eq!(
        obs(4)["valueCodeableConcept"],
        json!({"coding": [{"system": "http://snomed.info/sct", "code": "278149003",
                           "display": "Blood group A Rh(D) positive"}],
               "text": "Blood group A Rh(D) positive"})
    );
    assert_eq!(
        out[0]["logs"][0],
        json!({"level": "warn", "message": "OBX 6 has no code (OBX-3): left out"})
    );
}

#[test]
fn every_resource_keeps_the_fhir_r4_rules_the_bot_relies_on() {
    let out = run(&[
        "a01_admit.hl7",
        "a04_register.hl7",
        "a08_update.hl7",
        "a03_discharge.hl7",
        "oru_r01.hl7",
    ]);
    let mut resources = Vec::new();
    for o in &out {
        for i in 0..o["send"].as_array().unwrap().len() {
            let (_, _, r) = sent(o, i);
            if r["resourceType"] == "Bundle" {
                for e in r["entry"].as_array().unwrap() {
                    resources.push(e["resource"].clone());
                }
            }
            resources.push(r);
        }
    }
    assert_eq!(resources.len(), 13);
    for r in &resources {
        check_shape(r);
    }
}

/// The FHIR R4 JSON rules the bot relies on: no empty strings, arrays or
/// objects; required elements present; codes from their value sets;
/// dates and dateTimes in FHIR's formats (a time carries an offset).
fn check_shape(r: &Value) {
    no_empty_values(r, &r["resourceType"].to_string());
    let code_in = |value: &Value, allowed: &[&str]| {
        let v = value.as_str().unwrap_or("(missing)");
        assert!(allowed.contains(&v), "{v} not in {allowed:?}: {r}");
    };
    let identifiers = |v: &Value| {
        for id in v.as_array().unwrap() {
            assert!(id["system"].as_str().unwrap().contains("://"), "{r}");
            assert!(id["value"].is_string(), "{r}");
        }
    };
    match r["resourceType"].as_str().unwrap() {
        "Patient" => {
            identifiers(&r["identifier"]);
            if r.get("gender").is_some() {
                code_in(&r["gender"], &["male", "female", "other", "unknown"]);
            }
            if let Some(d) = r.get("birthDate") {
                assert!(is_date(d.as_str().unwrap()), "{r}");
            }
            for n in r["name"].as_array().unwrap() {
                if let Some(u) = n.get("use") {
                    code_in(
                        u,
                        &[
                            "usual",
                            "official",
                            "temp",
                            "nickname",
                            "anonymous",
                            "old",
                            "maiden",
                        ],
                    );
                }
            }
            for t in r
                .get("telecom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                code_in(
                    &t["system"],
                    &["phone", "fax", "email", "pager", "url", "sms", "other"],
                );
            }
        }
        "Encounter" => {
            identifiers(&r["identifier"]);
            code_in(
                &r["status"],
                &[
                    "planned",
                    "arrived",
                    "triaged",
                    "in-progress",
                    "onleave",
                    "finished",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ],
            );
            assert!(
                r["class"]["code"].is_string() && r["class"]["system"].is_string(),
                "{r}"
            );
            for t in ["start", "end"] {
                if let Some(t) = r["period"].get(t) {
                    assert!(is_date_time(t.as_str().unwrap()), "{r}");
                }
            }
        }
        "Observation" => {
            identifiers(&r["identifier"]);
            code_in(
                &r["status"],
                &[
                    "registered",
                    "preliminary",
                    "final",
                    "amended",
                    "corrected",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ],
            );
            assert!(r["code"]["coding"][0]["code"].is_string(), "{r}");
            let values = ["valueQuantity", "valueString", "valueCodeableConcept"];
            assert_eq!(
                values.iter().filter(|v| r.get(**v).is_some()).count(),
                1,
                "{r}"
            );
            if let Some(q) = r.get("valueQuantity") {
                assert!(q["value"].is_number(), "{r}");
            }
            assert!(
                is_date_time(r["effectiveDateTime"].as_str().unwrap()),
                "{r}"
            );
        }
        "Bundle" => {
            code_in(&r["type"], &["transaction"]);
            for e in r["entry"].as_array().unwrap() {
                code_in(&e["request"]["method"], &["PUT", "POST"]);
                assert!(e["request"]["url"].is_string(), "{r}");
            }
        }
        other => panic!("unexpected resource {other}"),
    }
}

fn no_empty_values(v: &Value, at: &str) {
    match v {
        Value::String(s) => assert!(!s.trim().is_empty(), "empty string at {at}"),
        Value::Array(a) => {
            assert!(!a.is_empty(), "empty array at {at}");
            a.iter().for_each(|x| no_empty_values(x, at));
        }
        Value::Object(o) => {
            assert!(!o.is_empty(), "empty object at {at}");
            o.iter()
                .for_each(|(k, x)| no_empty_values(x, &format!("{at}.{k}")));
        }
        Value::Null => panic!("null at {at}"),
        _ => {}
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    let shape = s
        .bytes()
        .map(|b| if b.is_ascii_digit() { b'9' } else { b })
        .collect::<Vec<_>>();
    [&b"9999"[..], b"9999-99", b"9999-99-99"].contains(&shape.as_slice())
}

/// A date, or `YYYY-MM-DDThh:mm:ss` with an offset (`+hh:mm`, `-hh:mm`
/// or `Z`).
fn is_date_time(s: &str) -> bool {
    if is_date(s) {
        return true;
    }
    let shape: Vec<u8> = s
        .bytes()
        .map(|b| if b.is_ascii_digit() { b'9' } else { b })
        .collect();
    [
        &b"9999-99-99T99:99:99+99:99"[..],
        b"9999-99-99T99:99:99-99:99",
        b"9999-99-99T99:99:99Z",
    ]
    .contains(&shape.as_slice())
}

#[test]
fn settings_are_checked_and_name_the_setting() {
    let folder = "[[destination]]\nname = \"files\"\nkind = \"folder\"\ndir = \"out\"\n";
    for (destinations, settings, says) in [
        (FHIR, "", "setting destination is required"),
        (FHIR, "destination = \"ehr\"", "no destination named ehr"),
        (
            folder,
            "destination = \"files\"",
            "files is a folder destination; FHIR resources go to an http destination",
        ),
        (
            FHIR,
            "destination = \"fhir\"\nresources = \"Patient,Claim\"",
            "setting resources: \"Claim\" is not one of Patient, Encounter, Observation",
        ),
        (
            FHIR,
            "destination = \"fhir\"\nidentifier_system = \"mrn\"",
            "setting identifier_system: \"mrn\" is not an absolute URI",
        ),
        (
            FHIR,
            "destination = \"fhir\"\ntimezone = \"Mars/Base\"",
            "setting timezone: \"Mars/Base\" is not an IANA time zone",
        ),
        (
            FHIR,
            "destination = \"fhir\"\nordering_header = \"X Patient\"",
            "setting ordering_header: \"X Patient\" is not a header name",
        ),
    ] {
        let (ok, stderr, _) = run_with(destinations, settings, &["a04_register.hl7"]);
        assert!(!ok && stderr.contains(says), "{settings}: {stderr}");
    }
    // Only the Encounter, then.
    let (ok, stderr, out) = run_with(
        FHIR,
        "destination = \"fhir\"\nresources = \"Encounter\"",
        &["a04_register.hl7", "oru_r01.hl7"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(out[0]["send"].as_array().unwrap().len(), 1);
    assert!(sent(&out[0], 0).1.starts_with("Encounter?"));
    assert_eq!(out[1]["send"], json!([]));
}

#[test]
fn the_host_delivers_an_adt_feed_to_a_fhir_server() {
    let port = free_port();
    let peer = HttpPeer::start(port, "201");
    let cfg = base_config(&format!(
        r#"
{INBOX}
[[destination]]
name = "fhir"
kind = "http"
url = "http://127.0.0.1:{port}/fhir"
auth = {{ bearer_env = "FHIR_TOKEN" }}
connections = 2
ordering_header = "X-Patient-Id"

[bots.adt-to-fhir.settings]
{SETTINGS}
"#
    ));
    let mut host = Host::new(&cfg).with_env("FHIR_TOKEN", "t0ken");
    host.install_bot("adt_to_fhir", "adt_to_fhir.wasm");
    host.start();
    host.wait_log("loaded from", Duration::from_secs(20));
    let feed = ["a01_admit.hl7", "a08_update.hl7", "a03_discharge.hl7"];
    for (i, name) in feed.iter().enumerate() {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        host.drop_file(&format!("{i}.hl7"), &text);
        host.wait_query(
            "SELECT COUNT(*) FROM runs WHERE status = 'done'",
            i as i64 + 1,
            Duration::from_secs(20),
        );
    }
    let got = peer.wait_requests(5, &host);
    let lines: Vec<String> = got
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    let patient = "PUT /fhir/Patient?identifier=http://general.example.org/mrn%7CMRN888";
    let encounter =
        "PUT /fhir/Encounter?identifier=http://interlink.local/fhir/identifier/visit%7CV200";
    // One patient: one lane, in order.
    assert_eq!(lines, [patient, encounter, patient, encounter, encounter]);
    for r in &got {
        assert_eq!(request_header(r, "authorization"), "Bearer t0ken");
        assert_eq!(request_header(r, "content-type"), "application/fhir+json");
        assert_eq!(request_header(r, "x-patient-id"), "MRN888");
    }
    let last: Value = serde_json::from_str(got[4]["body"].as_str().unwrap()).unwrap();
    assert_eq!(last["status"], "finished");
    // What arrives is, byte for byte, what `interlink test` shows the bot
    // sending for the same feed (whose resources the tests above check).
    let bodies: Vec<&str> = got.iter().map(|r| r["body"].as_str().unwrap()).collect();
    let offline: Vec<String> = run(&feed)
        .iter()
        .flat_map(|o| o["send"].as_array().unwrap().iter())
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies, offline);
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE status = 'sent'",
        5,
        Duration::from_secs(20),
    );
}
