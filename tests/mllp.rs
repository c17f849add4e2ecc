//! End-to-end tests of MLLP: the real binary against python-hl7's client
//! and server, raw sockets for malformed input, TLS with a test CA, and
//! SIGKILLs under load (the crash storm of `tests/crash.rs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use interlink_tests::Peer::{Medplum, Python};
use interlink_tests::crash::{AckMode, Storm};
use interlink_tests::{
    Host, PeerServer, adt_a04, base_config, free_port, interlink_bin, peer_send,
    skip_unless_sqlite, wait_until,
};

const T: Duration = Duration::from_secs(20);

/// A host with listeners `in` (commit ACKs) and `app` (application ACKs),
/// the probe bot, and destination `out` as given by `out`.
fn host(out: &str, extra: &str) -> (Host, u16, u16) {
    let (port, app_port) = (free_port(), free_port());
    let cfg = base_config(&format!(
        r#"
[[listener]]
name = "in"
listen = "127.0.0.1:{port}"
max_message_kb = 4

[[listener]]
name = "app"
listen = "127.0.0.1:{app_port}"
ack = "application"

{out}
{extra}
"#
    ));
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    (host, port, app_port)
}

const FOLDER_OUT: &str = "[[destination]]\nname = \"out\"\nkind = \"folder\"\ndir = \"out\"";

fn mllp_out(port: u16, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"out\"\nkind = \"mllp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         sending_facility = \"BF\"\nreceiving_facility = \"EPIC\"\nack_timeout_s = 1\nconnect_timeout_s = 1\n\
         retry = {{ initial_backoff_ms = 100, max_backoff_s = 1 }}\n{extra}"
    )
}

/// Sends raw bytes and returns what comes back until an MLLP end marker,
/// the connection closing, or `wait` passing.
fn raw(port: u16, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(bytes).unwrap();
    read_ack(&mut s, wait)
}

/// What comes back on `s` until an MLLP end marker, the connection
/// closing, or `wait` passing.
fn read_ack(s: &mut TcpStream, wait: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"\x1c\r") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fn framed(message: &str) -> Vec<u8> {
    let mut v = vec![0x0b];
    v.extend_from_slice(message.as_bytes());
    v.extend_from_slice(b"\x1c\r");
    v
}

/// The segments of an ACK frame, as text.
fn segments(ack: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(ack)
        .trim_matches(['\x0b', '\x1c', '\r'])
        .to_string();
    text.split('\r').map(str::to_string).collect()
}

fn write(host: &Host, name: &str, content: &str) -> PathBuf {
    let p = host.path(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn python_client_is_acked_after_commit_and_resends_are_not_reprocessed() {
    let (host, port, _) = host(FOLDER_OUT, "");
    let m1 = write(&host, "m1.hl7", &adt_a04("C1", "P1"));
    let m2 = write(&host, "m2.hl7", &adt_a04("C2", "P2"));
    assert_eq!(
        peer_send(Python, port, &[m1.clone(), m2]),
        ["AA C1", "AA C2"]
    );
    // The ACK came after the commit: both events are in the journal.
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM events WHERE source = 'in'"),
        2
    );
    let out = host.wait_outputs(2, T);
    assert!(
        out[0]
            .1
            .starts_with("MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||ADT^A04^ADT_A01|C1|")
    );

    // A resend gets the very same ACK and is not processed again.
    let first = raw(port, &framed(&adt_a04("C3", "P3")), T);
    let again = raw(port, &framed(&adt_a04("C3", "P3")), T);
    assert_eq!(first, again);
    assert!(segments(&first)[1].starts_with("MSA|AA|C3"));
    assert_eq!(peer_send(Python, port, &[m1]), ["AA C1"]);
    host.wait_log("duplicate: answered with the original ACK", T);
    // A message sent after the resends is processed; the resends were not.
    let m4 = write(&host, "m4.hl7", &adt_a04("C4", "P4"));
    assert_eq!(peer_send(Python, port, &[m4]), ["AA C4"]);
    let out = host.wait_outputs(4, T);
    assert!(out[3].1.contains("|C4|"), "{out:?}");
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM events WHERE source = 'in'"),
        4
    );
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 4, T);
    assert_eq!(host.outputs().len(), 4);
}

