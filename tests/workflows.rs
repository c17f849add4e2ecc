//! The point-of-care ultrasound story end to end, across the example bots
//! wired as the embedded default wires them (its own config, with peers on
//! free ports instead of the default's folders): an ADT feed from python-hl7's client
//! puts the patient on the encounter worklist with an accession number; an
//! exam posted for that accession becomes an ORU^R01 at the EHR (a
//! python-hl7 MLLP server) naming the same patient, visit and accession;
//! and the exam's file follows to the PACS folder no earlier than the push
//! delay.

use std::time::{Duration, Instant};

use interlink_sdk::hl7::Message;
use interlink_tests::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// An ADT^A04 opening visit `visit` for MRN777 now (`stamp`: HL7 time).
fn admission(visit: &str, stamp: &str) -> String {
    let mut pv1 = vec![""; 45];
    pv1[0] = "PV1";
    pv1[1] = "1";
    pv1[2] = "E";
    pv1[3] = "ED^12^A^GH";
    pv1[7] = "1234^SMITH^JOHN^^^DR";
    pv1[19] = visit;
    pv1[44] = stamp;
    format!(
        "MSH|^~\\&|ADT|GH|INTERLINK|BF|{stamp}||ADT^A04^ADT_A01|ADT{visit}|P|2.5.1\r\
         EVN|A04|{stamp}\r\
         PID|1||MRN777^^^GH^MR||LOVELACE^ADA^K||19701210|F\r\
         {}\r",
        pv1.join("|")
    )
}

/// The current UTC time as an HL7 timestamp.
fn hl7_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y%m%d%H%M%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn an_admission_becomes_a_worklist_item_and_its_exam_an_oru_at_the_ehr() {
    let peers = tempfile::tempdir().unwrap();
    let ehr = PeerServer::start(Peer::Python, free_port(), "aa", &peers.path().join("ehr"));
    let (adt_port, http_port) = (free_port(), free_port());
    let mut host = Host::new(&base_config(&format!(
        r#"{}
[[listener]]
name = "adt"
listen = "127.0.0.1:{adt_port}"

[[destination]]
name = "ehr"
kind = "mllp"
host = "127.0.0.1"
port = {}
receiving_facility = "EHR"

[[destination]]
name = "pacs"
kind = "folder"
dir = "pacs"

[bots.encounter-worklist.settings]
accession_prefix = "BF"
accession_digits = "12"
procedure_id = "US001"
procedure_description = "Point-of-care ultrasound"
timezone = "UTC"

[bots.results-to-ehr.settings]
ehr_destinations = "ehr"
procedure_id = "US001"
procedure_description = "Point-of-care ultrasound"
pacs_destination = "pacs"
pacs_push_delay_s = "2"
"#,
        http_config(http_port),
        ehr.port
    )));
    host.install_bot("encounter_worklist", "encounter_worklist.wasm");
    host.install_bot("results_to_ehr", "results_to_ehr.wasm");
    host.start();

    let adt = peers.path().join("adt_a04.hl7");
    std::fs::write(&adt, admission("V42", &hl7_now())).unwrap();
    let acks = peer_send(Peer::Python, adt_port, &[adt]);
    assert_eq!(acks, ["AA ADTV42"]);

    let mut item = serde_json::Value::Null;
    let listed = wait_until(WAIT, || {
        let (_, list) = http_get_json(
            http_port,
            "/bots/encounter-worklist/worklist?patient_id=MRN777",
            READ_TOKEN,
        );
        item = list["items"][0].clone();
        !item.is_null()
    });
    assert!(
        listed,
        "the worklist never listed MRN777; log:\n{}",
        host.log()
    );
    assert_eq!(
        (
            &item["patient_name"],
            &item["visit_number"],
            &item["procedure_id"]
        ),
        (&json!("LOVELACE^ADA^K"), &json!("V42"), &json!("US001"))
    );
    let accession = item["accession_number"].as_str().unwrap().to_string();
    assert!(
        accession.len() == 14
            && accession.starts_with("BF")
            && accession[2..].bytes().all(|b| b.is_ascii_digit()),
        "{accession}"
    );

    let exam = json!({
        "accession": accession, "patient_id": "MRN777", "patient_name": "LOVELACE^ADA^K",
        "birth_date": "19701210", "sex": "F", "visit_number": "V42",
        "exam_time": "2026-11-24T09:15:00Z", "status": "final", "performer": "SMITH^JOHN",
        "report": "Findings: normal.\nImpression: no effusion.",
        "payload_base64": "RElDTQ==",
    });
    let posted = Instant::now();
    let (status, body) = http_post_json(
        http_port,
        "/bots/results-to-ehr/exams",
        WRITE_TOKEN,
        &exam.to_string(),
    );
    assert_eq!(status, 201, "{body}");

    assert!(
        wait_until(WAIT, || !ehr.received().is_empty()),
        "{}",
        host.log()
    );
    let text = ehr.received()[0].1.clone();
    let oru = Message::parse(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    // The field at `path` as written, escapes kept.
    let field = |path| {
        oru.get_raw(path)
            .unwrap_or_else(|| panic!("no {path} in {text:?}"))
    };
    assert_eq!(field("MSH-9"), "ORU^R01^ORU_R01");
    assert_eq!(field("MSH-6"), "EHR");
    assert_eq!(field("PID-3"), "MRN777");
    assert_eq!(field("PV1-19"), "V42");
    assert_eq!(
        (field("OBR-2"), field("OBR-3")),
        (accession.as_str(), accession.as_str())
    );
    assert_eq!(field("OBR-4"), "US001^Point-of-care ultrasound");
    assert_eq!(field("OBR-25"), "F");

    let pacs = host.path(&format!("pacs/{accession}.dcm"));
    assert!(wait_until(WAIT, || pacs.exists()), "{}", host.log());
    assert!(posted.elapsed() >= Duration::from_secs(2));
    assert_eq!(std::fs::read(pacs).unwrap(), b"DICM");
}
