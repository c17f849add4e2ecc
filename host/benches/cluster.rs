//! Several hosts on one PostgreSQL journal (issue 13); prints tables,
//! asserts nothing.
//!
//! ```sh
//! scripts/setup                                    # bots, postgresql
//! cargo bench -p interlink --bench cluster         # everything, full size
//! CLUSTER_BENCH_SCALE=0.1 cargo bench -p interlink --bench cluster   # a quick check
//! cargo bench -p interlink --bench cluster -- sqlite pg1 pg2 pg3 failover   # a subset
//! ```
//!
//! `CLUSTER_BENCH_SCALE` (default 1) multiplies the messages per connection
//! (3,000) and the failover rounds (10).
//!
//! 1. **MLLP end to end**, the load of `benches/mllp.rs`: 16 connections,
//!    one message in flight each, ADT^A04s ACKed after the host's commit,
//!    the adt-router bot forwarding each through MLLP destination `out` to
//!    one sink in this process; SQLite one host, then PostgreSQL one, two
//!    and three hosts (a fresh database each). With several hosts the 16
//!    connections are spread over their listeners in turn; every host
//!    journals what it takes, and the one owning the bot and `out` runs and
//!    delivers everything. Each scenario starts its hosts afresh and sends
//!    16 × 20 messages end to end before it is timed (bot compiled, owners
//!    settled, destination connected).
//! 2. **Failover after SIGKILL**: two hosts on PostgreSQL, `takeover_s =
//!    10`, a light steady load (one sender per host, one message every
//!    20 ms each). Each round asks `interlink cluster --json` which host
//!    owns `out`, kills it (SIGKILL) and times, from the kill, the
//!    survivor's `cluster: took destination "out"` log line and the first
//!    message at the sink on a connection opened after the kill (the
//!    survivor's: the killed host's connection was opened before it), then
//!    restarts the killed host for the next round. Hosts look for unowned
//!    work once per tick (`takeover_s / 10` = 1 s), and the cluster is seen
//!    settled just after a tick of the restarted host (the next survivor),
//!    so a fixed wait before the kill would put every kill at the same
//!    point of that tick: round `k` of `n` waits 1 s + `k/n` of a tick, so
//!    the kills fall evenly over it, as real failures would.
//!
//! PostgreSQL is `interlink_tests::PgServer` (its own server on loopback,
//! `fsync` on); hosts are the release binary, as in the other benches.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Arrivals, Connections, Proc, ack_server_noting, adt, end_to_end_within, install_router,
    load_spread, log_count, mllp_out, pct, router_config, start_host_with, wait_log,
};
use interlink::mllp::{Frame, FrameReader, frame};
use interlink_tests::{PG_URL_ENV, PgServer, free_port};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Connections of the end-to-end load.
const CONNECTIONS: usize = 16;

/// Messages per connection at scale 1.
const PER_CONNECTION: usize = 3000;

/// Failover rounds at scale 1.
const ROUNDS: usize = 10;

/// The line a host logs when it takes destination `out`.
const TOOK_OUT: &str = "cluster: took destination \"out\"";

/// How often a host looks for unowned work: a tenth of `takeover_s` (10).
const TICK: Duration = Duration::from_secs(1);

/// How long a host may take to join, take over or deliver before the
/// bench gives up on that step.
const PATIENCE: Duration = Duration::from_secs(60);

/// A fresh database on the bench's PostgreSQL server, dropped with this.
struct Database<'a> {
    server: &'a PgServer,
    name: String,
}

impl<'a> Database<'a> {
    fn create(server: &'a PgServer) -> Database<'a> {
        Database {
            server,
            name: server.create_database(),
        }
    }

    fn url(&self) -> String {
        self.server.url(&self.name)
    }
}

impl Drop for Database<'_> {
    fn drop(&mut self) {
        self.server.drop_database(&self.name);
    }
}

