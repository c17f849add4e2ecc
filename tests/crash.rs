//! The crash storm: the real host under a stream of MLLP messages, killed
//! with SIGKILL at random moments and restarted, then checked for the
//! guarantees users rely on. The end-to-end test (`tests/mllp.rs`, 2,000
//! messages and 25 kills per ACK mode) and the long variant
//! (`host/benches/crash.rs`, 100 kills, release binary) both run
//! [`Storm::run`].
//!
//! The setup: listener `in` (`ack = "commit"` or `"application"`), the
//! probe bot forwarding every message to destination `out`, an MLLP
//! destination with `connections = 4` and `ordering_key = "PID-3.1"`, to
//! python-hl7's server (`tests/peers/hl7_peer.py`). A client thread of this
//! process sends the messages one at a time (`K00000`, `K00001`, …, for
//! `patients` patients in turn) and resends each until it is answered AA or
//! CA: after a lost connection, and after any other answer (in application
//! mode, a resend of a message whose run was cut by the crash may get AE
//! "still processing, resend later").
//!
//! Kills land at random moments (seeded; the seed is printed): the k-th
//! once the client has had about k/(kills+1) of the messages ACKed, give or
//! take half a step, plus up to `jitter` more. Words used below:
//!
//! - A kill **interrupted the stream** when the client had written a message
//!   before the kill began and never got its ACK (its connection failed).
//!   Too few such kills fails the run: it would not have tested a crash
//!   mid-stream.
//! - After each kill, once the peer has seen every connection of the dead
//!   host end (so it has logged all that host sent), the storm notes how far
//!   the peer's log goes and which messages the journal records as
//!   delivered (`outbox.status = 'sent'`). A message the peer had but the
//!   journal did not record was delivered with its **ACK lost**: the host
//!   died before recording the peer's AA.
//! - A **duplicate** is a copy of a message the peer had already received.
//!   It is allowed only where an ACK was lost: its earlier copy came from an
//!   earlier host run, and the kill that ended the run before the
//!   duplicate's had not recorded the message as delivered.
//!
//! Checked at the end: every message ACKed to the client is journaled
//! exactly once (resends were answered from the duplicate check, not
//! journaled again), delivered to the peer, in order per patient (by first
//! arrival), with no duplicate other than the allowed ones, and nothing left
//! undelivered in the outbox.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Host, Peer, PeerServer, adt_a04, base_config, free_port, read_msa, wait_until};

/// When the listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// `ack = "commit"`: once journaled.
    Commit,
    /// `ack = "application"`: with the bot's answer.
    Application,
}

impl AckMode {
    fn config(self) -> &'static str {
        match self {
            AckMode::Commit => "commit",
            AckMode::Application => "application",
        }
    }
}

/// One crash storm: how much traffic, how many kills, and when.
#[derive(Debug, Clone)]
pub struct Storm {
    pub ack: AckMode,
    pub messages: usize,
    pub kills: usize,
    /// Distinct PID-3.1 values (the destination's ordering key).
    pub patients: usize,
    /// The RNG seed of the kill moments.
    pub seed: u64,
    /// Longest extra delay of a kill after its point in the stream.
    pub jitter: Duration,
    /// The fewest kills that must have interrupted the stream.
    pub min_interrupted: usize,
    /// The host binary (default: the one the tests use).
    pub bin: Option<PathBuf>,
}

/// What a storm measured (it panics instead when a guarantee was broken).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub storm: Storm,
    /// Kills that landed while the client had a message unacknowledged.
    pub interrupted: usize,
    /// Messages sent more than once by the client, by why: "no ACK" (the
    /// connection failed first) or the code of the answer that was not
    /// AA/CA.
    pub resends: BTreeMap<String, usize>,
    /// Deliveries the peer had that the journal had not recorded at a kill,
    /// summed over the kills.
    pub acks_lost: usize,
    /// Copies the peer received of messages it already had.
    pub duplicates: usize,
    /// From the first message sent to the last delivery.
    pub elapsed: Duration,
}

