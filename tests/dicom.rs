//! DICOM against real peers: the Modality Worklist SCP (`[[dicom]]`)
//! answering DCMTK's `echoscu`/`findscu` and pynetdicom from the worklist
//! the encounter-worklist bot builds out of an ADT feed over MLLP
//! (python-hl7); and C-STORE destinations (`kind = "dicom"`) delivering
//! the results-to-ehr bot's PACS push to DCMTK's `storescp`, or to a
//! pynetdicom SCP that refuses it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use interlink_tests::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const STEP: &str = "ScheduledProcedureStepSequence";

/// A DCMTK tool: from Debian's `dcmtk` (pynetdicom installs Python apps
/// of the same names, which may come first on the PATH).
fn dcmtk(tool: &str) -> Command {
    Command::new(Path::new("/usr/bin").join(tool))
}

/// `tests/peers/dicom_peer.py`, pynetdicom as a peer.
fn dicom_peer() -> Command {
    let mut c = Command::new("python3");
    c.arg(root().join("tests/peers/dicom_peer.py"));
    c
}

fn pynetdicom(args: &[&str]) -> Output {
    dicom_peer().args(args).output().expect("run pynetdicom")
}

/// DCMTK's `echoscu` calling as `calling`: it must succeed.
fn echoscu(port: u16, calling: &str) {
    let echo = dcmtk("echoscu")
        .args([
            "-aet",
            calling,
            "-aec",
            "INTERLINK",
            "127.0.0.1",
            &port.to_string(),
        ])
        .output()
        .expect("run echoscu");
    assert!(
        echo.status.success(),
        "echoscu: {}",
        String::from_utf8_lossy(&echo.stderr)
    );
}

fn pynetdicom_json(args: &[&str]) -> Value {
    let out = pynetdicom(args);
    assert!(
        out.status.success(),
        "pynetdicom {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("pynetdicom prints JSON")
}

fn fixture(name: &str) -> PathBuf {
    plugin_fixture("encounter-worklist", name)
}

/// A host with an MLLP listener, the encounter-worklist bot, a worklist
/// SCP `mwl` on the returned port (modalities in Auckland, station US01)
/// and a second one, `broken`, whose path the bot does not serve.
fn worklist_host() -> (Host, u16, u16, u16) {
    let (mllp, scp, broken) = (free_port(), free_port(), free_port());
    let cfg = config(&format!(
        r#"
[[listener]]
name = "adt"
listen = "127.0.0.1:{mllp}"

[[dicom]]
name = "mwl"
listen = "127.0.0.1:{scp}"
ae_title = "INTERLINK"
allowed_callers = ["US01", "FINDSCU"]
timezone = "Pacific/Auckland"
bot = "encounter-worklist"
station_ae = "US01"

[[dicom]]
name = "broken"
listen = "127.0.0.1:{broken}"
ae_title = "INTERLINK"
bot = "encounter-worklist"
path = "/worklist/NO-SUCH-ACCESSION"

[bots.encounter-worklist.settings]
accession_prefix = "BF"
timezone = "America/Chicago"
procedure_id = "US-ABD"
procedure_description = "Abdominal ultrasound"
"#
    ));
    let host = Host::new(&cfg);
    host.install_bot("encounter_worklist", "encounter_worklist.wasm");
    (host, mllp, scp, broken)
}

/// Feeds three encounters over MLLP and waits for the bot to take them.
fn feed(host: &Host, mllp: u16) {
    let files: Vec<PathBuf> = ["a04_register.hl7", "a01_admit.hl7", "a05_preadmit.hl7"]
        .iter()
        .map(|f| fixture(f))
        .collect();
    assert_eq!(
        peer_send(Peer::Python, mllp, &files),
        ["AA REG0001", "AA ADM0001", "AA PRE0001"]
    );
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 3, WAIT);
}

