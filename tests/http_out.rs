//! End-to-end tests of HTTP destinations: the real binary and the probe
//! bot against a scripted Python `http.server` (`tests/peers/http_peer.py`):
//! the exact requests (method, path, headers with auth and the idempotency
//! key, body), retries honouring `Retry-After`, dead letters, timeouts, a
//! receiver that comes up late, order across lanes, and a SIGKILL while a
//! request is in flight.

use std::time::Duration;

use interlink_tests::{
    Host, HttpPeer, INBOX, adt_a04, base_config, free_port, request_header as header, test_pki,
};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A host with drop folder `inbox`, the probe bot, HTTP destinations `rest`
/// (the probe's `REST` messages) and `out` (everything else, as HL7) on
/// the peer's `port`, and `extra` appended to `rest`.
fn host(port: u16, extra: &str) -> Host {
    let cfg = base_config(&format!(
        r#"
{INBOX}
[[destination]]
name = "out"
kind = "http"
url = "http://127.0.0.1:{port}/hl7/"
auth = {{ basic_user = "interlink", basic_password_env = "HL7_PASSWORD" }}
retry = {{ initial_backoff_ms = 100, max_backoff_s = 5 }}

[[destination]]
name = "rest"
kind = "http"
url = "http://127.0.0.1:{port}/fhir"
headers = {{ Accept = "application/fhir+json" }}
auth = {{ bearer_env = "FHIR_TOKEN" }}
connect_timeout_s = 1
retry = {{ initial_backoff_ms = 100, max_backoff_s = 5 }}
{extra}
"#
    ));
    let mut host = Host::new(&cfg)
        .with_env("FHIR_TOKEN", "t0ken")
        .with_env("HL7_PASSWORD", "pa55");
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host
}

/// The outbox ids of the `rest` messages, in queue order.
fn outbox_ids(host: &Host) -> Vec<String> {
    host.query_col::<i64>("SELECT id FROM outbox WHERE destination = 'rest' ORDER BY id")
        .iter()
        .map(i64::to_string)
        .collect()
}

#[test]
fn requests_arrive_exactly_with_auth_and_the_outbox_id() {
    let port = free_port();
    let peer = HttpPeer::start(port, "201");
    let host = host(port, "");
    host.drop_file("a.hl7", &adt_a04("REST1", "1001"));
    peer.wait_requests(1, &host);
    host.drop_file("b.hl7", &adt_a04("REST2", "1002"));
    host.drop_file("c.hl7", &adt_a04("PLAIN1", "1003"));
    let got = peer.wait_requests(3, &host);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 3, T);

    let rest: Vec<&Value> = got.iter().filter(|r| r["method"] == "PUT").collect();
    let ids = outbox_ids(&host);
    let first = rest[0];
    assert_eq!(first["path"], "/fhir/Patient?identifier=urn:mrn%7C1001");
    assert_eq!(first["body"], r#"{"id":"REST1","patient":"1001"}"#);
    assert_eq!(header(first, "authorization"), "Bearer t0ken");
    assert_eq!(header(first, "accept"), "application/fhir+json");
    assert_eq!(header(first, "content-type"), "application/json");
    assert_eq!(header(first, "content-length"), "31");
    assert_eq!(header(first, "host"), format!("127.0.0.1:{port}"));
    assert_eq!(header(first, "x-patient"), "1001");
    assert!(header(first, "user-agent").starts_with("interlink/"));
    assert_eq!(header(first, "idempotency-key"), ids[0]);
    assert_eq!(header(first, "x-request-id"), ids[0]);
    assert_eq!(header(rest[1], "idempotency-key"), ids[1]);
    // One kept-alive connection carries the destination's requests.
    assert_eq!(first["connection"], rest[1]["connection"]);

    // HL7 text goes as the destination's method (POST) to its url, with
    // the HL7 media type and basic auth.
    let hl7 = got.iter().find(|r| r["method"] == "POST").unwrap();
    assert_eq!(hl7["path"], "/hl7/");
    assert_eq!(
        header(hl7, "content-type"),
        "x-application/hl7-v2+er7; charset=utf-8"
    );
    assert_eq!(header(hl7, "authorization"), "Basic aW50ZXJsaW5rOnBhNTU=");
    // The probe's first counted message (the REST ones are not counted).
    assert_eq!(
        hl7["body"].as_str().unwrap(),
        format!("{}ZPR|v1|1\r", adt_a04("PLAIN1", "1003"))
    );
}