impl Storm {
    /// A storm of `messages` and `kills` in `ack` mode, seeded from
    /// `CRASH_SEED` or the clock; at least 3/4 of the kills must interrupt
    /// the stream.
    pub fn new(ack: AckMode, messages: usize, kills: usize) -> Storm {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        Storm {
            ack,
            messages,
            kills,
            patients: 40,
            seed,
            jitter: Duration::from_millis(5),
            // A kill whose jitter lands while the sender is still
            // reconnecting after the previous one finds no stream to cut
            // (on a loaded machine, up to a third of them): two thirds must
            // still cut one, or the storm did not test what it claims.
            min_interrupted: kills * 2 / 3,
            bin: None,
        }
    }

    /// Runs the storm and checks the guarantees; panics on a violation.
    pub fn run(&self) -> Outcome {
        eprintln!(
            "crash storm: {:?} ACKs, {} messages, {} kills, seed {} (CRASH_SEED={} repeats the kill moments)",
            self.ack, self.messages, self.kills, self.seed, self.seed
        );
        let peer_port = free_port();
        let port = free_port();
        let mut host = Host::new(&self.config(port, peer_port));
        if let Some(bin) = &self.bin {
            host = host.with_binary(bin);
        }
        host.install_bot("probe_v1", "probe.wasm");
        let peer = PeerServer::start(Peer::Python, peer_port, "aa", &host.path("peer.log"));
        host.start();
        let started = Instant::now();
        let client = Client::start(self, port);
        let crashes = self.kill_repeatedly(&mut host, &peer, &client);
        let progress = client.progress.clone();
        let acked = client.finish();
        assert_eq!(acked.len(), self.messages);
        let all_delivered = wait_until(Duration::from_secs(120), || {
            host.query::<i64>("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'") == 0
                && host.query::<i64>("SELECT COUNT(*) FROM outbox") == self.messages as i64
        });
        assert!(
            all_delivered,
            "outbox not drained: {} rows, {} not sent; log:\n{}",
            host.query::<i64>("SELECT COUNT(*) FROM outbox"),
            host.query::<i64>("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'"),
            host.log()
        );
        let elapsed = started.elapsed();
        self.check_journal(&host);
        let received: Vec<String> = peer.received().into_iter().map(|(c, _)| c).collect();
        self.check_delivered(&acked, &received);
        let duplicates = check_duplicates(&received, &crashes);
        let outcome = Outcome {
            storm: self.clone(),
            interrupted: progress.interrupted.lock().unwrap().len(),
            resends: progress.resends.lock().unwrap().clone(),
            acks_lost: crashes.iter().map(|c| c.acks_lost).sum(),
            duplicates,
            elapsed,
        };
        assert!(
            outcome.interrupted >= self.min_interrupted,
            "only {} of {} kills interrupted the stream (want {}): {outcome}",
            outcome.interrupted,
            self.kills,
            self.min_interrupted
        );
        outcome
    }

    fn config(&self, port: u16, peer_port: u16) -> String {
        base_config(&format!(
            r#"
[[listener]]
name = "in"
listen = "127.0.0.1:{port}"
ack = "{ack}"

[[destination]]
name = "out"
kind = "mllp"
host = "127.0.0.1"
port = {peer_port}
connections = 4
ordering_key = "PID-3.1"
ack_timeout_s = 10
connect_timeout_s = 1
retry = {{ initial_backoff_ms = 50, max_backoff_s = 1 }}
"#,
            ack = self.ack.config()
        ))
    }

    /// Where the kills land: about evenly spread over the stream (so the
    /// stream never ends before them), each moved by up to half a step.
    fn kill_points(&self, rng: &mut fastrand::Rng) -> Vec<usize> {
        let step = self.messages / (self.kills + 1);
        assert!(step >= 4, "too few messages for {} kills", self.kills);
        (1..=self.kills)
            .map(|k| k * step - step / 2 + rng.usize(0..step))
            .collect()
    }

