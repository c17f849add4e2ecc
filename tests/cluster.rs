//! Several hosts with the same config on one PostgreSQL journal, all
//! active: every host takes MLLP traffic and ACKs after its commit, each
//! bot and destination is owned by one live host at a time, and the
//! singletons (SFTP sources, cron, ...) run on the leader. The tests kill
//! hosts (SIGKILL) under load, cut one off its database through a
//! [`TcpProxy`], and check that everything ACKed arrives, per-patient order
//! holds, a message arrives twice only when a host that had sent it went
//! away before recording it, and the survivors take over within
//! `takeover_s`. Each test starts its own PostgreSQL server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use interlink_tests::{
    Arrival, Host, Peer, PeerServer, PgServer, SshServer, TcpProxy, adt_a04, base_config,
    free_port, now_ms, read_msa, skip_unless_sqlite, wait_until,
};

/// `[journal] takeover_s` of every host: short, to keep the tests quick.
const TAKEOVER_S: u64 = 3;

/// How long to wait for a positive signal (a log line, a delivery).
const WAIT: Duration = Duration::from_secs(60);

/// Patients per sender, in turn: `A00000` is patient `AP0`, `A00001` `AP1`.
const PATIENTS: usize = 3;

/// What a host logs when it becomes the owner of destination `out`.
const TOOK_OUT: &str = "cluster: took destination \"out\"";

/// What a host logs when it has handed destination `out` over.
const HANDED_OUT: &str = "cluster: handed over destination \"out\"";

/// What the leader logs.
const LEADING: &str =
    "cluster: leading: SFTP sources, drop folders, cron and the purge run on this host";

/// Why these tests run on the SQLite pass of `scripts/test` only: each
/// starts a PostgreSQL server of its own whatever the pass.
const ONE_PASS: &str = "it starts its own PostgreSQL on either pass";

/// Hosts on one journal, a python-hl7 MLLP server as the receiver of
/// destination `out`, and the PostgreSQL server (stopped last: fields drop
/// in order).
struct Cluster {
    hosts: Vec<Host>,
    /// The MLLP listener `in` of each host.
    ports: Vec<u16>,
    /// Where each host's current run begins in its [`Host::log`].
    run_log_start: Vec<usize>,
    peer: PeerServer,
    peer_port: u16,
    /// Config every host gets after its listener and destination.
    extra: String,
    /// The journal database, reached directly.
    url: String,
    _peer_dir: tempfile::TempDir,
    pg: PgServer,
}

impl Cluster {
    /// A PostgreSQL server with an empty journal database and the peer; no
    /// hosts yet (see [`Cluster::add`]).
    fn new(extra: &str) -> Cluster {
        let pg = PgServer::start();
        let url = pg.url(&pg.create_database());
        let peer_dir = tempfile::tempdir().unwrap();
        let peer_port = free_port();
        let peer = PeerServer::start(
            Peer::Python,
            peer_port,
            "aa",
            &peer_dir.path().join("peer.log"),
        );
        Cluster {
            hosts: Vec::new(),
            ports: Vec::new(),
            run_log_start: Vec::new(),
            peer,
            peer_port,
            extra: extra.to_string(),
            url,
            _peer_dir: peer_dir,
            pg,
        }
    }

    /// [`Cluster::new`] with `n` hosts reaching the database directly.
    fn with_hosts(n: usize, extra: &str) -> Cluster {
        let mut cluster = Cluster::new(extra);
        for _ in 0..n {
            let url = cluster.url.clone();
            cluster.add(&url);
        }
        cluster
    }

