//! Modality Worklist C-FIND benchmark: the host's SCP (`[[dicom]]`, the
//! encounter-worklist bot answering each query) against DCMTK's
//! `wlmscpfs` serving the same items from `.wl` files, in the same run;
//! prints a table, asserts only that both answer alike.
//!
//! `cargo bench -p interlink --bench dicom` after `scripts/setup` (DCMTK,
//! and the bot in `target/test-bots/`).
//!
//! The release host gets 1,000 ADT^A04 over MLLP, so the bot holds 1,000
//! open encounters. The first C-FIND through the host's SCP lists them all;
//! each item is written as a `.wl` file with `dump2dcm` for `wlmscpfs`.
//! Then, for each server, `CLIENTS` clients (this process, dicom-ul) query
//! for `RUN_FOR` each, closed loop, timing every C-FIND until its final
//! status:
//! - one patient by PatientID (1 match of 1,000) on a kept association;
//! - the same, opening a new association for each query (and releasing it);
//! - the whole list (1,000 matches) on a kept association.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, pct, start_host};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_ul::ClientAssociationOptions;
use dicom_ul::association::AsyncClientAssociation;
use interlink::dicom::command::{self, C_FIND_RQ, status};
use interlink::dicom::message::{self, Assembler};
use interlink::dicom::{IMPLICIT_VR_LE, MODALITY_WORKLIST_FIND, read_data_set, write_data_set};
use interlink::mllp::{Frame, FrameReader, frame};
use interlink_tests::{bot_wasm, free_port};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ENCOUNTERS: usize = 1000;
const CLIENTS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(4);

type Association = AsyncClientAssociation<TcpStream>;

/// An ADT^A04 opening encounter `n`.
fn admission(n: usize) -> String {
    format!(
        "MSH|^~\\&|REG|GENERAL|WORKLIST|BF|20261124080000||ADT^A04^ADT_A01|B{n}|P|2.5.1\r\
         EVN|A04|20261124080000\r\
         PID|1||MRN{n:05}^^^GENERAL^MR||PATIENT{n}^TEST^Q||19700101|F\r\
         PV1|1|I|ER^{n}||||1234^SMITH^JOHN||||||||||||V{n:05}|||||||||||||||||||||||||20261124080000\r"
    )
}

/// Sends the admissions over MLLP, one at a time, each ACKed AA.
async fn feed(port: u16) {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    let mut acks = FrameReader::new(rd, 1 << 20);
    for n in 0..ENCOUNTERS {
        wr.write_all(&frame(admission(n).as_bytes())).await.unwrap();
        match acks.next().await.unwrap() {
            Some(Frame::Message(a)) => assert!(String::from_utf8_lossy(&a).contains("MSA|AA|")),
            other => panic!("no ACK: {other:?}"),
        }
    }
}

/// The C-FIND identifier: the usual return keys, and a PatientID.
fn identifier(patient_id: &str) -> Vec<u8> {
    let put = |obj: &mut InMemDicomObject, tag: Tag, vr: VR, v: &str| {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    };
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::ACCESSION_NUMBER, VR::SH, "");
    put(&mut obj, tags::PATIENT_NAME, VR::PN, "");
    put(&mut obj, tags::PATIENT_ID, VR::LO, patient_id);
    put(&mut obj, tags::PATIENT_BIRTH_DATE, VR::DA, "");
    put(&mut obj, tags::PATIENT_SEX, VR::CS, "");
    put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, "");
    put(&mut obj, tags::REQUESTED_PROCEDURE_DESCRIPTION, VR::LO, "");
    put(&mut obj, tags::REQUESTED_PROCEDURE_ID, VR::SH, "");
    let mut step = InMemDicomObject::new_empty();
    put(&mut step, tags::MODALITY, VR::CS, "US");
    put(&mut step, tags::SCHEDULED_STATION_AE_TITLE, VR::AE, "");
    put(
        &mut step,
        tags::SCHEDULED_PROCEDURE_STEP_START_DATE,
        VR::DA,
        "",
    );
    put(
        &mut step,
        tags::SCHEDULED_PROCEDURE_STEP_START_TIME,
        VR::TM,
        "",
    );
    for (tag, vr) in [
        (tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, VR::LO),
        (tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH),
        (tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME, VR::PN),
    ] {
        put(&mut step, tag, vr, "");
    }
    obj.put(DataElement::new(
        tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![step]),
    ));
    write_data_set(&obj, IMPLICIT_VR_LE).unwrap()
}

