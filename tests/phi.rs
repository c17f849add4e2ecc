//! End-to-end test of patient data in the log: representative traffic
//! through the real binary with the example bots and the probe (an ADT over
//! MLLP and as a drop-folder file named after the patient, a message a bot
//! rejects, a bot panic naming the patient, an unrouted message, a broken
//! file) leaves no patient name, id or birth date in the log at the default
//! level; with `[log] phi = true` file names and panic texts are logged.

use std::process::Command;
use std::time::Duration;

use interlink_tests::{Host, config, free_port, interlink_bin, root};

const T: Duration = Duration::from_secs(20);

/// What identifies the patient of `samples/adt_a04.hl7`: name, id, birth
/// date and address.
const PATIENT_DATA: [&str; 6] = [
    "DOE",
    "JANE",
    "MRN0001",
    "19800101",
    "MAIN ST",
    "SPRINGFIELD",
];

/// The sample ADT^A04 with its control id replaced by `control_id`.
fn sample(control_id: &str) -> String {
    let text = std::fs::read_to_string(root().join("samples/adt_a04.hl7")).unwrap();
    let text = text.replace("|MSG0001|", &format!("|{control_id}|"));
    assert!(text.contains("DOE^JANE") && text.contains("MRN0001"));
    text
}

/// A host with listener `in`, drop folder `inbox`, the example bots and
/// the probe (ADT only, so other message types are unrouted); `extra` is
/// appended to the config.
fn start_host(extra: &str) -> (Host, u16) {
    let port = free_port();
    let mut host = Host::new(&config(&format!(
        r#"
[[listener]]
name = "in"
listen = "127.0.0.1:{port}"

[bots.adt-router]
settings = {{ destination = "out" }}

[bots.probe]
subscribe = [{{ hl7 = ["ADT^*"] }}]
{extra}"#
    )));
    host.install_bot("adt_router", "adt_router.wasm");
    host.install_bot("patient_counter", "patient_counter.wasm");
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    for bot in ["adt-router", "patient-counter", "probe"] {
        host.wait_log(&format!("bot={bot}"), T);
    }
    (host, port)
}

/// Sends each message over MLLP with `interlink send`; all must be ACKed.
fn send(host: &Host, port: u16, messages: &[String]) {
    let files: Vec<String> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let name = format!("send-{i}.hl7");
            std::fs::write(host.path(&name), m).unwrap();
            name
        })
        .collect();
    let out = Command::new(interlink_bin())
        .args(["send", "--to", &format!("127.0.0.1:{port}")])
        .args(&files)
        .current_dir(host.path(""))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn no_patient_data_in_the_log_unless_phi_is_on() {
    let (host, port) = start_host("");
    let rejected = sample("REJ1").replace("|MRN0001^^^CLINIC^MR|", "||");
    let unrouted = sample("U1").replace("ADT^A04^ADT_A01", "ORU^R01");
    send(
        &host,
        port,
        &[sample("M1"), rejected, sample("PANIC1"), unrouted],
    );
    host.drop_file("MRN0001_DOE_JANE.hl7", &sample("F1"));
    host.drop_file(
        "MRN0001_DOE_broken.hl7",
        "MSH|^~|REG\rPID|1||MRN0001||DOE^JANE\r",
    );

    // Everything was taken and every run finished: 4 routed ADTs x 3 bots.
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status != 'pending'", 12, T);
    host.wait_query("SELECT COUNT(*) FROM events WHERE routed = 0", 1, T);
    host.wait_log("not HL7", T);
    // The failures happened for the expected reasons, kept in the journal.
    let panic: String =
        host.query("SELECT error FROM runs WHERE bot = 'probe' AND status = 'failed'");
    assert!(panic.contains("on patient DOE^JANE"), "{panic}");
    let rejection: String =
        host.query("SELECT error FROM runs WHERE bot = 'patient-counter' AND status = 'failed'");
    assert!(rejection.contains("no PID-3.1"), "{rejection}");
    let name: String = host.query("SELECT name FROM events WHERE control_id = 'F1'");
    assert_eq!(name, "MRN0001_DOE_JANE.hl7");

    let log = host.log();
    for data in PATIENT_DATA {
        assert!(!log.contains(data), "{data:?} is in the log:\n{log}");
    }
    // What is logged instead: ids, types, outcomes, and a file's stand-in.
    assert!(log.contains("panicked: (withheld"), "{log}");
    assert!(
        log.contains("journaled source=\"inbox\" file=file #"),
        "{log}"
    );
    assert!(log.contains("routing ADT^A04^ADT_A01 M1 to out"), "{log}");

    // With phi = true, file names and panic texts are logged.
    drop(host);
    let (host, _) = start_host("[log]\nphi = true\n");
    host.drop_file(
        "MRN0002_ROE.hl7",
        &sample("PANIC2").replace("DOE^JANE", "ROE^RICHARD"),
    );
    host.wait_log("file=MRN0002_ROE.hl7", T);
    host.wait_log("probe panicked on purpose on patient ROE^RICHARD", T);
}