    /// Adds a host (not started) with the journal at `url`: listener `in`,
    /// the probe bot sending every message on to `out`; returns its index.
    fn add(&mut self, url: &str) -> usize {
        let port = free_port();
        let config = base_config(&format!(
            r#"
[[listener]]
name = "in"
listen = "127.0.0.1:{port}"

[[destination]]
name = "out"
kind = "mllp"
host = "127.0.0.1"
port = {peer_port}
connect_timeout_s = 1
retry = {{ initial_backoff_ms = 50, max_backoff_s = 1 }}
{extra}"#,
            peer_port = self.peer_port,
            extra = self.extra,
        ))
        .replace(
            "[journal]\n",
            &format!("[journal]\ntakeover_s = {TAKEOVER_S}\n"),
        );
        let host = Host::new(&config).with_journal_url(url);
        host.install_bot("probe_v1", "probe.wasm");
        self.hosts.push(host);
        self.ports.push(port);
        self.run_log_start.push(0);
        self.hosts.len() - 1
    }

    /// The journal's URL through `proxy` instead of directly.
    fn url_through(&self, proxy: &TcpProxy) -> String {
        let direct = format!(":{}/", self.pg.port);
        assert!(self.url.contains(&direct), "{}", self.url);
        self.url.replace(&direct, &format!(":{}/", proxy.port()))
    }

    /// Starts host `i` and waits until it is ready (it has joined the
    /// cluster before it gets there).
    fn start(&mut self, i: usize) {
        self.run_log_start[i] = self.hosts[i].log().len();
        self.hosts[i].start();
    }

    fn start_all(&mut self) {
        for i in 0..self.hosts.len() {
            self.start(i);
        }
    }

    /// How many times host `i` has logged that it took `out`.
    fn took_out(&self, i: usize) -> usize {
        self.hosts[i].log_lines(&|l| l.contains(TOOK_OUT))
    }

    /// Whether host `i`'s current run holds `out`, per its log: it took
    /// `out` more often than it logged handing it over.
    fn holds_out(&self, i: usize) -> bool {
        let log = self.hosts[i].log();
        let run = &log[self.run_log_start[i]..];
        run.matches(TOOK_OUT).count() > run.matches(HANDED_OUT).count()
    }

    /// SIGKILLs host `i` and returns the time just before (ms since the
    /// epoch), for [`Cluster::check_arrivals`]. When it held `out`, asserts
    /// that another host takes `out` within `takeover_s`.
    fn kill(&mut self, i: usize) -> i64 {
        // Counted before looking whether `i` holds `out`: a host that
        // takes it from `i` in between is seen taking it.
        let took_before: Vec<usize> = (0..self.hosts.len()).map(|j| self.took_out(j)).collect();
        let owned_out = self.holds_out(i);
        let at = now_ms();
        self.hosts[i].kill();
        let killed = Instant::now();
        if owned_out {
            let survivor_took =
                || (0..self.hosts.len()).any(|j| j != i && self.took_out(j) > took_before[j]);
            assert!(
                wait_until(WAIT, survivor_took),
                "no survivor took \"out\" after host {i} was killed; {}",
                self.logs()
            );
            let after = killed.elapsed();
            eprintln!("\"out\" taken over {after:?} after killing host {i}");
            assert!(
                after <= Duration::from_secs(TAKEOVER_S),
                "\"out\" taken over only {after:?} after the kill; {}",
                self.logs()
            );
        }
        at
    }