#[test]
fn bad_input_gets_ar_with_a_reason_and_the_listener_keeps_going() {
    let (host, port, _) = host(FOLDER_OUT, "");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (framed("this is not hl7"), "100^Segment sequence error"),
        (
            framed("MSH|^^|A|B|C|D|1||ADT^A04|W1|P|2.5\r"),
            "bad MSH delimiters",
        ),
        (
            [&b"\x0bMSH|^~\\&|A|B|C|D|1||ADT^A04|U1|P|2.5\rPID|1||M\xfcller\x1c\r"[..]].concat(),
            "byte 45 is not valid utf-8",
        ),
        (
            framed("MSH|^~\\&|A|B|C|D|1||ADT^A04|E1|P|2.5||||||EBCDIC\r"),
            "unsupported character set",
        ),
    ];
    for (bytes, why) in &cases {
        let ack = segments(&raw(port, bytes, T));
        assert!(ack[1].starts_with("MSA|AR|"), "{ack:?}");
        assert!(
            ack[2].starts_with("ERR|") && ack.join("\r").contains(why),
            "{why}: {ack:?}"
        );
    }
    // Known MSH fields are used in the NACK.
    let ack = segments(&raw(port, &cases[1].0, T));
    assert_eq!(
        ack[1],
        "MSA|AR|W1|bad MSH delimiters: MSH-2 must hold 4 or 5 encoding characters, found 2"
    );

    // Oversized: AR, then the connection is closed.
    let huge = framed(&format!(
        "{}NTE|1||{}\r",
        adt_a04("H1", "P"),
        "x".repeat(8000)
    ));
    let ack = segments(&raw(port, &huge, T));
    assert!(
        ack.join("\r")
            .contains("larger than max_message_kb = 4 KiB"),
        "{ack:?}"
    );
    // A frame that never ends, then a hang-up: nothing journaled.
    raw(
        port,
        b"\x0bMSH|^~\\&|A|B|C|D|1||ADT^A04|T1|P|2.5\rPID|1",
        Duration::from_millis(200),
    );
    // Bytes around frames are ignored.
    let ack = segments(&raw(
        port,
        &[&b"junk"[..], &framed(&adt_a04("G1", "P"))].concat(),
        T,
    ));
    assert!(ack[1].starts_with("MSA|AA|G1"));

    let good = write(&host, "good.hl7", &adt_a04("OK1", "P1"));
    assert_eq!(peer_send(Python, port, &[good]), ["AA OK1"]);
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM events"), 2);
    let log = host.log();
    assert_eq!(log.matches("rejected (AR)").count(), 6, "{log}");
    assert!(log.contains("ignored bytes outside MLLP frames"));
}

#[test]
fn enhanced_mode_and_application_acks() {
    let (host, port, app_port) = host(FOLDER_OUT, "");
    let enhanced = |id: &str, msh15: &str| {
        adt_a04(id, "P1").replace("|P|2.5.1\r", &format!("|P|2.5.1|||{msh15}|NE\r"))
    };
    let ack = segments(&raw(port, &framed(&enhanced("E1", "AL")), T));
    assert!(ack[1].starts_with("MSA|CA|E1"), "{ack:?}");
    // NE and ER (on success): no accept ACK at all, but the message is in.
    // Followed on the same connection by one asking for an ACK: the first
    // ACK to come back is that one's.
    for (id, msh15) in [("E2", "NE"), ("E3", "ER")] {
        let then = format!("{id}AL");
        let both = [framed(&enhanced(id, msh15)), framed(&enhanced(&then, "AL"))].concat();
        let ack = segments(&raw(port, &both, T));
        assert_eq!(
            ack[1].split('|').take(3).collect::<Vec<_>>(),
            ["MSA", "CA", &then]
        );
        assert_eq!(ack.iter().filter(|s| s.starts_with("MSA")).count(), 1);
    }
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM events WHERE control_id LIKE 'E%'"),
        5
    );

    // Application mode: the bot runs first; its outcome is the ACK.
    let ack = segments(&raw(app_port, &framed(&adt_a04("A1", "P1")), T));
    assert!(ack[1].starts_with("MSA|AA|A1"), "{ack:?}");
    // The bot's output was committed before the ACK went out.
    let sql = "SELECT COUNT(*) FROM outbox o JOIN events e ON e.id = o.event_id WHERE e.control_id = 'A1'";
    assert_eq!(host.query::<i64>(sql), 1);
    // The bot's failure goes back as "processing failed" (see
    // `bot_failures_reach_the_sender_only_with_detailed_errors`).
    let ack = segments(&raw(app_port, &framed(&adt_a04("PANIC1", "P1")), T));
    assert!(ack[1].starts_with("MSA|AE|PANIC1"), "{ack:?}");
    assert!(ack[2].contains("processing failed (event "), "{ack:?}");
    let ack = segments(&raw(app_port, &framed(&adt_a04("LOOP1", "P1")), T));
    assert!(
        ack[1].starts_with("MSA|AE|LOOP1") && ack[2].contains("processing failed (event "),
        "{ack:?}"
    );
    host.wait_log("timed out after 500 ms", T);
}

