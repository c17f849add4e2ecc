//! What the benchmarks that drive the release binary over MLLP share: the
//! message they send, a closed-loop load generator that times each ACK, an
//! MLLP sink that notes when each message arrives, percentiles, and
//! starting `interlink run` on a config (also several hosts of a cluster,
//! each with its own directory and listener). Each benchmark uses a subset.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interlink::mllp::{Frame, FrameReader, frame};
use interlink_sdk::hl7::{AckCode, Message, ack};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// An ADT^A04 of the usual size with control id `control_id`.
pub fn adt(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A04|20260101120000\r\
         PID|1||MRN{control_id}^^^CLINIC^MR||DOE^JANE^Q||19800101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701\r\
         PV1|1|O|CLINIC^^^BF||||1234^WELBY^MARCUS\r"
    )
}

/// What one [`load`] measured.
pub struct Load {
    pub elapsed: Duration,
    pub ack_latencies: Vec<Duration>,
    /// When each control id was sent.
    pub sent_at: HashMap<String, Instant>,
}

/// Sends `per_connection` ADTs on each of `connections` connections, one
/// in flight per connection, timing each ACK (which must be AA).
pub async fn load(port: u16, connections: usize, per_connection: usize, tag: &str) -> Load {
    load_spread(&[port], connections, per_connection, tag).await
}

/// [`load`] with the connections spread over `ports` in turn (connection
/// `c` goes to `ports[c % ports.len()]`), as a TCP load balancer in front
/// of several hosts would spread them.
pub async fn load_spread(
    ports: &[u16],
    connections: usize,
    per_connection: usize,
    tag: &str,
) -> Load {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let tag = tag.to_string();
        let port = ports[c % ports.len()];
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (rd, mut wr) = stream.into_split();
            let mut acks = FrameReader::new(rd, 1 << 20);
            let mut lat = Vec::with_capacity(per_connection);
            let mut sent = Vec::with_capacity(per_connection);
            for i in 0..per_connection {
                let id = format!("{tag}{c}x{i}");
                let bytes = frame(adt(&id).as_bytes());
                let t = Instant::now();
                wr.write_all(&bytes).await.unwrap();
                match acks.next().await.unwrap() {
                    Some(Frame::Message(a)) => {
                        assert!(String::from_utf8_lossy(&a).contains("MSA|AA|"))
                    }
                    other => panic!("no ACK: {other:?}"),
                }
                lat.push(t.elapsed());
                sent.push((id, t));
            }
            (lat, sent)
        }));
    }
    let mut ack_latencies = Vec::new();
    let mut sent_at = HashMap::new();
    for t in tasks {
        let (lat, sent) = t.await.unwrap();
        ack_latencies.extend(lat);
        sent_at.extend(sent);
    }
    Load {
        elapsed: start.elapsed(),
        ack_latencies,
        sent_at,
    }
}

/// The `p` quantile of `sorted`, in milliseconds.
pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `config` to `dir/interlink.toml`, starts the release
/// `interlink run` on it (log in `dir/host.log`) and waits until it is ready.
pub fn start_host(dir: &Path, config: &str) -> Proc {
    start_host_with(dir, config, &[])
}