/// The keys both peers ask with: every return key, and `matching`.
fn keys(matching: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut keys: BTreeMap<String, String> = [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "AdmissionID",
        "CurrentPatientLocation",
        "ReferringPhysicianName",
        "STEP.Modality",
        "STEP.ScheduledStationAETitle",
        "STEP.ScheduledProcedureStepStartDate",
        "STEP.ScheduledProcedureStepStartTime",
        "STEP.ScheduledPerformingPhysicianName",
        "STEP.ScheduledProcedureStepID",
        "STEP.ScheduledProcedureStepDescription",
    ]
    .iter()
    .map(|k| (k.to_string(), String::new()))
    .collect();
    for (k, v) in matching {
        keys.insert(k.to_string(), v.to_string());
    }
    keys.into_iter().collect()
}

/// `findscu -W` with `keys` (`STEP.` for the scheduled procedure step):
/// whether it succeeded, what it logged, and each response's keys by
/// keyword (the step's as `STEP.<keyword>`), read back with `dcmdump`.
fn findscu(
    port: u16,
    calling: &str,
    called: &str,
    keys: &[(String, String)],
) -> (bool, String, Vec<BTreeMap<String, String>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dcmtk("findscu");
    cmd.args(["-W", "-X", "-od"]).arg(dir.path()).args([
        "-aet",
        calling,
        "-aec",
        called,
        "127.0.0.1",
        &port.to_string(),
    ]);
    for (k, v) in keys {
        let k = k.replace("STEP.", &format!("{STEP}[0]."));
        cmd.args(["-k", &format!("{k}={v}")]);
    }
    let out = cmd.output().expect("run findscu");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let responses = files.iter().map(|f| dcmdump(f)).collect();
    (out.status.success(), log, responses)
}

/// A DICOM file's elements by keyword (in a sequence: `STEP.<keyword>`).
fn dcmdump(file: &Path) -> BTreeMap<String, String> {
    let out = dcmtk("dcmdump").arg(file).output().expect("run dcmdump");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let indented = line.starts_with("  ");
        let line = line.trim_start();
        if !line.starts_with('(') || line.starts_with("(fffe") || line.starts_with("(0002") {
            continue;
        }
        let keyword = line.rsplit(' ').next().unwrap_or_default();
        let value = match (line.find('['), line.rfind(']')) {
            (Some(a), Some(b)) if a < b => line[a + 1..b].to_string(),
            _ => String::new(),
        };
        let key = match indented {
            true => format!("STEP.{keyword}"),
            false => keyword.to_string(),
        };
        fields.insert(key, value);
    }
    fields
}