#[test]
fn delivery_waits_for_aa_and_dead_letters_ar() {
    let peer_port = free_port();
    let (host, port, _) = host(&mllp_out(peer_port, ""), "");
    let log = host.path("peer.log");
    let peer = PeerServer::start(Python, peer_port, "aa", &log);
    let m = write(&host, "m.hl7", &adt_a04("D1", "P1"));
    assert_eq!(peer_send(Python, port, &[m]), ["AA D1"]);
    assert!(wait_until(T, || peer.received().len() == 1));
    let (control, text) = &peer.received()[0];
    assert_eq!(control, "D1");
    // MSH-4 and MSH-6 from the destination; the bot's ZPR segment.
    assert!(
        text.starts_with("MSH|^~\\&|REG|BF|INTERLINK|EPIC|20260101120000||ADT^A04^ADT_A01|D1|"),
        "{text}"
    );
    assert!(text.contains("\rZPR|v1|1"), "{text}");
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 1, T);
    drop(peer);

    // A receiver answering AR: dead-lettered with its reason, not retried.
    let peer = PeerServer::start(Python, peer_port, "ar", &host.path("peer-ar.log"));
    let m = write(&host, "r.hl7", &adt_a04("D2", "P1"));
    assert_eq!(peer_send(Python, port, &[m]), ["AA D2"]);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'dead'", 1, T);
    let reason: String = host.query("SELECT last_error FROM outbox WHERE status = 'dead'");
    assert_eq!(reason, "AR: peer says AR");
    // Not retried: the next message in the queue comes after it, and then
    // nothing more.
    let m = write(&host, "r2.hl7", &adt_a04("D3", "P1"));
    assert_eq!(peer_send(Python, port, &[m]), ["AA D3"]);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'dead'", 2, T);
    let ids: Vec<String> = peer.received().into_iter().map(|(c, _)| c).collect();
    assert_eq!(ids, ["D2", "D3"]);
    drop(peer);

    // The dead letter is visible with its reason, and can be sent again
    // once the receiver is fixed.
    let listed = host.cli(&["outbox", "--dead"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("dead") && text.contains("AR: peer says AR"),
        "{text}"
    );
    let id: i64 = host.query("SELECT MIN(id) FROM outbox WHERE status = 'dead'");
    let peer = PeerServer::start(Python, peer_port, "aa", &host.path("peer-fixed.log"));
    let resent = host.cli(&["resend", &id.to_string()]);
    assert!(resent.status.success(), "{resent:?}");
    assert!(wait_until(T, || peer.received().len() == 1));
    assert_eq!(peer.received()[0].0, "D2");
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 2, T);
    assert!(!host.cli(&["resend", &id.to_string()]).status.success());
}

#[test]
fn medplum_client_and_server() {
    let peer_port = free_port();
    let (host, port, app_port) = host(&mllp_out(peer_port, ""), "");
    let peer = PeerServer::start(Medplum, peer_port, "aa", &host.path("medplum.log"));
    let m = write(&host, "m.hl7", &adt_a04("MP1", "P1"));
    assert_eq!(peer_send(Medplum, port, &[m]), ["AA MP1"]);
    let a = write(&host, "a.hl7", &adt_a04("MP2", "P1"));
    assert_eq!(peer_send(Medplum, app_port, &[a]), ["AA MP2"]);
    let p = write(&host, "p.hl7", &adt_a04("PANIC7", "P1"));
    assert_eq!(peer_send(Medplum, app_port, &[p]), ["AE PANIC7"]);
    // Both forwarded messages reach @medplum/hl7's server and are ACKed.
    assert!(
        wait_until(T, || peer.received().len() == 2),
        "{:?}",
        peer.received()
    );
    let ids: Vec<String> = peer.received().into_iter().map(|(c, _)| c).collect();
    assert_eq!(ids, ["MP1", "MP2"]);
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 2, T);
    drop(peer);
    let _peer = PeerServer::start(Medplum, peer_port, "ar", &host.path("medplum-ar.log"));
    let r = write(&host, "r.hl7", &adt_a04("MP3", "P1"));
    assert_eq!(peer_send(Medplum, port, &[r]), ["AA MP3"]);
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE status = 'dead' AND last_error LIKE 'AR%'",
        1,
        T,
    );
}

