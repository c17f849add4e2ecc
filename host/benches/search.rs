//! Message search benchmark; prints a table, asserts nothing.
//!
//! `cargo bench -p interlink --bench search` (`SEARCH_BENCH_EVENTS=N`
//! changes the 1,000,000).
//!
//! Builds (once; kept in `target/bench-search/`) a journal of N events in
//! the schema the host creates, written with SQL in one transaction: five
//! sources, nine message types, 100,000 patients, unique control ids, one
//! run per routed event (about 5% failed, 0.1% pending), 2% unrouted,
//! spread over 30 days. Then times `Reader::search` (the function behind
//! `GET /api/v1/events`, without HTTP) for each kind of filter, 200 random
//! queries each (a page of 50), and prints p50/p99.

use std::path::Path;
use std::time::{Duration, Instant};

use interlink::journal::search::{EventQuery, EventStatus};
use interlink::journal::{Journal, Reader};
use rusqlite::params;

const SOURCES: [&str; 5] = ["adt_in", "lab_in", "orders_in", "inbox", "sftp_lab"];
const TYPES: [&str; 9] = [
    "ADT^A01^ADT_A01",
    "ADT^A03^ADT_A03",
    "ADT^A04^ADT_A01",
    "ADT^A08^ADT_A01",
    "ORU^R01^ORU_R01",
    "ORU^R01^ORU_R01",
    "ORM^O01^ORM_O01",
    "SIU^S12^SIU_S12",
    "MDM^T02^MDM_T02",
];
const PATIENTS: u64 = 100_000;
const DAY_MS: i64 = 86_400_000;
const QUERIES: usize = 200;

/// A small xorshift generator: the data and queries are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn start_ms() -> i64 {
    interlink::journal::now_ms() - 30 * DAY_MS
}