    /// `interlink cluster --json`, run in host `i`'s directory.
    fn status(&self, i: usize) -> serde_json::Value {
        let out = self.hosts[i].cli(&["cluster", "--json"]);
        assert!(
            out.status.success(),
            "interlink cluster --json: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "interlink cluster --json ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The index of the host that owns `out`, per `interlink cluster`.
    fn owner_of_out(&self) -> usize {
        let mut owner = None;
        let found = wait_until(WAIT, || {
            let status = self.status(0);
            owner = live_hosts(&status)
                .into_iter()
                .find(|h| owns(h, "destinations", "out"))
                .and_then(|h| {
                    let pid = h["pid"].as_u64()?;
                    self.hosts
                        .iter()
                        .position(|host| host.pid().map(u64::from) == Some(pid))
                });
            owner.is_some()
        });
        assert!(found, "no host owns \"out\": {}", self.status(0));
        owner.unwrap()
    }

    /// One continuous [`Sender`] per host, to its listener first.
    fn senders(&self, limit: usize) -> Vec<Sender> {
        (0..self.hosts.len())
            .map(|i| {
                let mut ports = self.ports.clone();
                ports.rotate_left(i);
                Sender::start((b'A' + i as u8) as char, ports, limit)
            })
            .collect()
    }

    /// Waits until every message in `acked` has reached the peer and the
    /// outbox is drained (read through host `via`), then checks that each
    /// message was journaled once, arrived at most twice, a second time
    /// only if it was in flight at one of the `breaks` (kill or cut times,
    /// ms) before that second arrival: first sent on a connection opened
    /// before it, and first recorded as sent only after it (a message sent
    /// again keeps its first `sent_ms`), and that each patient's messages
    /// first arrived in the order they were sent.
    fn check_arrivals(&self, via: usize, acked: &[String], breaks: &[i64]) {
        let host = &self.hosts[via];
        let missing = || {
            let got: HashSet<String> = self.peer.received().into_iter().map(|(c, _)| c).collect();
            acked.iter().filter(|id| !got.contains(*id)).count()
        };
        let unsent = || host.query::<i64>("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'");
        let drained = wait_until(2 * WAIT, || missing() == 0 && unsent() == 0);
        assert!(
            drained,
            "{} of {} ACKed messages never arrived, {} outbox rows not sent; {}",
            missing(),
            acked.len(),
            unsent(),
            self.logs()
        );
        let events: i64 = host.query("SELECT COUNT(*) FROM events WHERE source = 'in'");
        let distinct: i64 =
            host.query("SELECT COUNT(DISTINCT control_id) FROM events WHERE source = 'in'");
        assert_eq!(events, distinct, "a message journaled twice");

        let sent_ms: HashMap<String, i64> = host
            .query_rows(
                "SELECT e.control_id, o.sent_ms FROM outbox o JOIN events e ON e.id = o.event_id \
                 WHERE o.destination = 'out'",
            )
            .iter()
            .map(|r| (r[0].get(), r[1].get()))
            .collect();
        let arrivals = self.peer.arrivals();
        let mut copies: BTreeMap<&str, Vec<&Arrival>> = BTreeMap::new();
        for a in &arrivals {
            copies.entry(&a.control_id).or_default().push(a);
        }
        let mut duplicates = 0;
        for (id, c) in &copies {
            assert!(c.len() <= 2, "{id} arrived {} times: {c:?}", c.len());
            if let [first, second] = c[..] {
                duplicates += 1;
                let sent = sent_ms.get(*id).copied().unwrap_or_default();
                let in_flight =
                    |t: &i64| first.connection_opened_ms < *t && *t <= second.at_ms && sent >= *t;
                assert!(
                    first.connection != second.connection && breaks.iter().any(in_flight),
                    "{id} arrived twice though not in flight at a kill ({breaks:?}): \
                     {c:?}, first recorded as sent at {sent}"
                );
            }
        }
        let mut last: HashMap<(char, usize), usize> = HashMap::new();
        let mut seen = HashSet::new();
        for a in arrivals.iter().filter(|a| seen.insert(&a.control_id)) {
            let (sender, n) = split_id(&a.control_id);
            if let Some(before) = last.insert((sender, n % PATIENTS), n) {
                assert!(
                    before < n,
                    "patient {sender}P{}: {} arrived after {sender}{before:05}",
                    n % PATIENTS,
                    a.control_id
                );
            }
        }
        eprintln!(
            "{} messages ACKed, {} arrivals, {duplicates} second copies (all in flight at a kill)",
            acked.len(),
            arrivals.len()
        );
    }

    /// The last lines each host logged and the journal's sessions, for a
    /// failure's message.
    fn logs(&self) -> String {
        let logs: String = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let log = h.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                format!("--- host {i} (last 60 lines) ---\n{tail}\n")
            })
            .collect();
        format!("{logs}--- sessions ---\n{}", self.sessions())
    }