#[test]
fn destination_down_then_up_gets_everything_in_order_and_ae_is_retried() {
    let peer_port = free_port();
    let (host, port, _) = host(&mllp_out(peer_port, ""), "");
    let files: Vec<PathBuf> = (1..=3)
        .map(|i| {
            write(
                &host,
                &format!("q{i}.hl7"),
                &adt_a04(&format!("Q{i}"), "P1"),
            )
        })
        .collect();
    assert_eq!(peer_send(Python, port, &files), ["AA Q1", "AA Q2", "AA Q3"]);
    // Nobody listens: the head of the queue is retried, nothing is lost.
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE attempts >= 2 AND status = 'pending'",
        1,
        T,
    );
    let peer = PeerServer::start(Python, peer_port, "aa", &host.path("peer.log"));
    assert!(
        wait_until(T, || peer.received().len() >= 3),
        "{:?}",
        peer.received()
    );
    let order: Vec<String> = peer.received().into_iter().map(|(c, _)| c).collect();
    assert_eq!(order, ["Q1", "Q2", "Q3"]);
    drop(peer);

    // AE is retried by default.
    let peer = PeerServer::start(Python, peer_port, "ae", &host.path("peer-ae.log"));
    let m = write(&host, "ae.hl7", &adt_a04("AE1", "P1"));
    assert_eq!(peer_send(Python, port, &[m]), ["AA AE1"]);
    assert!(wait_until(T, || peer.received().len() >= 2));
    let row: String = host.query("SELECT status || ' ' || last_error FROM outbox WHERE id = 4");
    assert_eq!(row, "pending AE: peer says AE");
    drop(peer);

    // A receiver that never answers: timeout, connection dropped, retried.
    let _peer = PeerServer::start(Python, peer_port, "silent", &host.path("peer-silent.log"));
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE last_error = 'no ACK within 1 s'",
        1,
        T,
    );
}

#[test]
fn parallel_connections_keep_per_patient_order() {
    let peer_port = free_port();
    let out = mllp_out(peer_port, "connections = 4\nordering_key = \"PID-3.1\"");
    let (host, port, _) = host(&out, "");
    let peer = PeerServer::start(Python, peer_port, "aa", &host.path("peer.log"));
    let files: Vec<PathBuf> = (0..40)
        .map(|i| {
            write(
                &host,
                &format!("p{i}.hl7"),
                &adt_a04(&format!("K{i:02}"), &format!("PAT{}", i % 4)),
            )
        })
        .collect();
    assert_eq!(peer_send(Python, port, &files).len(), 40);
    assert!(
        wait_until(T, || peer.received().len() >= 40),
        "{:?}",
        peer.received().len()
    );
    for patient in 0..4 {
        let got: Vec<String> = peer
            .received()
            .into_iter()
            .filter(|(_, text)| text.contains(&format!("|PAT{patient}^")))
            .map(|(c, _)| c)
            .collect();
        let want: Vec<String> = (0..40)
            .filter(|i| i % 4 == patient)
            .map(|i| format!("K{i:02}"))
            .collect();
        assert_eq!(got, want, "patient {patient}");
    }
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 40, T);
    // Four patients over four lanes: more than one connection was used.
    assert!(
        peer.connections() > 1,
        "{} connection(s)",
        peer.connections()
    );
}

/// The crash storm (`tests/crash.rs`): 2,000 messages, 25 SIGKILLs at
/// random moments, four ordered lanes to python-hl7; nothing ACKed is lost,
/// per-patient order holds, and every duplicate delivery is one whose ACK
/// was lost in a crash.
fn sigkill_under_load_loses_no_acked_message(ack: AckMode) {
    let outcome = Storm::new(ack, 2000, 25).run();
    eprintln!("{outcome}");
}