    /// Kills the host at each point, notes what the peer and the journal
    /// had at that moment, and starts it again.
    fn kill_repeatedly(&self, host: &mut Host, peer: &PeerServer, client: &Client) -> Vec<Crash> {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut crashes = Vec::new();
        for point in self.kill_points(&mut rng) {
            let reached = client.wait_acked(point, Duration::from_secs(60));
            assert!(
                reached && !client.is_finished(),
                "the stream stalled before message {point} or ended early; log:\n{}",
                host.log()
            );
            let jitter = rng.u64(0..self.jitter.as_micros() as u64);
            std::thread::sleep(Duration::from_micros(jitter));
            client.progress.kills_begun.fetch_add(1, Ordering::SeqCst);
            host.kill();
            crashes.push(Crash::note(host, peer));
            host.start();
        }
        crashes
    }

    /// Each message is one event, however often it was resent.
    fn check_journal(&self, host: &Host) {
        let events: i64 = host.query("SELECT COUNT(*) FROM events WHERE source = 'in'");
        let distinct: i64 =
            host.query("SELECT COUNT(DISTINCT control_id) FROM events WHERE source = 'in'");
        assert_eq!(
            (events, distinct),
            (self.messages as i64, self.messages as i64),
            "events journaled (all, distinct control ids)"
        );
    }

    /// Every ACKed message reached the peer, in order per patient.
    fn check_delivered(&self, acked: &[String], received: &[String]) {
        let got: HashSet<&String> = received.iter().collect();
        let missing: Vec<&String> = acked.iter().filter(|c| !got.contains(c)).collect();
        assert!(missing.is_empty(), "ACKed but never delivered: {missing:?}");
        let mut seen = HashSet::new();
        let mut last: HashMap<usize, usize> = HashMap::new();
        for id in received {
            if !seen.insert(id) {
                continue;
            }
            let n: usize = id[1..].parse().expect("control id K<n>");
            if let Some(before) = last.insert(n % self.patients, n) {
                assert!(
                    before < n,
                    "patient {}: K{n:05} arrived after K{before:05}",
                    n % self.patients
                );
            }
        }
    }
}

/// What the peer and the journal held right after one kill.
struct Crash {
    /// How many messages the peer had logged.
    received: usize,
    /// Control ids the journal records as delivered.
    recorded: HashSet<String>,
    /// Messages the peer had that `recorded` lacks.
    acks_lost: usize,
}

impl Crash {
    fn note(host: &Host, peer: &PeerServer) -> Crash {
        // The dead host's connections have all ended at the peer: it has
        // logged everything that host sent.
        let drained = wait_until(Duration::from_secs(10), || peer.open_connections() == 0);
        assert!(drained, "the peer still sees connections of a dead host");
        let received: Vec<String> = peer.received().into_iter().map(|(c, _)| c).collect();
        let recorded: HashSet<String> = host
            .query_col(
                "SELECT e.control_id FROM outbox o JOIN events e ON e.id = o.event_id \
                 WHERE o.status = 'sent'",
            )
            .into_iter()
            .collect();
        let had: HashSet<&String> = received.iter().collect();
        let acks_lost = had.iter().filter(|c| !recorded.contains(**c)).count();
        Crash {
            received: received.len(),
            recorded,
            acks_lost,
        }
    }
}

/// Counts the duplicate copies in `received` and panics on one that no
/// lost ACK explains (see the module header).
fn check_duplicates(received: &[String], crashes: &[Crash]) -> usize {
    let mut first_run: HashMap<&String, usize> = HashMap::new();
    let mut duplicates = 0;
    for (at, id) in received.iter().enumerate() {
        // The host run that sent this copy: how many kills came before it.
        let run = crashes.iter().take_while(|c| c.received <= at).count();
        let Some(&earlier) = first_run.get(id) else {
            first_run.insert(id, run);
            continue;
        };
        duplicates += 1;
        assert!(
            earlier < run,
            "{id} delivered twice by one host run (run {run}, copy at {at})"
        );
        assert!(
            !crashes[run - 1].recorded.contains(id),
            "{id} delivered again by run {run} though recorded as delivered before the kill"
        );
    }
    duplicates
}