    /// The journal database's sessions as PostgreSQL sees them (client
    /// port, state, what they wait on, since when, the query).
    fn sessions(&self) -> String {
        let sql = "SELECT concat_ws(' | ', pid, client_port, state, wait_event_type, wait_event, \
                   to_char(now() - state_change, 'HH24:MI:SS'), \
                   to_char(now() - xact_start, 'HH24:MI:SS'), left(query, 100)) \
                   FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
        match postgres::Client::connect(&self.url, postgres::NoTls) {
            Ok(mut c) => match c.query(sql, &[]) {
                Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0) + "\n").collect(),
                Err(e) => format!("{e}"),
            },
            Err(e) => format!("{e}"),
        }
    }
}

/// The hosts `interlink cluster --json` lists as live.
fn live_hosts(status: &serde_json::Value) -> Vec<&serde_json::Value> {
    status["hosts"]
        .as_array()
        .map(|hosts| hosts.iter().filter(|h| h["live"] == true).collect())
        .unwrap_or_default()
}

/// Whether a host of `interlink cluster --json` has `name` in its list
/// `kind` (`bots` or `destinations`).
fn owns(host: &serde_json::Value, kind: &str, name: &str) -> bool {
    host[kind]
        .as_array()
        .is_some_and(|names| names.iter().any(|n| n == name))
}

/// `A00012` as ('A', 12).
fn split_id(id: &str) -> (char, usize) {
    let sender = id.chars().next().expect("control id");
    let n = id[1..]
        .parse()
        .unwrap_or_else(|_| panic!("control id {id}"));
    (sender, n)
}

/// A client of the cluster's listeners on a thread of its own, sending
/// `<name>00000`, `<name>00001`, ... (its patients `<name>P0`.. in turn),
/// one at a time, each until a listener answers AA (or CA): to its own listener
/// (`ports[0]`), or, while that one does not answer, to the others in
/// turn, going back to its own every 20 messages. Its patients' messages
/// are therefore sent in a defined order.
struct Sender {
    state: Arc<SenderState>,
    thread: JoinHandle<()>,
}

/// What a [`Sender`]'s thread shares.
#[derive(Default)]
struct SenderState {
    acked: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Sender {
    /// Starts sending `limit` messages (or until stopped).
    fn start(name: char, ports: Vec<u16>, limit: usize) -> Sender {
        let state = Arc::new(SenderState::default());
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let mut at = 0;
            let mut stream = None;
            for n in 0..limit {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                if n % 20 == 0 && at != 0 {
                    (at, stream) = (0, None);
                }
                let id = format!("{name}{n:05}");
                let text = adt_a04(&id, &format!("{name}P{}", n % PATIENTS));
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "{id} not accepted in 120 s");
                    if stream.is_none() {
                        stream = connect_any(&ports, &mut at);
                    }
                    let Some(s) = stream.as_mut() else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let accepted = [format!("AA {id}"), format!("CA {id}")];
                    if exchange(s, &text).is_ok_and(|ack| accepted.contains(&ack)) {
                        break;
                    }
                    (at, stream) = ((at + 1) % ports.len(), None);
                    std::thread::sleep(Duration::from_millis(20));
                }
                shared.acked.lock().unwrap().push(id);
            }
        });
        Sender { state, thread }
    }

    /// How many messages were ACKed so far.
    fn acked(&self) -> usize {
        self.state.acked.lock().unwrap().len()
    }

    /// Asks the sender to stop after the message it is sending.
    fn stop(&self) {
        self.state.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the sender to end; the control ids ACKed, in order, or
    /// why it gave up.
    fn join(self) -> Result<Vec<String>, String> {
        self.thread.join().map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "the sender panicked".into())
        })?;
        Ok(std::mem::take(&mut *self.state.acked.lock().unwrap()))
    }
}

/// Messages ACKed by all `senders` so far.
fn total_acked(senders: &[Sender]) -> usize {
    senders.iter().map(Sender::acked).sum()
}