#[test]
fn sigkill_under_load_loses_no_acked_message_commit_acks() {
    sigkill_under_load_loses_no_acked_message(AckMode::Commit);
}

#[test]
fn sigkill_under_load_loses_no_acked_message_application_acks() {
    sigkill_under_load_loses_no_acked_message(AckMode::Application);
}

#[test]
fn tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    interlink_tests::test_pki(dir.path());
    let port = free_port();
    let cfg = format!(
        "[[listener]]\nname = \"secure\"\nlisten = \"127.0.0.1:{port}\"\n\
         tls = {{ cert = \"{}\", key = \"{}\", client_ca = \"{}\" }}\n",
        path("server.pem").display(),
        path("server.key").display(),
        path("ca.pem").display()
    );
    let mut host = Host::new(&interlink_tests::config(&cfg));
    host.start();
    let msg = write(&host, "m.hl7", &adt_a04("TLS1", "P1"));
    let send = |extra: &[&str]| {
        std::process::Command::new(interlink_bin())
            .args([
                "send",
                "--to",
                &format!("127.0.0.1:{port}"),
                "--timeout",
                "5",
                "--server-name",
                "localhost",
            ])
            .args(extra)
            .arg(&msg)
            .output()
            .unwrap()
    };
    let ca = path("ca.pem");
    let (cert, key) = (path("client.pem"), path("client.key"));
    let ok = send(&[
        "--tls-ca",
        ca.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "TLS1: AA");

    // No client certificate: refused.
    let refused = send(&["--tls-ca", ca.to_str().unwrap()]);
    assert!(!refused.status.success());
    host.wait_log("TLS handshake refused", T);
    // Plain MLLP to a TLS listener gets no ACK (only a TLS alert).
    let answer = raw(
        port,
        &framed(&adt_a04("PLAIN", "P")),
        Duration::from_millis(500),
    );
    assert!(!String::from_utf8_lossy(&answer).contains("MSA"));
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM events"), 1);
}

#[test]
fn a_full_journal_refuses_messages_and_loses_none_it_acked() {
    if skip_unless_sqlite("max_size_mb caps an SQLite file") {
        return;
    }
    let port = free_port();
    let cfg = format!(
        "[journal]\npath = \"data/interlink.db\"\nmax_size_mb = 1\n[plugins]\ndir = \"plugins\"\n\
         [[listener]]\nname = \"in\"\nlisten = \"127.0.0.1:{port}\"\nmax_message_kb = 64\n"
    );
    let mut host = Host::new(&cfg);
    host.start();
    let payload = "x".repeat(30_000);
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let id = format!("F{i:03}");
        let msg = format!("{}NTE|1||{payload}\r", adt_a04(&id, "P1"));
        let ack = segments(&raw(port, &framed(&msg), T));
        if ack[1].starts_with("MSA|AA|") {
            acked.push(id);
        } else {
            assert!(ack[1].starts_with(&format!("MSA|AR|{id}")), "{ack:?}");
            assert!(
                ack.join("\r").contains("not stored") && ack.join("\r").contains("full"),
                "{ack:?}"
            );
            refused.push(id);
            if refused.len() == 3 {
                break;
            }
        }
    }
    assert!(
        acked.len() > 10 && refused.len() == 3,
        "acked {}, refused {}",
        acked.len(),
        refused.len()
    );
    host.wait_log("not journaled, sender must resend", T);
    // Every message that was ACKed is in the journal; none that was refused.
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM events") as usize,
        acked.len()
    );
    let last: String = host.query("SELECT control_id FROM events ORDER BY id DESC LIMIT 1");
    assert_eq!(&last, acked.last().unwrap());
}

/// A host with the probe bot (10 s per event; its `SLOW` messages take
/// 1.5 s), folder destination `out`, and the given listeners.
fn slow_host(listeners: &str) -> Host {
    let cfg = base_config(&format!(
        "[bots.probe]\nsettings = {{ slow_ms = \"1500\" }}\n{FOLDER_OUT}\n{listeners}"
    ))
    .replace("timeout_ms = 500", "timeout_ms = 10000");
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host
}

fn listener(name: &str, port: u16, extra: &str) -> String {
    format!("[[listener]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n{extra}\n")
}