async fn associate(port: u16) -> Association {
    ClientAssociationOptions::new()
        .calling_ae_title("BENCH")
        .called_ae_title("INTERLINK")
        .with_presentation_context(MODALITY_WORKLIST_FIND, vec![IMPLICIT_VR_LE])
        .max_pdu_length(16_384)
        .establish_async(("127.0.0.1", port))
        .await
        .expect("association")
}

/// One C-FIND: the matches' identifiers.
async fn find(assoc: &mut Association, id: &[u8]) -> Vec<InMemDicomObject> {
    let rq = command::request(C_FIND_RQ, 1, MODALITY_WORKLIST_FIND, true);
    message::send(assoc, 1, &rq, Some(id)).await.unwrap();
    let mut assembler = Assembler::new(1 << 20);
    let mut matches = Vec::new();
    loop {
        let m = message::receive(assoc, &mut assembler).await.unwrap();
        match m.command.status {
            Some(status::PENDING) => {
                matches.push(read_data_set(&m.data_set.unwrap(), IMPLICIT_VR_LE).unwrap())
            }
            Some(status::SUCCESS) => return matches,
            other => panic!("C-FIND status {other:?}: {:?}", m.command.error_comment),
        }
    }
}

/// How a scenario queries.
#[derive(Clone, Copy)]
enum Scenario {
    OnePatient { fresh: bool },
    WholeList,
}