/// Waits until `senders` have had `more` messages ACKed from now on.
fn wait_progress(senders: &[Sender], more: usize, cluster: &Cluster) {
    let want = total_acked(senders) + more;
    assert!(
        wait_until(WAIT, || total_acked(senders) >= want),
        "traffic stalled at {} ACKs; {}",
        total_acked(senders),
        cluster.logs()
    );
}

/// Joins every sender; all the control ids ACKed. A sender that gave up
/// fails the test with the hosts' logs.
fn join_all(senders: Vec<Sender>, cluster: &Cluster) -> Vec<String> {
    let mut acked = Vec::new();
    for sender in senders {
        match sender.join() {
            Ok(ids) => acked.extend(ids),
            Err(why) => panic!("a sender gave up: {why}; {}", cluster.logs()),
        }
    }
    acked
}

/// A connection to the first of `ports`, from `*at` on, that accepts one;
/// `*at` becomes its index.
fn connect_any(ports: &[u16], at: &mut usize) -> Option<TcpStream> {
    (0..ports.len()).find_map(|k| {
        let i = (*at + k) % ports.len();
        let address = SocketAddr::from(([127, 0, 0, 1], ports[i]));
        let s = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
        *at = i;
        Some(s)
    })
}

/// Sends one framed message and reads its ACK: "MSA-1 MSA-2".
fn exchange(s: &mut TcpStream, text: &str) -> std::io::Result<String> {
    s.write_all(&[b"\x0b", text.as_bytes(), b"\x1c\r"].concat())?;
    let (code, id) = read_msa(s)?;
    Ok(format!("{code} {id}"))
}

#[test]
fn two_active_hosts_take_load_and_a_survivor_takes_over_a_killed_hosts_destination() {
    if skip_unless_sqlite(ONE_PASS) {
        return;
    }
    let mut cluster = Cluster::with_hosts(2, "");
    // Host 0 starts alone, so it owns the bot and `out`; host 1 only
    // listens until host 0 dies.
    cluster.start(0);
    cluster.hosts[0].wait_log(TOOK_OUT, WAIT);
    cluster.start(1);
    let senders = cluster.senders(60);
    wait_progress(&senders, 50, &cluster);
    let kill = cluster.kill(0);
    let acked = join_all(senders, &cluster);
    assert_eq!(acked.len(), 120);
    cluster.check_arrivals(1, &acked, &[kill]);
}

#[test]
fn three_hosts_under_load_lose_nothing_across_repeated_kills_of_each() {
    if skip_unless_sqlite(ONE_PASS) {
        return;
    }
    // Two more destinations (nothing is sent to them), so that a host
    // left with two of the three after a kill hands one over when the
    // killed host is back: `out` changes hands under load that way too
    // (a host keeps the first of its names in order, hence "aux").
    let spares: String = ["aux1", "aux2"]
        .iter()
        .map(|name| {
            format!(
                "[[destination]]\nname = \"{name}\"\nkind = \"mllp\"\nhost = \"127.0.0.1\"\nport = {}\n",
                free_port()
            )
        })
        .collect();
    let mut cluster = Cluster::with_hosts(3, &spares);
    cluster.start_all();
    let senders = cluster.senders(usize::MAX);
    // Whoever owns `out`; then a host that does not and was not killed
    // yet; then the one not killed yet; then one that does not own `out`.
    // So every host dies once, the owner of `out` at least once.
    let mut kills = Vec::new();
    let mut killed = HashSet::new();
    for round in 0..4 {
        wait_progress(&senders, 60, &cluster);
        let owner = cluster.owner_of_out();
        let victim = match round {
            0 => owner,
            2 => (0..3).find(|i| !killed.contains(i)).unwrap(),
            _ => (0..3)
                .find(|&i| i != owner && !killed.contains(&i))
                .unwrap_or((owner + 1) % 3),
        };
        killed.insert(victim);
        eprintln!("round {round}: killing host {victim} (\"out\" is on host {owner})");
        kills.push(cluster.kill(victim));
        wait_progress(&senders, 30, &cluster);
        cluster.start(victim);
    }
    wait_progress(&senders, 60, &cluster);
    senders.iter().for_each(Sender::stop);
    let acked = join_all(senders, &cluster);
    cluster.check_arrivals(0, &acked, &kills);
    let handovers = |line: &str| -> usize {
        (0..3)
            .map(|i| cluster.hosts[i].log_lines(&|l| l.contains(line)))
            .sum()
    };

    let mut status = serde_json::Value::Null;
    let settled = wait_until(WAIT, || {
        status = cluster.status(0);
        let live = live_hosts(&status);
        let count = |f: &dyn Fn(&serde_json::Value) -> bool| live.iter().filter(|h| f(h)).count();
        status["backend"] == "postgres"
            && live.len() == 3
            && count(&|h| h["leader"] == true) == 1
            && count(&|h| owns(h, "destinations", "out")) == 1
    });
    assert!(
        settled,
        "want 3 live hosts, one leader, one owner of \"out\": {status:#}"
    );
    // Each restart left a host with two of the three destinations, and it
    // handed one over to the host that came back.
    let handed_over = wait_until(WAIT, || handovers("cluster: handed over destination ") >= 1);
    assert!(
        handed_over,
        "no destination was handed over; {}",
        cluster.logs()
    );
    eprintln!(
        "{} destinations handed over, {} of them \"out\"",
        handovers("cluster: handed over destination "),
        handovers(HANDED_OUT)
    );
}