/// The ACK recorded for the message with MSH-10 `control_id`, framed as sent.
fn recorded_ack(host: &Host, control_id: &str) -> Vec<u8> {
    let ack: Vec<u8> = host.query(&format!(
        "SELECT ack FROM received WHERE control_id = '{control_id}'"
    ));
    [&[0x0b][..], &ack, b"\x1c\r"].concat()
}

#[test]
fn application_ack_resends_get_the_bots_answer_never_aa() {
    let (port, short_port) = (free_port(), free_port());
    let mut host = slow_host(&format!(
        "{}{}",
        listener(
            "app",
            port,
            "ack = \"application\"\napplication_timeout_ms = 10000"
        ),
        listener(
            "short",
            short_port,
            "ack = \"application\"\napplication_timeout_ms = 300"
        ),
    ));
    let slow = framed(&adt_a04("SLOWAR1", "P1"));

    // The first copy waits for the bot; a resend on another connection
    // while the bot works waits on the same run.
    let first = std::thread::spawn({
        let slow = slow.clone();
        move || raw(port, &slow, T)
    });
    host.wait_query(
        "SELECT COUNT(*) FROM runs WHERE status = 'pending' AND event_id = 1",
        1,
        T,
    );
    let resend = raw(port, &slow, T);
    let first = first.join().unwrap();
    let ack = segments(&first);
    assert!(ack[1].starts_with("MSA|AR|SLOWAR1"), "{ack:?}");
    assert!(ack.join("\r").contains("probe refuses"), "{ack:?}");
    assert_eq!(resend, first);
    // Later resends get the recorded ACK byte for byte.
    assert_eq!(recorded_ack(&host, "SLOWAR1"), first);
    assert_eq!(raw(port, &slow, T), first);
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM events"), 1);
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM runs"), 1);

    // A listener that stops waiting answers AE "resend later" (not AA);
    // the bot's answer is still recorded for the resend.
    let slow = framed(&adt_a04("SLOWAR2", "P1"));
    let ack = segments(&raw(short_port, &slow, T));
    assert!(
        ack[1].starts_with("MSA|AE|SLOWAR2") && ack.join("\r").contains("resend later"),
        "{ack:?}"
    );
    host.wait_query(
        "SELECT COUNT(*) FROM received WHERE control_id = 'SLOWAR2' AND ack IS NOT NULL",
        1,
        T,
    );
    let resend = raw(short_port, &slow, T);
    assert!(segments(&resend)[1].starts_with("MSA|AR|SLOWAR2"));
    assert_eq!(resend, recorded_ack(&host, "SLOWAR2"));

    // A crash while the bot works: after the restart the run is done
    // again, and a resend waits on it.
    let slow = framed(&adt_a04("SLOWAR3", "P1"));
    let cut = std::thread::spawn({
        let slow = slow.clone();
        move || raw(port, &slow, T)
    });
    host.wait_query(
        "SELECT COUNT(*) FROM runs r JOIN events e ON e.id = r.event_id
         WHERE e.control_id = 'SLOWAR3' AND r.status = 'pending'",
        1,
        T,
    );
    host.kill();
    assert!(cut.join().unwrap().is_empty());
    host.start();
    assert!(wait_until(T, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    let resend = raw(port, &slow, T);
    let ack = segments(&resend);
    assert!(ack[1].starts_with("MSA|AR|SLOWAR3"), "{ack:?}");
    assert_eq!(resend, recorded_ack(&host, "SLOWAR3"));
    assert_eq!(raw(port, &slow, T), resend);
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM events WHERE control_id = 'SLOWAR3'"),
        1
    );
}

#[test]
fn fifty_simultaneous_copies_are_journaled_once_and_get_one_ack() {
    let (port, app_port) = (free_port(), free_port());
    let host = slow_host(&format!(
        "{}{}",
        listener("in", port, ""),
        listener("app", app_port, "ack = \"application\""),
    ));
    for (port, id) in [(port, "DUPC"), (app_port, "DUPA")] {
        let copies = 50;
        // Open every connection first, then write on all at once.
        let streams: Vec<TcpStream> = (0..copies)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let barrier = Arc::new(Barrier::new(copies));
        let message = framed(&adt_a04(id, "P1"));
        let senders: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                let (barrier, message) = (barrier.clone(), message.clone());
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(T)).unwrap();
                    barrier.wait();
                    s.write_all(&message).unwrap();
                    let mut ack = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !ack.ends_with(b"\x1c\r") {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "closed without an ACK");
                        ack.extend_from_slice(&buf[..n]);
                    }
                    ack
                })
            })
            .collect();
        let acks: Vec<Vec<u8>> = senders.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(segments(&acks[0])[1].starts_with(&format!("MSA|AA|{id}")));
        assert!(acks.iter().all(|a| a == &acks[0]), "{id}: ACKs differ");
        assert_eq!(acks[0], recorded_ack(&host, id));
        let events = format!("SELECT COUNT(*) FROM events WHERE control_id = '{id}'");
        assert_eq!(host.query::<i64>(&events), 1, "{id}");
        let runs = format!(
            "SELECT COUNT(*) FROM runs r JOIN events e ON e.id = r.event_id
             WHERE e.control_id = '{id}' AND r.status = 'done'"
        );
        host.wait_query(&runs, 1, T);
    }
    // One bot run each: the probe counted two messages and sent two.
    let out = host.wait_outputs(2, T);
    assert_eq!(out.len(), 2);
    let count: Vec<u8> = host.query("SELECT value FROM kv WHERE key = 'count'");
    assert_eq!(count, b"2");
    let log = host.log();
    assert_eq!(log.matches("duplicate: answered").count(), 98, "{log}");
}