/// `CLIENTS` clients querying `port` for [`RUN_FOR`]: queries per second
/// and the sorted latencies.
async fn load(port: u16, scenario: Scenario) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                let mut assoc = Some(associate(port).await);
                let mut latencies = Vec::new();
                let mut n = c;
                while started.elapsed() < RUN_FOR {
                    let (id, want) = match scenario {
                        Scenario::WholeList => (identifier(""), ENCOUNTERS),
                        Scenario::OnePatient { .. } => {
                            n = (n + 7) % ENCOUNTERS;
                            (identifier(&format!("MRN{n:05}")), 1)
                        }
                    };
                    // The server's time (and a new association's), not the
                    // client building its identifier.
                    let t = Instant::now();
                    if assoc.is_none() {
                        assoc = Some(associate(port).await);
                    }
                    let found = find(assoc.as_mut().unwrap(), &id).await;
                    assert_eq!(found.len(), want);
                    if let Scenario::OnePatient { fresh: true } = scenario {
                        assoc.take().unwrap().release().await.unwrap();
                    }
                    latencies.push(t.elapsed());
                }
                if let Some(a) = assoc {
                    a.release().await.unwrap();
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    (all.len() as f64 / elapsed.as_secs_f64(), all)
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// An item as a DCMTK dump, for `dump2dcm`.
fn dump(item: &InMemDicomObject) -> String {
    let step = item
        .get(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|i| i.first())
        .unwrap();
    let line = |tag: Tag, vr: &str, v: String| {
        format!("({:04x},{:04x}) {vr} [{v}]\n", tag.group(), tag.element())
    };
    let mut out = String::from("(0008,0005) CS [ISO_IR 192]\n");
    for (tag, vr) in [
        (tags::ACCESSION_NUMBER, "SH"),
        (tags::PATIENT_NAME, "PN"),
        (tags::PATIENT_ID, "LO"),
        (tags::PATIENT_BIRTH_DATE, "DA"),
        (tags::PATIENT_SEX, "CS"),
        (tags::STUDY_INSTANCE_UID, "UI"),
        (tags::REQUESTED_PROCEDURE_DESCRIPTION, "LO"),
        (tags::REQUESTED_PROCEDURE_ID, "SH"),
    ] {
        out += &line(tag, vr, text(item, tag));
    }
    out += "(0040,0100) SQ (Sequence with undefined length)\n(fffe,e000) na (Item with undefined length)\n";
    for (tag, vr) in [
        (tags::MODALITY, "CS"),
        (tags::SCHEDULED_STATION_AE_TITLE, "AE"),
        (tags::SCHEDULED_PROCEDURE_STEP_START_DATE, "DA"),
        (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, "TM"),
        (tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION, "LO"),
        (tags::SCHEDULED_PROCEDURE_STEP_ID, "SH"),
        (tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME, "PN"),
    ] {
        out += &line(tag, vr, text(step, tag));
    }
    out + "(fffe,e00d) na (ItemDelimitationItem)\n(fffe,e0dd) na (SequenceDelimitationItem)\n"
}

/// Writes the items as `.wl` files (with what `wlmscpfs` requires of a
/// complete item: a station AE title, the step's ID and description) where `wlmscpfs -dfp dir` serves them
/// for AE title INTERLINK, and starts it.
fn start_wlmscpfs(dir: &Path, items: &[InMemDicomObject], port: u16) -> Proc {
    let ae = dir.join("INTERLINK");
    std::fs::create_dir_all(&ae).unwrap();
    std::fs::write(ae.join("lockfile"), "").unwrap();
    for (i, item) in items.iter().enumerate() {
        let txt = ae.join(format!("item{i}.dump"));
        std::fs::write(&txt, dump(item)).unwrap();
        let ok = Command::new("/usr/bin/dump2dcm")
            .arg("--write-xfer-little")
            .arg(&txt)
            .arg(ae.join(format!("item{i}.wl")))
            .status()
            .unwrap()
            .success();
        assert!(ok, "dump2dcm failed on {}", txt.display());
        std::fs::remove_file(txt).unwrap();
    }
    let child = Command::new("/usr/bin/wlmscpfs")
        .arg("-dfp")
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wlmscpfs");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "wlmscpfs did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

fn start_interlink(dir: &Path, mllp: u16, scp: u16) -> Proc {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        bot_wasm("encounter_worklist"),
        dir.join("plugins/encounter_worklist.wasm"),
    )
    .expect("target/test-bots/encounter_worklist.wasm: run scripts/setup first");
    start_host(
        dir,
        &format!(
            "[journal]\npath = \"data/j.db\"\n[plugins]\ndir = \"plugins\"\n\
             [[listener]]\nname = \"adt\"\nlisten = \"127.0.0.1:{mllp}\"\n\
             [[dicom]]\nname = \"mwl\"\nlisten = \"127.0.0.1:{scp}\"\nae_title = \"INTERLINK\"\n\
             bot = \"encounter-worklist\"\nstation_ae = \"US01\"\nmax_associations = 64\n\
             [bots.encounter-worklist.settings]\naccession_prefix = \"BF\"\nmax_open_hours = \"100000\"\n"
        ),
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (mllp, scp, wl) = (free_port(), free_port(), free_port());
    std::fs::create_dir_all(dir.path().join("host")).unwrap();
    let _host = start_interlink(&dir.path().join("host"), mllp, scp);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        feed(mllp).await;
        let id = identifier("");
        let mut assoc = associate(scp).await;
        let started = Instant::now();
        let items = loop {
            let items = find(&mut assoc, &id).await;
            if items.len() == ENCOUNTERS {
                break items;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the bot holds {}",
                items.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assoc.release().await.unwrap();
        let _wlmscpfs = start_wlmscpfs(&dir.path().join("wl"), &items, wl);
        // Both answer alike.
        let mut a = associate(scp).await;
        let mut b = associate(wl).await;
        let (ours, theirs) = (
            find(&mut a, &identifier("MRN00042")).await,
            find(&mut b, &identifier("MRN00042")).await,
        );
        for tag in [
            tags::ACCESSION_NUMBER,
            tags::PATIENT_NAME,
            tags::STUDY_INSTANCE_UID,
        ] {
            assert_eq!(text(&ours[0], tag), text(&theirs[0], tag));
        }
        println!(
            "{ENCOUNTERS} open encounters; {CLIENTS} clients, closed loop, {RUN_FOR:?} per scenario"
        );
        println!(
            "{:<44} {:>8} {:>9} {:>8} {:>8}",
            "scenario", "queries", "queries/s", "p50 ms", "p99 ms"
        );
        for (name, scenario) in [
            (
                "one patient, association kept",
                Scenario::OnePatient { fresh: false },
            ),
            (
                "one patient, new association each",
                Scenario::OnePatient { fresh: true },
            ),
            ("whole list (1,000 matches), kept", Scenario::WholeList),
        ] {
            for (server, port) in [("interlink", scp), ("wlmscpfs", wl)] {
                let (rate, lat) = load(port, scenario).await;
                println!(
                    "{:<44} {:>8} {rate:>9.0} {:>8.2} {:>8.2}",
                    format!("{server}: {name}"),
                    lat.len(),
                    pct(&lat, 0.5),
                    pct(&lat, 0.99)
                );
            }
        }
    });
}