/// Shared between the client thread and the storm.
#[derive(Default)]
struct Progress {
    /// Messages ACKed AA/CA so far.
    acked: AtomicUsize,
    /// Kills begun so far.
    kills_begun: AtomicUsize,
    /// Numbers (from 1) of the kills that interrupted the stream.
    interrupted: Mutex<HashSet<usize>>,
    resends: Mutex<BTreeMap<String, usize>>,
}

/// The sending side: one thread, one message in flight.
struct Client {
    progress: Arc<Progress>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Client {
    fn start(storm: &Storm, port: u16) -> Client {
        let progress = Arc::new(Progress::default());
        let (messages, patients) = (storm.messages, storm.patients);
        let shared = progress.clone();
        let thread = std::thread::spawn(move || {
            let mut connection = None;
            (0..messages)
                .map(|n| {
                    let id = format!("K{n:05}");
                    let text = adt_a04(&id, &format!("PAT{:02}", n % patients));
                    send_until_accepted(port, &mut connection, &id, &text, &shared);
                    shared.acked.fetch_add(1, Ordering::SeqCst);
                    id
                })
                .collect()
        });
        Client { progress, thread }
    }

    fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits until `n` messages are ACKed, looking often (a kill should
    /// land close to its point in the stream); false on `timeout` or when
    /// the client stopped short of it.
    fn wait_acked(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.progress.acked.load(Ordering::SeqCst) < n {
            if self.is_finished() || Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// The control ids ACKed, in order, once all are.
    fn finish(self) -> Vec<String> {
        self.thread.join().expect("client thread")
    }
}

/// Sends one message until the host answers it AA or CA, reconnecting and
/// resending as needed; notes resends and interrupting kills.
fn send_until_accepted(
    port: u16,
    connection: &mut Option<TcpStream>,
    id: &str,
    text: &str,
    progress: &Progress,
) {
    let mut frame = vec![0x0b];
    frame.extend_from_slice(text.as_bytes());
    frame.extend_from_slice(b"\x1c\r");
    for _ in 0..5000 {
        if connection.is_none() {
            *connection = connect(port);
        }
        let Some(stream) = connection.as_mut() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let answer = stream.write_all(&frame).map(|()| {
            let kills_before = progress.kills_begun.load(Ordering::SeqCst);
            (kills_before, read_msa(stream))
        });
        let why = match answer {
            Ok((_, Ok((code, acked_id)))) => {
                assert_eq!(acked_id, id, "an ACK for another message");
                if code == "AA" || code == "CA" {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
                code
            }
            Ok((kills_before, Err(e))) => {
                let kills_now = progress.kills_begun.load(Ordering::SeqCst);
                if kills_now > kills_before {
                    progress
                        .interrupted
                        .lock()
                        .unwrap()
                        .insert(kills_before + 1);
                }
                *connection = None;
                format!("no ACK ({:?})", e.kind())
            }
            Err(e) => {
                *connection = None;
                format!("no ACK (write {:?})", e.kind())
            }
        };
        *progress.resends.lock().unwrap().entry(why).or_default() += 1;
    }
    panic!("{id}: not accepted after 5000 attempts");
}

fn connect(port: u16) -> Option<TcpStream> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.storm;
        let resends: Vec<String> = self
            .resends
            .iter()
            .map(|(why, n)| format!("{n} after {why}"))
            .collect();
        write!(
            f,
            "{:?} ACKs, seed {}: {} messages, {} kills, {} interrupted the stream; \
             resends: {}; ACKs lost at kills: {}; duplicate deliveries: {} (all explained); \
             {:.1} s, {:.0} msg/s",
            s.ack,
            s.seed,
            s.messages,
            s.kills,
            self.interrupted,
            if resends.is_empty() {
                "none".to_string()
            } else {
                resends.join(", ")
            },
            self.acks_lost,
            self.duplicates,
            self.elapsed.as_secs_f64(),
            s.messages as f64 / self.elapsed.as_secs_f64()
        )
    }
}