#[test]
fn retries_honour_retry_after_and_other_4xx_dead_letter() {
    let port = free_port();
    // Message 1: 503, 429 (wait 1 s), 503 (wait until a date 2 s ahead),
    // then 201. Message 2: 400, dead-lettered. Message 3: 201.
    let script = "503,429:retry=1,503:date=2,201,400,201";
    let peer = HttpPeer::start(port, script);
    let host = host(port, "");
    for (i, mrn) in ["2001", "2002", "2003"].iter().enumerate() {
        host.drop_file(&format!("{i}.hl7"), &adt_a04(&format!("REST{i}"), mrn));
        // One at a time, so the queue order is the order written.
        host.wait_query("SELECT COUNT(*) FROM outbox", i as i64 + 1, T);
    }
    let got = peer.wait_requests(6, &host);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 2, T);
    let ids = outbox_ids(&host);

    let keys: Vec<&str> = got.iter().map(|r| header(r, "idempotency-key")).collect();
    let (one, two, three) = (ids[0].as_str(), ids[1].as_str(), ids[2].as_str());
    assert_eq!(keys, [one, one, one, one, two, three], "FIFO: each in turn");
    let at = |n: usize| got[n]["at"].as_f64().unwrap();
    assert!(at(2) - at(1) >= 0.95, "Retry-After: 1 honoured");
    assert!(at(3) - at(2) >= 0.95, "Retry-After as a date honoured");

    let row = &host.query_rows(&format!(
        "SELECT status, last_error FROM outbox WHERE id = {two}"
    ))[0];
    let (status, error): (String, String) = (row[0].get(), row[1].get());
    assert_eq!(status, "dead");
    assert!(
        error.starts_with("HTTP 400 Bad Request: {\"resourceType\": \"OperationOutcome\"")
            && error.contains("refused request 5"),
        "{error}"
    );
    let log = host.log();
    assert!(log.contains("HTTP 429 Too Many Requests"), "{log}");
    // The receiver's body is a quote: kept out of the log at info.
    assert!(!log.contains("refused request 5"), "{log}");
}

#[test]
fn a_slow_answer_times_out_and_the_message_is_sent_again() {
    let port = free_port();
    let peer = HttpPeer::start(port, "201:slow=3,201");
    let host = host(port, "timeout_s = 1");
    host.drop_file("a.hl7", &adt_a04("REST1", "3001"));
    let got = peer.wait_requests(2, &host);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 1, T);
    assert_eq!(
        header(&got[0], "idempotency-key"),
        header(&got[1], "idempotency-key")
    );
    // The timed-out connection is dropped: a late answer would be ambiguous.
    assert_ne!(got[0]["connection"], got[1]["connection"]);
    assert!(host.log().contains("no answer within timeout_s = 1"));
}

#[test]
fn a_receiver_that_comes_up_late_gets_the_queue_in_order() {
    let port = free_port();
    let host = host(port, "");
    for (i, mrn) in ["4001", "4002"].iter().enumerate() {
        host.drop_file(&format!("{i}.hl7"), &adt_a04(&format!("REST{i}"), mrn));
        host.wait_query("SELECT COUNT(*) FROM outbox", i as i64 + 1, T);
    }
    host.wait_log("cannot connect to 127.0.0.1", T);
    let peer = HttpPeer::start(port, "201");
    let got = peer.wait_requests(2, &host);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 2, T);
    let keys: Vec<&str> = got.iter().map(|r| header(r, "idempotency-key")).collect();
    assert_eq!(keys, outbox_ids(&host));
}