#[test]
fn connections_beyond_max_connections_are_refused_and_logged() {
    let port = free_port();
    let host = slow_host(&listener("in", port, "max_connections = 2"));
    let send = |s: &mut TcpStream, id: &str| -> Vec<u8> {
        let _ = s.write_all(&framed(&adt_a04(id, "P1")));
        read_ack(s, T)
    };
    let connect = || TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut a, mut b) = (connect(), connect());
    assert!(segments(&send(&mut a, "MC1"))[1].starts_with("MSA|AA|MC1"));
    assert!(segments(&send(&mut b, "MC2"))[1].starts_with("MSA|AA|MC2"));
    // A third is accepted and closed at once: no ACK, nothing journaled.
    assert!(send(&mut connect(), "MC3").is_empty());
    host.wait_log("refused 1 connection(s): max_connections = 2 are open", T);

    // A flood is logged with counts, not once per connection.
    let flood = 30;
    for _ in 0..flood {
        assert!(send(&mut connect(), "MC4").is_empty());
    }
    let refused = || -> usize {
        host.log()
            .lines()
            .filter_map(|l| {
                l.split("refused ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum()
    };
    assert!(wait_until(T, || refused() == flood + 1), "{}", host.log());
    let lines = host.log().matches("max_connections = 2 are open").count();
    assert!(lines < 10, "{lines} log lines for {} refusals", flood + 1);

    // A slot freed is a connection served again (once the listener has
    // seen `a` close; until then a new connection is still refused).
    drop(a);
    assert!(wait_until(T, || {
        segments(&send(&mut connect(), "MC5"))
            .get(1)
            .is_some_and(|msa| msa.starts_with("MSA|AA|MC5"))
    }));
    assert!(segments(&send(&mut b, "MC6"))[1].starts_with("MSA|AA|MC6"));
    let ids: Vec<String> = host.query_col("SELECT control_id FROM events ORDER BY id");
    assert_eq!(ids, ["MC1", "MC2", "MC5", "MC6"]);
}

#[test]
fn bot_failures_reach_the_sender_only_with_detailed_errors() {
    let (port, detailed_port) = (free_port(), free_port());
    let _host = slow_host(&format!(
        "{}{}",
        listener("app", port, "ack = \"application\""),
        listener(
            "detailed",
            detailed_port,
            "ack = \"application\"\ndetailed_errors = true"
        ),
    ));
    let ack = segments(&raw(port, &framed(&adt_a04("FAILPHI1", "MRN123")), T));
    assert!(ack[1].starts_with("MSA|AE|FAILPHI1"), "{ack:?}");
    assert!(ack[2].contains("processing failed (event 1)"), "{ack:?}");
    let text = ack.join("\r");
    assert!(!text.contains("MRN123") && !text.contains("DOE"), "{ack:?}");

    let ack = segments(&raw(
        detailed_port,
        &framed(&adt_a04("FAILPHI2", "MRN456")),
        T,
    ));
    assert!(ack[1].starts_with("MSA|AE|FAILPHI2"), "{ack:?}");
    assert!(
        ack[2].contains("cannot register patient MRN456 DOE"),
        "{ack:?}"
    );
}
