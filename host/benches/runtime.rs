//! Runtime benchmarks; prints numbers, asserts nothing.
//!
//! `cargo bench -p interlink --bench runtime` after `scripts/setup` (which
//! builds the example bots into `target/test-bots/`).
//!
//! 1. Warm invocation: a journaled ADT^A04 through the same code path the
//!    host's workers use ([`process`]): a fresh instance from the
//!    pre-instantiated component, `handle`, and the reply's check (its
//!    outbound message parsed and accepted).
//! 2. Hot load: from a `.wasm` landing in the watched plugins directory to
//!    the bot being live, with an empty compile cache (cold) and a warm one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interlink::config::Config;
use interlink::journal::{Journal, StoredEvent};
use interlink::runtime::cache::CompileCache;
use interlink::runtime::engine::{BotEngine, Limits};
use interlink::runtime::policy_for;
use interlink::runtime::process::process;
use interlink::runtime::state::{NoState, Session};
use interlink::runtime::{Runtime, watcher};

const ADT: &str = "MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||ADT^A04^ADT_A01|MSG0001|P|2.5.1\r\
EVN|A04|20260101120000\r\
PID|1||MRN0001^^^CLINIC^MR||DOE^JANE||19800101|F\r\
PV1|1|O|CLINIC^^^BF\r";

fn bot_path() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-bots/adt_router.wasm");
    assert!(
        p.exists(),
        "{} missing: run scripts/setup first",
        p.display()
    );
    p
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<44} n={:<6} median {:>9.1} us   p99 {:>9.1} us   min {:>9.1} us",
        samples.len(),
        us(percentile(&samples, 0.5)),
        us(percentile(&samples, 0.99)),
        us(samples[0])
    );
}

fn warm_invocation() {
    let engine = BotEngine::new(Limits::new(64, 1000), None).unwrap();
    println!("pooling allocator: {}", engine.pooled());
    let bot = engine.load(&std::fs::read(bot_path()).unwrap()).unwrap();
    let cfg = Config::parse(
        "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\ndir = \"out\"\n",
        std::path::Path::new("/tmp"),
    )
    .unwrap();
    let policy = Arc::new(policy_for(&cfg, bot.name()));
    let event = || StoredEvent {
        id: 1,
        kind: "hl7".into(),
        source: "bench".into(),
        name: None,
        body: ADT.as_bytes().to_vec(),
        received_at_ms: 0,
    };
    let mut session = Session::new(bot.name(), policy.clone(), Box::new(NoState));
    for _ in 0..2000 {
        let (processed, continued) = process(&bot, &policy, event(), session);
        session = continued;
        session.logs.clear();
        assert!(processed.result.is_ok());
    }
    let mut samples = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let stored = event();
        let start = Instant::now();
        let (_, continued) = process(&bot, &policy, stored, session);
        samples.push(start.elapsed());
        session = continued;
        session.logs.clear();
        session.take_writes();
    }
    report(
        "warm invocation (instantiate + handle ADT + accept)",
        samples,
    );
}

fn hot_load() {
    let rt_tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = std::fs::read(bot_path()).unwrap();
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!("[plugins]\ndir = \"plugins\"\ncache_dir = \"cache-{round}\"\n");
        let cfg = Arc::new(Config::parse(&toml, dir.path()).unwrap());
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let cache = CompileCache::open(&cfg.cache_dir(), &cfg.cache_key_path()).unwrap();
        let engine = BotEngine::new(Limits::new(64, 1000), Some(cache)).unwrap();
        let rt = Runtime::new(
            engine,
            journal,
            cfg.clone(),
            Default::default(),
            Default::default(),
            interlink::cluster::Cluster::alone(),
        );
        rt_tokio.block_on(watcher::start(rt.clone())).unwrap();
        let target = cfg.plugins.dir.join("adt_router.wasm");
        for samples in [&mut cold, &mut cached] {
            let tmp = cfg.plugins.dir.join(".incoming");
            std::fs::write(&tmp, &bytes).unwrap();
            let start = Instant::now();
            std::fs::rename(&tmp, &target).unwrap();
            while rt.bot("adt-router").is_none() {
                std::thread::sleep(Duration::from_micros(200));
            }
            samples.push(start.elapsed());
            std::fs::remove_file(&target).unwrap();
            while rt.bot("adt-router").is_some() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    report("hot load, cold compile (file lands -> live)", cold);
    report("hot load, compile cache warm", cached);
}

/// `-- warm` or `-- load` runs only that part.
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let wants = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let size = std::fs::metadata(bot_path()).unwrap().len();
    println!("bot: adt_router.wasm ({size} bytes, release build)");
    if wants("warm") {
        warm_invocation();
    }
    if wants("load") {
        hot_load();
    }
}