/// One host: a directory of its own (config, plugins, log, compile cache)
/// and a listener port of its own; the process while it runs.
struct Member {
    /// Dropped (killed) before `dir` is removed.
    proc: Option<Proc>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Member {
    fn log(&self) -> PathBuf {
        self.dir.path().join("host.log")
    }

    fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.0.id())
    }
}

/// The hosts of one scenario: the same bot, destination and journal, each
/// on its own listener.
struct Cluster {
    members: Vec<Member>,
    /// The body of the `[journal]` section.
    journal: String,
    /// The hosts' environment (the PostgreSQL URL).
    env: Vec<(&'static str, String)>,
    /// The port of the sink destination `out` sends to.
    sink: u16,
}

impl Cluster {
    /// Starts `hosts` hosts one after the other, each ready before the next.
    fn start(hosts: usize, journal: String, env: Vec<(&'static str, String)>, sink: u16) -> Self {
        let mut cluster = Cluster {
            members: Vec::new(),
            journal,
            env,
            sink,
        };
        for i in 0..hosts {
            let dir = tempfile::tempdir().unwrap();
            install_router(dir.path());
            cluster.members.push(Member {
                proc: None,
                dir,
                port: free_port(),
            });
            cluster.run(i);
        }
        cluster
    }

    /// Starts host `i` (again) and waits until it is ready.
    fn run(&mut self, i: usize) {
        let config = router_config(self.members[i].port, &self.journal, &mllp_out(self.sink));
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let proc = start_host_with(self.members[i].dir.path(), &config, &env);
        self.members[i].proc = Some(proc);
    }

    /// SIGKILLs host `i` and reaps it.
    fn kill(&mut self, i: usize) {
        drop(self.members[i].proc.take());
    }

    fn ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.port).collect()
    }