#[test]
fn a_host_cut_off_from_the_database_stops_before_another_takes_its_destination() {
    if skip_unless_sqlite(ONE_PASS) {
        return;
    }
    let mut cluster = Cluster::new("");
    let proxy = TcpProxy::start(cluster.pg.port);
    let a = cluster.add(&cluster.url_through(&proxy));
    let direct = cluster.url.clone();
    let b = cluster.add(&direct);
    cluster.start(a);
    cluster.hosts[a].wait_log(TOOK_OUT, WAIT);
    cluster.start(b);
    // Cut under load: a is in the middle of its work.
    let senders = cluster.senders(usize::MAX);
    wait_progress(&senders, 40, &cluster);
    proxy.cut();
    let since_cut = Instant::now();
    let cut = now_ms();
    // Positive signals in this order: a's exit, then b's taking `out`.
    let mut exited = None;
    let took = wait_until(Duration::from_secs(4 * TAKEOVER_S + 30), || {
        let b_took = cluster.took_out(b) > 0;
        if exited.is_none() {
            assert!(
                !b_took,
                "b took \"out\" before a's exit was seen; {}",
                cluster.logs()
            );
            exited = cluster.hosts[a].wait_exit(Duration::ZERO);
            return false;
        }
        b_took
    });
    let taken = since_cut.elapsed();
    assert!(exited.is_some(), "a never stopped; {}", cluster.logs());
    assert!(took, "b never took \"out\"; {}", cluster.logs());
    eprintln!("the cut-off host exited, and \"out\" was taken {taken:?} after the cut");
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(75),
        "{}",
        cluster.logs()
    );
    cluster.hosts[a].wait_log("lost the hold on the journal", WAIT);
    assert!(
        taken <= Duration::from_secs(TAKEOVER_S + 3),
        "\"out\" taken over only {taken:?} after the cut"
    );
    // b goes on alone, with a's traffic too.
    wait_progress(&senders, 40, &cluster);
    senders.iter().for_each(Sender::stop);
    let acked = join_all(senders, &cluster);
    cluster.check_arrivals(b, &acked, &[cut]);
}

#[test]
fn a_host_whose_database_goes_away_stops_itself() {
    if skip_unless_sqlite(ONE_PASS) {
        return;
    }
    let mut cluster = Cluster::with_hosts(1, "");
    cluster.start(0);
    // The server goes away under the host (as a cut network does, from
    // the host's side): it must stop working rather than go on alone.
    cluster.pg.kill();
    let lost = Instant::now();
    cluster.hosts[0].wait_log("lost the hold on the journal", WAIT);
    let fenced = lost.elapsed();
    let status = cluster.hosts[0].wait_exit(WAIT);
    // Before another host could have its locks (after takeover_s).
    assert!(fenced < Duration::from_secs(TAKEOVER_S), "{fenced:?}");
    // 75 (EX_TEMPFAIL), for a supervisor to restart it.
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(75),
        "{}",
        cluster.logs()
    );
}