/// pynetdicom's matches in the same shape as [`findscu`]'s.
fn pynetdicom_find(
    port: u16,
    keys: &[(String, String)],
) -> (String, Vec<BTreeMap<String, String>>) {
    let args: Vec<String> = keys
        .iter()
        .map(|(k, v)| format!("{}={v}", k.replace("STEP.", &format!("{STEP}."))))
        .collect();
    let mut all = vec!["find".to_string(), port.to_string()];
    all.extend(args);
    let out = pynetdicom_json(&all.iter().map(String::as_str).collect::<Vec<_>>());
    let matches = out["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.replace(&format!("{STEP}."), "STEP."),
                        v.as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .collect();
    (out["status"].as_str().unwrap().to_string(), matches)
}

/// What identifies each match: patient id, accession, study UID, step
/// start date and time.
fn summary(responses: &[BTreeMap<String, String>]) -> Vec<[String; 5]> {
    let get = |r: &BTreeMap<String, String>, k: &str| r.get(k).cloned().unwrap_or_default();
    let mut rows: Vec<[String; 5]> = responses
        .iter()
        .map(|r| {
            [
                get(r, "PatientID"),
                get(r, "AccessionNumber"),
                get(r, "StudyInstanceUID"),
                get(r, "STEP.ScheduledProcedureStepStartDate"),
                get(r, "STEP.ScheduledProcedureStepStartTime"),
            ]
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn findscu_reads_the_worklist_an_adt_feed_built() {
    let (mut host, mllp, scp, _) = worklist_host();
    host.start();
    feed(&host, mllp);

    echoscu(scp, "US01");

    let (ok, log, all) = findscu(scp, "US01", "INTERLINK", &keys(&[]));
    assert!(ok, "{log}\n{}", host.log());
    assert_eq!(all.len(), 3, "{log}");
    let by_id = |id: &str| all.iter().find(|r| r["PatientID"] == id).unwrap();
    let ada = by_id("MRN777");
    assert_eq!(ada["PatientName"], "LOVELACE^ADA^K");
    assert_eq!(ada["PatientBirthDate"], "19701210");
    assert_eq!(ada["PatientSex"], "F");
    assert_eq!(ada["AccessionNumber"], "BF000000000001");
    assert!(ada["StudyInstanceUID"].starts_with("2.25."), "{ada:?}");
    assert_eq!(ada["RequestedProcedureID"], "US-ABD");
    assert_eq!(ada["RequestedProcedureDescription"], "Abdominal ultrasound");
    assert_eq!(ada["STEP.Modality"], "US");
    assert_eq!(ada["STEP.ScheduledStationAETitle"], "US01");
    // Every field the bot gives: a renamed one would come back empty.
    assert_eq!(ada["AdmissionID"], "V123");
    assert_eq!(ada["CurrentPatientLocation"], "ER^12^B");
    assert_eq!(ada["ReferringPhysicianName"], "SMITH^JOHN");
    assert_eq!(ada["STEP.ScheduledPerformingPhysicianName"], "SMITH^JOHN");
    assert_eq!(ada["STEP.ScheduledProcedureStepID"], "BF000000000001");
    assert_eq!(
        ada["STEP.ScheduledProcedureStepDescription"],
        "Abdominal ultrasound"
    );
    // 02:55 in Chicago is 21:55 the same day in Auckland (NZDT, +13)...
    assert_eq!(ada["STEP.ScheduledProcedureStepStartDate"], "20261124");
    assert_eq!(ada["STEP.ScheduledProcedureStepStartTime"], "215500");
    // ... and 08:00 on the 25th is 03:00 on the 26th.
    let grace = by_id("MRN999");
    assert_eq!(grace["STEP.ScheduledProcedureStepStartDate"], "20261126");
    assert_eq!(grace["STEP.ScheduledProcedureStepStartTime"], "030000");
    assert_eq!(grace["AccessionNumber"], "BF000000000003");

    // The same accession has the same study every time.
    let (_, _, again) = findscu(
        scp,
        "US01",
        "INTERLINK",
        &keys(&[("AccessionNumber", "BF000000000001")]),
    );
    assert_eq!(summary(&again), summary(std::slice::from_ref(ada)));

    let ids = |matching: &[(&str, &str)]| {
        let (ok, log, found) = findscu(scp, "US01", "INTERLINK", &keys(matching));
        assert!(ok, "{matching:?}: {log}");
        let mut ids: Vec<String> = found.iter().map(|r| r["PatientID"].clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&[("PatientName", "LOVE*")]), ["MRN777"]);
    assert_eq!(ids(&[("PatientName", "*GRACE*")]), ["MRN999"]);
    assert_eq!(ids(&[("PatientName", "B?BBAGE^CHARLES")]), ["MRN888"]);
    let date = "STEP.ScheduledProcedureStepStartDate";
    assert_eq!(ids(&[(date, "20261124-20261125")]), ["MRN777", "MRN888"]);
    assert_eq!(ids(&[(date, "20261126-")]), ["MRN999"]);
    assert_eq!(
        ids(&[
            (date, "20261124"),
            ("STEP.ScheduledProcedureStepStartTime", "2155-2155")
        ]),
        ["MRN777"]
    );
    assert_eq!(
        ids(&[("STEP.Modality", "US"), ("PatientID", "MRN888")]),
        ["MRN888"]
    );
    // Empty results: a patient not on the list, another modality, another
    // station.
    assert!(ids(&[("PatientID", "MRN000")]).is_empty());
    assert!(ids(&[("STEP.Modality", "CT")]).is_empty());
    assert!(ids(&[("STEP.ScheduledStationAETitle", "US02")]).is_empty());

    // A wrong called AE title, and a caller not allowed, are rejected.
    let (ok, log, found) = findscu(scp, "US01", "SOMEONE", &keys(&[]));
    assert!(!ok && found.is_empty());
    assert!(log.contains("Called AE Title Not Recognized"), "{log}");
    let (ok, log, _) = findscu(scp, "INTRUDER", "INTERLINK", &keys(&[]));
    assert!(!ok);
    assert!(log.contains("Calling AE Title Not Recognized"), "{log}");
    host.wait_log("association rejected", WAIT);

    // Queries are not journaled, and the log holds no patient data.
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM events WHERE kind = 'http'"),
        0
    );
    assert_eq!(
        host.log_lines(&|l| l.contains("MRN") || l.contains("LOVELACE")),
        0
    );
}

#[test]
fn pynetdicom_gets_the_same_answer_cancels_and_associates_twenty_times_at_once() {
    let (mut host, mllp, scp, broken) = worklist_host();
    host.start();
    feed(&host, mllp);

    let (ok, log, from_dcmtk) = findscu(scp, "US01", "INTERLINK", &keys(&[]));
    assert!(ok, "{log}");
    let (status, from_pynetdicom) = pynetdicom_find(scp, &keys(&[]));
    assert_eq!(status, "0x0000");
    assert_eq!(summary(&from_pynetdicom), summary(&from_dcmtk));
    assert_eq!(from_pynetdicom.len(), 3);
    let (_, one) = pynetdicom_find(scp, &keys(&[("PatientName", "hopper*")]));
    assert_eq!(one[0]["PatientName"], "HOPPER^GRACE^B");

    // A C-CANCEL right behind the C-FIND stops it before its matches.
    let statuses = pynetdicom_json(&["cancel", &scp.to_string()]);
    assert_eq!(statuses, json!(["0xFE00"]));

    let counts = pynetdicom_json(&["concurrent", &scp.to_string(), "20"]);
    assert_eq!(counts, json!(vec![3; 20]));

    // The bot's failure is a failure status with its reason, and the
    // association goes on serving.
    let answers = pynetdicom_json(&["find", &broken.to_string(), "--repeat", "2", "PatientID="]);
    assert_eq!(answers.as_array().unwrap().len(), 2, "{answers}");
    for answer in answers.as_array().unwrap() {
        assert_eq!(answer["status"], "0xC000", "{answers}");
        assert_eq!(
            answer["comment"], "worklist bot: no open encounter has this accession number",
            "{answers}"
        );
    }
    host.wait_log("C-FIND failed", WAIT);
}

#[test]
fn bad_input_is_aborted_or_refused_with_a_log_line_and_others_are_still_served() {
    let (mut host, _, scp, _) = worklist_host();
    host.start();
    // Not DICOM at all; a PDU claiming 4 GiB; a PDU cut short.
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xF0, 0x00, 0x01][..],
        &[0x01, 0x00, 0x00, 0x00, 0x00, 0x44, 0x00, 0x01, 0x00, 0x00][..],
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", scp)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(bytes).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        // Closed, at most after an A-ABORT or A-ASSOCIATE-RJ.
        assert!(
            answer.is_empty() || matches!(answer[0], 0x03 | 0x07),
            "{answer:?}"
        );
    }
    let failed = |l: &str| l.contains("association failed");
    assert!(
        wait_until(WAIT, || host.log_lines(&failed) >= 3),
        "{}",
        host.log()
    );

    // Inside an association: an identifier declaring more bytes than it
    // has, and a command the SCP does not serve.
    let statuses = pynetdicom_json(&["odd", &scp.to_string()]);
    assert_eq!(statuses[0][0], "0xA900", "{statuses}");
    assert!(
        statuses[0][1].as_str().unwrap().contains("declares"),
        "{statuses}"
    );
    assert_eq!(statuses[1][0], "0x0211", "{statuses}");
    host.wait_log("C-FIND refused", WAIT);

    echoscu(scp, "US01");
}

/// A Part-10 ultrasound instance made with DCMTK's `dump2dcm`.
fn us_instance(dir: &Path, accession: &str) -> Vec<u8> {
    let dump = dir.join("us.dump");
    std::fs::write(
        &dump,
        format!(
            "(0008,0016) UI =UltrasoundImageStorage\n\
             (0008,0018) UI [1.2.826.0.1.3680043.2.1143.4242]\n\
             (0008,0050) SH [{accession}]\n\
             (0008,0060) CS [US]\n\
             (0010,0010) PN [LOVELACE^ADA^K]\n\
             (0010,0020) LO [MRN777]\n\
             (0020,000d) UI [2.25.42]\n\
             (0028,0010) US 2\n\
             (0028,0011) US 2\n\
             (7fe0,0010) OB 01\\02\\03\\04\n"
        ),
    )
    .unwrap();
    let file = dir.join("us.dcm");
    let out = dcmtk("dump2dcm")
        .args(["--write-xfer-little"])
        .arg(&dump)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(file).unwrap()
}

/// The data set of a Part-10 file: what follows its file meta group.
fn data_set(file: &[u8]) -> &[u8] {
    assert_eq!(&file[128..132], b"DICM");
    let group_length = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    &file[144 + group_length..]
}

/// A host whose results-to-ehr bot pushes each exam's file to the DICOM
/// destination `pacs` on `pacs_port`, `delay_s` after the exam.
fn pacs_host(pacs_port: u16, delay_s: u32) -> (Host, u16) {
    let http_port = free_port();
    let host = Host::new(&config(&format!(
        r#"{}
[[destination]]
name = "ehr"
kind = "folder"
dir = "ehr"

[[destination]]
name = "pacs"
kind = "dicom"
host = "127.0.0.1"
port = {pacs_port}
called_ae = "PACS"
calling_ae = "INTERLINK"
ack_timeout_s = 5
retry = {{ initial_backoff_ms = 200, max_backoff_s = 1 }}

[bots.results-to-ehr.settings]
ehr_destinations = "ehr"
procedure_id = "US001"
procedure_description = "Point-of-care ultrasound"
pacs_destination = "pacs"
pacs_push_delay_s = "{delay_s}"
"#,
        http_config(http_port)
    )));
    host.install_bot("results_to_ehr", "results_to_ehr.wasm");
    (host, http_port)
}

fn post_exam(http_port: u16, accession: &str, file: &[u8]) {
    use base64::Engine as _;
    let exam = json!({
        "accession": accession, "patient_id": "MRN777", "patient_name": "LOVELACE^ADA^K",
        "birth_date": "19701210", "sex": "F", "visit_number": "V42",
        "exam_time": "2026-11-24T09:15:00Z", "status": "final", "performer": "SMITH^JOHN",
        "report": "Findings: normal.",
        "payload_base64": base64::engine::general_purpose::STANDARD.encode(file),
    });
    let (status, body) = http_post_json(
        http_port,
        "/bots/results-to-ehr/exams",
        WRITE_TOKEN,
        &exam.to_string(),
    );
    assert_eq!(status, 201, "{body}");
}

/// A peer process, killed when dropped (also when a test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// DCMTK's `storescp` as AE title PACS, writing to `dir`.
fn storescp(port: u16, dir: &Path) -> Running {
    Running(
        dcmtk("storescp")
            .args(["-aet", "PACS", "-od"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start storescp"),
    )
}

#[test]
fn the_pacs_push_waits_its_delay_survives_a_down_pacs_and_arrives_over_c_store() {
    let peers = tempfile::tempdir().unwrap();
    let file = us_instance(peers.path(), "BF000000000042");
    let pacs_port = free_port();
    let (mut host, http_port) = pacs_host(pacs_port, 2);
    host.start();
    let posted = Instant::now();
    post_exam(http_port, "BF000000000042", &file);

    // Nothing listens yet: once due, the push fails and is retried.
    host.wait_log("delivery failed, retrying", WAIT);
    assert!(
        posted.elapsed() >= Duration::from_secs(2),
        "sent before its delay"
    );
    let received = peers.path().join("pacs");
    std::fs::create_dir_all(&received).unwrap();
    let _scp = storescp(pacs_port, &received);
    // Sent only after storescp's response, which follows its saving the
    // file: the file is complete by then.
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE destination = 'pacs' AND status = 'sent'",
        1,
        WAIT,
    );
    let stored = std::fs::read_dir(&received)
        .unwrap()
        .next()
        .expect("storescp saved the file")
        .unwrap()
        .path();
    let got = std::fs::read(stored).unwrap();
    assert_eq!(
        data_set(&got),
        data_set(&file),
        "the data set arrives as sent"
    );
}

#[test]
fn a_refusing_pacs_dead_letters_the_file_with_its_status() {
    let peers = tempfile::tempdir().unwrap();
    let file = us_instance(peers.path(), "BF000000000043");
    let pacs_port = free_port();
    let mut scp = Running(
        dicom_peer()
            .args(["store-scp", &pacs_port.to_string(), "A700"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the pynetdicom C-STORE SCP"),
    );
    // The pipe stays open (the peer prints what it receives).
    let mut line = String::new();
    BufReader::new(scp.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "the pynetdicom C-STORE SCP did not start"
    );
    let (mut host, http_port) = pacs_host(pacs_port, 0);
    host.start();
    post_exam(http_port, "BF000000000043", &file);
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE destination = 'pacs' AND status = 'dead'",
        1,
        WAIT,
    );
    let error: String = host.query("SELECT last_error FROM outbox WHERE destination = 'pacs'");
    assert!(
        error.contains("C-STORE refused with status 0xA700"),
        "{error}"
    );
    host.wait_log("dead-lettered", WAIT);
}

#[test]
fn the_scp_shows_in_the_sources_and_the_readiness_check() {
    let (http_port, scp) = (free_port(), free_port());
    let cfg = config(&format!(
        r#"
[[dicom]]
name = "mwl"
listen = "127.0.0.1:{scp}"
ae_title = "INTERLINK"
bot = "encounter-worklist"
{}"#,
        http_config(http_port)
    ));
    let mut host = Host::new(&cfg);
    host.install_bot("encounter_worklist", "encounter_worklist.wasm");
    host.start();
    host.wait_log("worklist SCP listening", WAIT);

    let (status, ready) = http_get_json(http_port, "/ready", READ_TOKEN);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["listeners_unbound"], json!([]));

    // DCMTK's own calling AE title: this SCP allows any.
    echoscu(scp, "ECHOSCU");
    let (status, sources) = http_get_json(http_port, "/api/v1/sources", READ_TOKEN);
    assert_eq!(status, 200, "{sources}");
    let mwl = &sources["dicom"][0];
    assert_eq!(mwl["name"], "mwl");
    assert_eq!(mwl["listen"], format!("127.0.0.1:{scp}"));
    assert_eq!(mwl["ae_title"], "INTERLINK");
    assert_eq!(mwl["bot"], "encounter-worklist");
    assert_eq!(mwl["bound"], true);
    assert_eq!(mwl["messages"], 1, "the C-ECHO: {sources}");
    assert!(mwl["last_message_ms"].is_i64(), "{sources}");
}