fn build_journal(path: &Path, n: u64, start: i64) {
    drop(Journal::open(path).unwrap());
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut event = tx
            .prepare(
                "INSERT INTO events (id, kind, source, message_type, control_id, patient_id, body,
                                     received_at_ms, routed)
                 VALUES (?1, 'hl7', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .unwrap();
        let mut run = tx
            .prepare(
                "INSERT INTO runs (event_id, bot, status, attempts, error, bot_version, duration_us,
                                   updated_ms)
                 VALUES (?1, ?2, ?3, 1, ?4, '1.0.0', 25, ?5)",
            )
            .unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let step = 30 * DAY_MS / n as i64;
        for id in 1..=n as i64 {
            let source = SOURCES[rng.below(5) as usize];
            let ty = TYPES[rng.below(TYPES.len() as u64) as usize];
            let control = format!("C{id:08}");
            let patient = format!("P{:06}", rng.below(PATIENTS));
            let at = start + id * step;
            let body = format!(
                "MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||{ty}|{control}|P|2.5.1\r\
                 EVN|A04|20260101120000\rPID|1||{patient}^^^CLINIC^MR||DOE^JANE||19800101|F\r"
            );
            let roll = rng.below(1000);
            let routed = roll >= 20;
            event
                .execute(params![
                    id,
                    source,
                    ty,
                    control,
                    patient,
                    body,
                    at,
                    routed as i64
                ])
                .unwrap();
            if routed {
                let (status, error) = match roll {
                    20..=69 => ("failed", Some("bot failed: no mapping")),
                    70 => ("pending", None),
                    _ => ("done", None),
                };
                let bot = if ty.starts_with("ADT") {
                    "adt-router"
                } else {
                    "lab-router"
                };
                run.execute(params![id, bot, status, error, at]).unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// p-th percentile of sorted durations, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let n: u64 = std::env::var("SEARCH_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-search");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("journal-{n}.db"));
    let meta = dir.join(format!("journal-{n}.start"));
    let start = match std::fs::read_to_string(&meta)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(start) if path.exists() => start,
        _ => {
            let _ = std::fs::remove_file(&path);
            let start = start_ms();
            let t = Instant::now();
            build_journal(&path, n, start);
            std::fs::write(&meta, start.to_string()).unwrap();
            println!(
                "built a journal of {n} events in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            start
        }
    };
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "journal: {n} events, {} MiB, {}",
        size >> 20,
        path.display()
    );
    // The journal as the host leaves it open: migrations applied.
    drop(Journal::open(&path).unwrap());
    let reader = Reader::open(&path).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let page = |q: EventQuery| EventQuery { limit: 50, ..q };
    let some = |s: &str| Some(s.to_string());
    type Make<'a> = Box<dyn Fn(&mut Rng) -> EventQuery + 'a>;
    let span = 30 * DAY_MS;
    let cases: Vec<(&str, Make)> = vec![
        (
            "newest (no filter)",
            Box::new(|_| page(EventQuery::default())),
        ),
        (
            "page deep in (before)",
            Box::new(|r| {
                page(EventQuery {
                    before: Some(1 + r.below(n) as i64),
                    ..Default::default()
                })
            }),
        ),
        (
            "control_id",
            Box::new(|r| {
                page(EventQuery {
                    control_id: Some(format!("C{:08}", 1 + r.below(n))),
                    ..Default::default()
                })
            }),
        ),
        (
            "patient",
            Box::new(|r| {
                page(EventQuery {
                    patient: Some(format!("P{:06}", r.below(PATIENTS))),
                    ..Default::default()
                })
            }),
        ),
        (
            "type ADT^A04",
            Box::new(|_| {
                page(EventQuery {
                    message_type: some("ADT^A04"),
                    ..Default::default()
                })
            }),
        ),
        (
            "type ADT^A0*",
            Box::new(|_| {
                page(EventQuery {
                    message_type: some("ADT^A0*"),
                    ..Default::default()
                })
            }),
        ),
        (
            "type ORU, deep",
            Box::new(|r| {
                page(EventQuery {
                    message_type: some("ORU"),
                    before: Some(1 + r.below(n) as i64),
                    ..Default::default()
                })
            }),
        ),
        (
            "source",
            Box::new(|r| {
                page(EventQuery {
                    source: Some(SOURCES[r.below(5) as usize].into()),
                    ..Default::default()
                })
            }),
        ),
        (
            "status failed",
            Box::new(|_| {
                page(EventQuery {
                    status: Some(EventStatus::Failed),
                    ..Default::default()
                })
            }),
        ),
        (
            "status received",
            Box::new(|_| {
                page(EventQuery {
                    status: Some(EventStatus::Received),
                    ..Default::default()
                })
            }),
        ),
        (
            "status unrouted, deep",
            Box::new(|r| {
                page(EventQuery {
                    status: Some(EventStatus::Unrouted),
                    before: Some(1 + r.below(n) as i64),
                    ..Default::default()
                })
            }),
        ),
        (
            "status done",
            Box::new(|_| {
                page(EventQuery {
                    status: Some(EventStatus::Done),
                    ..Default::default()
                })
            }),
        ),
        (
            "time range (1 h)",
            Box::new(move |r| {
                let from = start + r.below(span as u64 - 3_600_000) as i64;
                page(EventQuery {
                    since_ms: Some(from),
                    until_ms: Some(from + 3_600_000),
                    ..Default::default()
                })
            }),
        ),
        (
            "source + type + failed",
            Box::new(|r| {
                page(EventQuery {
                    source: Some(SOURCES[r.below(5) as usize].into()),
                    message_type: some("ADT*"),
                    status: Some(EventStatus::Failed),
                    ..Default::default()
                })
            }),
        ),
        (
            "patient + type ORU",
            Box::new(|r| {
                page(EventQuery {
                    patient: Some(format!("P{:06}", r.below(PATIENTS))),
                    message_type: some("ORU"),
                    ..Default::default()
                })
            }),
        ),
        (
            "source + day + unrouted",
            Box::new(move |r| {
                let from = start + r.below(span as u64 - DAY_MS as u64) as i64;
                page(EventQuery {
                    source: Some(SOURCES[r.below(5) as usize].into()),
                    status: Some(EventStatus::Unrouted),
                    since_ms: Some(from),
                    until_ms: Some(from + DAY_MS),
                    ..Default::default()
                })
            }),
        ),
    ];
    println!("{QUERIES} queries per filter, a page of 50 each, Reader::search (no HTTP)");
    let mut worst: f64 = 0.0;
    for (name, make) in &cases {
        let mut times = Vec::with_capacity(QUERIES);
        let mut found = 0;
        for _ in 0..QUERIES {
            let q = make(&mut rng);
            let t = Instant::now();
            let page = reader.search(&q).unwrap();
            times.push(t.elapsed());
            found += page.events.len();
        }
        times.sort();
        let p99 = pct(&times, 0.99);
        worst = worst.max(p99);
        println!(
            "{name:<26} p50 {:>7.2} ms   p99 {:>7.2} ms   (avg {:>5.1} events/page)",
            pct(&times, 0.5),
            p99,
            found as f64 / QUERIES as f64
        );
    }
    println!("worst p99: {worst:.2} ms (target <= 50 ms)");
}