/// Puts `name` into the SFTP server's `in/` as an uploader finishing a
/// file would (written aside, renamed in).
fn upload(server: &SshServer, name: &str, text: &str) {
    let dir = server.remote("in");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// How many files are in `dir`.
fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// The scheduled times (ms) of every tick journaled, oldest first.
fn ticks(host: &Host) -> Vec<i64> {
    host.query_col::<String>("SELECT body FROM events WHERE kind = 'tick' ORDER BY id")
        .iter()
        .map(|b| b.parse().unwrap())
        .collect()
}

#[test]
fn sftp_files_and_cron_firings_are_taken_once_across_a_leader_kill() {
    if skip_unless_sqlite(ONE_PASS) {
        return;
    }
    let server = SshServer::start();
    let done = server.remote("done");
    let extra = format!(
        "{}after = \"move:{}\"\npattern = \"*.hl7\"\n\
         [bots.probe]\nsubscribe_also = [{{ cron = \"* * * * * *\" }}]\n",
        server.source_table("lab", "in", "user_key", "known_hosts"),
        done.display()
    );
    let mut cluster = Cluster::with_hosts(3, &extra);
    cluster.start_all();
    let upload_all = |ids: &[&str]| {
        for id in ids {
            upload(&server, &format!("{id}.hl7"), &adt_a04(id, "P1"));
        }
    };
    upload_all(&["S1", "S2", "S3"]);
    let logs = |c: &Cluster| format!("{}sshd:\n{}", c.logs(), server.log());
    assert!(
        wait_until(WAIT, || files_in(&done) == 3),
        "{}",
        logs(&cluster)
    );
    let mut leader = None;
    assert!(wait_until(WAIT, || {
        leader = (0..3).find(|&i| cluster.hosts[i].log().contains(LEADING));
        leader.is_some()
    }));
    let leader = leader.unwrap();
    let survivor = (leader + 1) % 3;
    assert!(wait_until(WAIT, || ticks(&cluster.hosts[survivor]).len() >= 2));

    let kill = cluster.kill(leader);
    upload_all(&["S4", "S5", "S6"]);
    let new_leader = wait_until(WAIT, || {
        (0..3).any(|i| i != leader && cluster.hosts[i].log().contains(LEADING))
    });
    assert!(new_leader, "no survivor leads; {}", logs(&cluster));
    eprintln!(
        "leader host {leader} killed; another leads {:?} later",
        Duration::from_millis((now_ms() - kill) as u64)
    );
    assert!(
        wait_until(WAIT, || files_in(&done) == 6),
        "{}",
        logs(&cluster)
    );
    let host = &cluster.hosts[survivor];
    let fired_after = || ticks(host).iter().filter(|&&t| t > kill).count();
    assert!(
        wait_until(WAIT, || fired_after() >= 3),
        "cron stopped at the leader's kill: {:?}; {}",
        ticks(host),
        logs(&cluster)
    );

    let per_file: Vec<(String, i64)> = host
        .query_rows(
            "SELECT name, COUNT(*) FROM events WHERE source = 'lab' GROUP BY name ORDER BY name",
        )
        .iter()
        .map(|r| (r[0].get(), r[1].get()))
        .collect();
    let want: Vec<(String, i64)> = (1..=6).map(|i| (format!("S{i}.hl7"), 1)).collect();
    assert_eq!(per_file, want, "events per file");
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM files WHERE source = 'lab'"),
        6
    );
    let twice: Vec<String> = host.query_col(
        "SELECT body FROM events WHERE kind = 'tick' GROUP BY source, body HAVING COUNT(*) > 1",
    );
    assert!(twice.is_empty(), "firings journaled twice: {twice:?}");
}