    /// `interlink cluster --json` run in host `i`'s directory, or `None`
    /// when it fails (say, before the cluster has settled).
    fn status(&self, i: usize) -> Option<serde_json::Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_interlink"))
            .args(["cluster", "--config", "interlink.toml", "--json"])
            .current_dir(self.members[i].dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The index of the running host that owns destination `out`, once
    /// `interlink cluster` (asked through running host `via`) shows every
    /// running host live and one of them owning it.
    fn owner_of_out(&self, via: usize) -> Option<usize> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(owner) = self.status(via).and_then(|s| self.owner_in(&s)) {
                return Some(owner);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// [`Cluster::owner_of_out`] read from one answer of `interlink cluster`.
    fn owner_in(&self, status: &serde_json::Value) -> Option<usize> {
        let live: Vec<&serde_json::Value> = status["hosts"]
            .as_array()?
            .iter()
            .filter(|h| h["live"] == true)
            .collect();
        let pid_live = |pid: u32| live.iter().any(|h| h["pid"] == pid);
        if !self.members.iter().filter_map(Member::pid).all(pid_live) {
            return None;
        }
        let owner = live.iter().find(|h| {
            h["destinations"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d == "out"))
        })?;
        self.members
            .iter()
            .position(|m| m.pid().is_some_and(|pid| owner["pid"] == pid))
    }
}

/// What one scenario's rows are made of.
struct Scale {
    per_connection: usize,
    rounds: usize,
}

impl Scale {
    /// From `CLUSTER_BENCH_SCALE` (a factor, default 1).
    fn from_env() -> Scale {
        let factor: f64 = std::env::var("CLUSTER_BENCH_SCALE")
            .ok()
            .and_then(|f| f.parse().ok())
            .unwrap_or(1.0);
        let scaled = |n: usize| ((n as f64 * factor).round() as usize).max(1);
        Scale {
            per_connection: scaled(PER_CONNECTION),
            rounds: scaled(ROUNDS),
        }
    }
}

/// The `[journal]` body and host environment of a journal in `db`.
fn postgres(db: &Database) -> (String, Vec<(&'static str, String)>) {
    (
        format!("backend = \"postgres\"\nurl_env = \"{PG_URL_ENV}\"\ntakeover_s = 10"),
        vec![(PG_URL_ENV, db.url())],
    )
}

/// Runs the end-to-end load against `hosts` hosts on `journal` and prints
/// its row.
fn throughput(
    rt: &tokio::runtime::Runtime,
    name: &str,
    hosts: usize,
    (journal, env): (String, Vec<(&'static str, String)>),
    sink: (u16, &Arrivals),
    per_connection: usize,
) {
    let (sink, arrivals) = sink;
    let cluster = Cluster::start(hosts, journal, env, sink);
    let ports = cluster.ports();
    let tag = format!("{name}{hosts}");
    let warm = rt.block_on(load_spread(&ports, CONNECTIONS, 20, &format!("W{tag}c")));
    if rt
        .block_on(end_to_end_within(&warm, arrivals, PATIENCE))
        .is_none()
    {
        println!("{name:<10} {hosts:>5}  warm-up not delivered within {PATIENCE:?}; skipped");
        return;
    }
    let mut l = rt.block_on(load_spread(
        &ports,
        CONNECTIONS,
        per_connection,
        &format!("T{tag}c"),
    ));
    // A backlog the bot's one owner has not worked off yet may take a while.
    let e2e = match rt.block_on(end_to_end_within(&l, arrivals, 10 * PATIENCE)) {
        Some(v) => format!("{:>8.2} {:>8.2}", pct(&v, 0.5), pct(&v, 0.99)),
        None => format!("{:>8} {:>8}", "-", "-"),
    };
    l.ack_latencies.sort();
    let n = l.ack_latencies.len();
    println!(
        "{name:<10} {hosts:>5} {CONNECTIONS:>5} {n:>7} {:>8.0} {:>8.2} {:>8.2} {e2e}",
        n as f64 / l.elapsed.as_secs_f64(),
        pct(&l.ack_latencies, 0.5),
        pct(&l.ack_latencies, 0.99),
    );
}

/// Sends an ADT^A04 to `port` every 20 ms, one in flight, for as long as it
/// runs; reconnects (every 20 ms) while the host is down.
async fn steady(port: u16, tag: String) {
    let pause = Duration::from_millis(20);
    let mut n = 0usize;
    loop {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(pause).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let mut acks = FrameReader::new(rd, 1 << 20);
        loop {
            n += 1;
            let bytes = frame(adt(&format!("{tag}x{n}")).as_bytes());
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(5), acks.next()).await {
                Ok(Ok(Some(Frame::Message(_)))) => tokio::time::sleep(pause).await,
                _ => break,
            }
        }
    }
}

/// Aborts its tasks when dropped.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// When the sink first got a message on a connection it accepted after
/// `since`, waiting up to [`PATIENCE`].
fn first_delivery_after(connections: &Connections, since: Instant) -> Option<Instant> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let first = connections
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.accepted > since)
            .filter_map(|c| c.first_message)
            .min();
        if first.is_some() {
            return first;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `median  min  max` of `times` in ms, or a note when there are none.
fn spread(times: &mut [Duration]) -> String {
    times.sort();
    let Some((min, max)) = times.first().zip(times.last()) else {
        return "no round completed".into();
    };
    let mid = times.len() / 2;
    let median = if times.len().is_multiple_of(2) {
        (times[mid - 1] + times[mid]) / 2
    } else {
        times[mid]
    };
    format!(
        "median {:>8.1}   min {:>8.1}   max {:>8.1}   (n={})",
        ms(median),
        ms(*min),
        ms(*max),
        times.len()
    )
}

/// The failover rounds; prints one line per round and the summary.
fn failover(
    rt: &tokio::runtime::Runtime,
    server: &PgServer,
    sink: (u16, &Connections),
    rounds: usize,
) {
    let (sink, connections) = sink;
    let db = Database::create(server);
    let (journal, env) = postgres(&db);
    let mut cluster = Cluster::start(2, journal, env, sink);
    let senders = Tasks(
        cluster
            .ports()
            .into_iter()
            .enumerate()
            .map(|(i, port)| rt.spawn(steady(port, format!("F{i}"))))
            .collect(),
    );
    println!(
        "\nfailover: 2 hosts on PostgreSQL, takeover_s = 10, ~100 msg/s steady; SIGKILL the owner of \"out\""
    );
    println!(
        "{:<6} {:>8} {:>18} {:>22}",
        "round", "killed", "took \"out\" ms", "first delivery ms"
    );
    let (mut took_all, mut first_all) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let Some(owner) = cluster.owner_of_out(0) else {
            println!("{round:<6} no live owner of \"out\" within {PATIENCE:?}; stopping");
            break;
        };
        std::thread::sleep(Duration::from_secs(1) + TICK * (round - 1) as u32 / rounds as u32);
        let survivor = 1 - owner;
        let pid = cluster.members[owner].pid().unwrap_or_default();
        let log = cluster.members[survivor].log();
        let took_before = log_count(&log, TOOK_OUT);
        let killed = Instant::now();
        cluster.kill(owner);
        let took = wait_log(&log, TOOK_OUT, took_before + 1, PATIENCE).map(|t| t - killed);
        let first = first_delivery_after(connections, killed).map(|t| t - killed);
        let show = |d: Option<Duration>| d.map_or("timeout".into(), |d| format!("{:.1}", ms(d)));
        println!("{round:<6} {pid:>8} {:>18} {:>22}", show(took), show(first));
        took_all.extend(took);
        first_all.extend(first);
        cluster.run(owner);
        if wait_log(
            &cluster.members[owner].log(),
            "cluster: joined as",
            1,
            PATIENCE,
        )
        .is_none()
        {
            println!("the restarted host did not join within {PATIENCE:?}; stopping");
            break;
        }
    }
    println!("kill -> took \"out\" (log)       {}", spread(&mut took_all));
    println!("kill -> first delivery (sink)  {}", spread(&mut first_all));
    drop(senders);
    drop(cluster);
    drop(db);
}

/// The end-to-end table's two header lines.
fn print_header() {
    println!(
        "{:<10} {:>5} {:>5} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "journal", "hosts", "conns", "msgs", "msg/s", "ack p50", "ack p99", "e2e p50", "e2e p99"
    );
    println!(
        "{:<10} {:>5} {:>5} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "", "", "", "", "ms", "ms", "ms", "ms"
    );
}

/// `-- sqlite`, `-- pg1`, `-- pg2`, `-- pg3`, `-- failover`: only those.
fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| only.is_empty() || only.iter().any(|a| a == name);
    let scale = Scale::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // The sink every host's destination `out` sends to.
    let arrivals: Arrivals = Arc::default();
    let connections: Connections = Arc::default();
    let sink_port = free_port();
    let listener = rt
        .block_on(TcpListener::bind(("127.0.0.1", sink_port)))
        .unwrap();
    rt.spawn(ack_server_noting(
        listener,
        Some(arrivals.clone()),
        Some(connections.clone()),
    ));
    let sink = (sink_port, &arrivals);

    let postgres_rows: Vec<usize> = (1..=3).filter(|n| wants(&format!("pg{n}"))).collect();
    if wants("sqlite") || !postgres_rows.is_empty() {
        print_header();
    }
    if wants("sqlite") {
        let journal = ("path = \"data/j.db\"".to_string(), Vec::new());
        throughput(&rt, "sqlite", 1, journal, sink, scale.per_connection);
    }
    if postgres_rows.is_empty() && !wants("failover") {
        return;
    }
    let server = PgServer::start();
    for hosts in postgres_rows {
        let db = Database::create(&server);
        throughput(
            &rt,
            "postgres",
            hosts,
            postgres(&db),
            sink,
            scale.per_connection,
        );
    }
    if wants("failover") {
        failover(&rt, &server, (sink_port, &connections), scale.rounds);
    }
}