/// [`start_host`] with `env` added to the host's environment (a
/// PostgreSQL journal's URL, say). The log starts afresh on every start.
pub fn start_host_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Proc {
    std::fs::write(dir.join("interlink.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("host.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_interlink"))
        .args(["run", "--config", "interlink.toml"])
        .current_dir(dir)
        .envs(env.iter().copied())
        .stderr(log)
        .spawn()
        .unwrap();
    let host = Proc(child);
    assert!(
        wait_log(&dir.join("host.log"), " ready", 1, Duration::from_secs(120)).is_some(),
        "interlink did not start"
    );
    host
}

/// How many times `needle` occurs in the file at `path` (0 when there is
/// no file).
pub fn log_count(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// Waits until `needle` occurs at least `times` times in the file at
/// `path`, looking every 2 ms (reading only what was appended since);
/// when it did, or `None` after `timeout`.
pub fn wait_log(path: &Path, needle: &str, times: usize, timeout: Duration) -> Option<Instant> {
    use std::io::{Read, Seek, SeekFrom};
    let needle = needle.as_bytes();
    let start = Instant::now();
    let (mut seen, mut offset, mut unread) = (0, 0, Vec::new());
    loop {
        if let Ok(mut file) = std::fs::File::open(path)
            && file.seek(SeekFrom::Start(offset)).is_ok()
        {
            let before = unread.len();
            let _ = file.read_to_end(&mut unread);
            offset += (unread.len() - before) as u64;
        }
        while let Some(at) = memchr::memmem::find(&unread, needle) {
            seen += 1;
            unread.drain(..at + needle.len());
        }
        // Keep only what could be the start of a needle still being written.
        unread.drain(..unread.len().saturating_sub(needle.len() - 1));
        if seen >= times {
            return Some(Instant::now());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Copies the adt-router bot into `dir/plugins`.
pub fn install_router(dir: &Path) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        interlink_tests::root().join("target/test-bots/adt_router.wasm"),
        dir.join("plugins/adt_router.wasm"),
    )
    .expect("target/test-bots/adt_router.wasm: run scripts/setup first");
}

/// The config of a host with adt-router (forwarding to destination `out`)
/// and listener `in` on `port`; `journal` is the body of its `[journal]`
/// section, `extra` adds `[[destination]]` `out` and whatever else the
/// benchmark needs.
pub fn router_config(port: u16, journal: &str, extra: &str) -> String {
    format!(
        "[journal]\n{journal}\n[plugins]\ndir = \"plugins\"\n\
         [[listener]]\nname = \"in\"\nlisten = \"127.0.0.1:{port}\"\n\
         [bots.adt-router]\nsettings = {{ destination = \"out\" }}\n{extra}"
    )
}

/// The `[[destination]]` `out`: MLLP to the sink on `port`.
pub fn mllp_out(port: u16) -> String {
    format!(
        "[[destination]]\nname = \"out\"\nkind = \"mllp\"\nhost = \"127.0.0.1\"\nport = {port}\n"
    )
}

/// Starts a host in `dir` with adt-router (forwarding to destination
/// `out`), listener `in` on `port` and its journal in `data/j.db`; `extra`
/// adds `[[destination]]` `out` and whatever else the benchmark needs.
pub fn start_router_host(dir: &Path, port: u16, extra: &str) -> Proc {
    install_router(dir);
    start_host(dir, &router_config(port, "path = \"data/j.db\"", extra))
}

/// Creates a journal at `path` with the host's own schema (every
/// migration) and fills it in one transaction with `fill`, fast
/// (`synchronous = OFF`: a benchmark's fixture, not a journal to keep).
pub fn fill_journal(path: &Path, fill: impl FnOnce(&rusqlite::Transaction)) {
    drop(interlink::journal::Journal::open(path).unwrap());
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = c.transaction().unwrap();
    fill(&tx);
    tx.commit().unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
}

/// When each control id arrived at a sink.
pub type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// One connection a sink accepted: when, and when its first message came
/// (a host that took a destination over opens a connection of its own).
#[derive(Debug, Clone, Copy)]
pub struct SinkConnection {
    pub accepted: Instant,
    pub first_message: Option<Instant>,
}

/// The connections a sink accepted, in order.
pub type Connections = Arc<Mutex<Vec<SinkConnection>>>;

/// An MLLP server that ACKs every message at once, noting arrivals.
pub async fn ack_server(listener: TcpListener, arrivals: Option<Arrivals>) {
    ack_server_noting(listener, arrivals, None).await
}

/// [`ack_server`] that also notes each connection in `connections`.
pub async fn ack_server_noting(
    listener: TcpListener,
    arrivals: Option<Arrivals>,
    connections: Option<Connections>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let accepted = Instant::now();
        let _ = stream.set_nodelay(true);
        let arrivals = arrivals.clone();
        let connection = connections.clone().map(|c| {
            let mut list = c.lock().unwrap();
            list.push(SinkConnection {
                accepted,
                first_message: None,
            });
            (c.clone(), list.len() - 1)
        });
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut frames = FrameReader::new(rd, 1 << 20);
            while let Ok(Some(Frame::Message(bytes))) = frames.next().await {
                let now = Instant::now();
                let msg = Message::parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
                if let Some(a) = &arrivals {
                    a.lock().unwrap().insert(msg.control_id().into_owned(), now);
                }
                if let Some((c, i)) = &connection {
                    c.lock().unwrap()[*i].first_message.get_or_insert(now);
                }
                let reply = ack(&msg, AckCode::AA, None, "1");
                if wr
                    .write_all(&frame(reply.as_str().as_bytes()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Waits for every sent message at the sink; end-to-end latencies.
pub async fn end_to_end(load: &Load, arrivals: &Arrivals) -> Option<Vec<Duration>> {
    end_to_end_within(load, arrivals, Duration::from_secs(120)).await
}

/// [`end_to_end`], giving up (`None`) after `timeout` rather than 120 s.
pub async fn end_to_end_within(
    load: &Load,
    arrivals: &Arrivals,
    timeout: Duration,
) -> Option<Vec<Duration>> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let a = arrivals.lock().unwrap();
            if load.sent_at.keys().all(|k| a.contains_key(k)) {
                let mut v: Vec<Duration> = load
                    .sent_at
                    .iter()
                    .map(|(k, t)| a[k].duration_since(*t))
                    .collect();
                v.sort();
                return Some(v);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