#[test]
fn lanes_keep_each_ordering_header_value_in_order() {
    let port = free_port();
    let peer = HttpPeer::start(port, "201");
    let host = host(port, "connections = 4\nordering_header = \"X-Patient\"");
    let patients = ["5001", "5002", "5003", "5004", "5005", "5006"];
    for i in 0..36 {
        let mrn = patients[i % patients.len()];
        host.drop_file(&format!("{i:02}.hl7"), &adt_a04(&format!("REST{i}"), mrn));
    }
    let got = peer.wait_requests(36, &host);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 36, T);
    for mrn in patients {
        let of_patient: Vec<&Value> = got
            .iter()
            .filter(|r| header(r, "x-patient") == mrn)
            .collect();
        let keys: Vec<i64> = of_patient
            .iter()
            .map(|r| header(r, "idempotency-key").parse().unwrap())
            .collect();
        assert_eq!(keys.len(), 6);
        assert!(keys.is_sorted(), "patient {mrn}: {keys:?}");
        // One lane, so one kept-alive connection, carries a patient.
        let lanes: std::collections::HashSet<i64> = of_patient
            .iter()
            .map(|r| r["connection"].as_i64().unwrap())
            .collect();
        assert_eq!(lanes.len(), 1, "patient {mrn} came on {lanes:?}");
    }
    let connections: std::collections::HashSet<i64> = got
        .iter()
        .map(|r| r["connection"].as_i64().unwrap())
        .collect();
    assert!(
        (2..=4).contains(&connections.len()),
        "4 lanes, each on its own connection: {connections:?}"
    );
}

#[test]
fn sigkill_while_delivering_sends_again_with_the_same_key() {
    let port = free_port();
    let peer = HttpPeer::start(port, "201:slow=30,201");
    let mut host = host(port, "");
    host.drop_file("a.hl7", &adt_a04("REST1", "6001"));
    let first = peer.wait_requests(1, &host);
    host.kill();
    host.start();
    let got = peer.wait_requests(2, &host);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 1, T);
    assert_eq!(first[0]["body"], got[1]["body"]);
    assert_eq!(
        header(&got[0], "idempotency-key"),
        header(&got[1], "idempotency-key")
    );
    assert_eq!(header(&got[1], "idempotency-key"), outbox_ids(&host)[0]);
}

#[test]
fn http_options_to_another_kind_fail_the_run_with_the_reason() {
    let cfg = base_config(&format!(
        r#"
{INBOX}
[[destination]]
name = "rest"
kind = "folder"
dir = "out"
"#
    ));
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host.drop_file("a.hl7", &adt_a04("REST1", "7001"));
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'failed'", 1, T);
    let error: String = host.query("SELECT error FROM runs");
    assert!(
        error.contains(
            "destination \"rest\" is folder: only an http destination takes a method, path or headers"
        ),
        "{error}"
    );
}

#[test]
fn a_missing_credential_is_named_at_start() {
    let port = free_port();
    let cfg = base_config(&format!(
        "[[destination]]\nname = \"rest\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\n\
         auth = {{ bearer_env = \"INTERLINK_TEST_UNSET_FHIR_TOKEN\" }}\n"
    ));
    let mut host = Host::new(&cfg);
    // A host that does not refuse the config would run on: wait for the
    // message and the exit, never for the process to end by itself.
    host.start_until("INTERLINK_TEST_UNSET_FHIR_TOKEN is not set");
    let exit = host.wait_exit(T).expect("the host stops");
    assert!(!exit.success());
    let log = host.log();
    assert!(log.contains("auth.bearer_env"), "{log}");
}

#[test]
fn https_with_a_client_certificate() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    test_pki(dir.path());
    let peer = HttpPeer::start_with(port, "201", Some(dir.path()));
    let pki = dir.path().display();
    let cfg = base_config(&format!(
        r#"
{INBOX}
[[destination]]
name = "out"
kind = "http"
url = "https://127.0.0.1:{port}/hl7"
tls = {{ ca = "{pki}/ca.pem", cert = "{pki}/client.pem", key = "{pki}/client.key", server_name = "localhost" }}
"#
    ));
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host.drop_file("a.hl7", &adt_a04("TLS1", "8001"));
    let got = peer.wait_requests(1, &host);
    assert_eq!(got[0]["client"], "modality");
    assert_eq!(got[0]["method"], "POST");
    assert_eq!(
        got[0]["body"].as_str().unwrap(),
        format!("{}ZPR|v1|1\r", adt_a04("TLS1", "8001"))
    );
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 1, T);
}
