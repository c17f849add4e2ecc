//! What a bot instance's store holds, and the `host` interface bots import:
//! logging, settings, destinations, and durable key-value and sequence state
//! layered over the journal so that an event's writes land only if it
//! succeeds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime::{Result, bail};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{DestinationInfo, Level, Outbound, Payload, host};
use super::bot::Failure;
use crate::config::refuses_payload;
use crate::journal::{self, Queued, Reader, StateWrites};
use interlink_sdk::file_name::check_file_name;
use interlink_sdk::hl7::{Message, Path};
use interlink_sdk::query::percent_decode;

/// Largest key a bot may use.
const MAX_KEY_BYTES: usize = 1024;
/// Largest value a bot may store under one key.
const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Most log lines one call may write; later ones are dropped.
const MAX_LOG_LINES: usize = 1000;
/// Longest log line kept; longer ones are cut.
const MAX_LOG_LINE: usize = 8 * 1024;

/// What the host configuration grants a bot.
#[derive(Debug, Clone, Default)]
pub struct BotPolicy {
    /// Any destination name is accepted (`interlink test` without a
    /// config, where there are none to check against).
    pub any_destination: bool,
    pub settings: BTreeMap<String, String>,
    /// Destinations the bot may see and send to.
    pub destinations: BTreeMap<String, DestinationInfo>,
    /// What keeps related messages in one lane, for those that spread
    /// messages over lanes.
    pub ordering_keys: BTreeMap<String, OrderingKey>,
}

/// What keeps a destination's related messages in one lane.
#[derive(Debug, Clone, Default)]
pub struct OrderingKey {
    /// `ordering_key`: the value at this path of an HL7 message.
    pub hl7: Option<Path>,
    /// `ordering_header` (HTTP): the value of this request header (lower
    /// case) of a bytes payload.
    pub header: Option<String>,
}

impl BotPolicy {
    /// No settings, and every destination name accepted.
    pub fn open() -> Self {
        BotPolicy {
            any_destination: true,
            ..BotPolicy::default()
        }
    }

    /// A reply's outbound messages, if the host accepts them: each must
    /// name a destination this bot may use, and be HL7, or bytes with a
    /// usable file name for a destination that takes files, and delayed to
    /// at most [`MAX_DELAY_MS`] after `now_ms`.
    pub fn accept(&self, send: Vec<Outbound>, now_ms: i64) -> Result<Vec<Queued>, Failure> {
        send.into_iter()
            .map(|out| self.accept_one(out, now_ms))
            .collect()
    }

    fn accept_one(&self, out: Outbound, now_ms: i64) -> Result<Queued, Failure> {
        let to = &out.destination;
        let info = self.destinations.get(to);
        if info.is_none() && !self.any_destination {
            return Err(Failure::Refused(format!(
                "destination {to:?} does not exist or is not allowed for this bot"
            )));
        }
        if let Some(kind) = info.map(|i| &i.kind) {
            let bytes = matches!(out.payload, Payload::Bytes(_));
            if let Some(why) = refuses_payload(kind, bytes) {
                return Err(Failure::Refused(format!(
                    "destination {to:?} is {kind}, which {why}"
                )));
            }
        }
        let (payload, order_hash) = match out.payload {
            Payload::Hl7(text) => {
                let msg = Message::parse(&text)
                    .map_err(|e| Failure::Refused(format!("message for {to:?} is not HL7: {e}")))?;
                let key = self.ordering_keys.get(to).and_then(|k| k.hl7.as_ref());
                let order_hash = key.map_or(0, |key| {
                    order_hash(msg.get_path(key).as_deref().unwrap_or(""))
                });
                (journal::Payload::Hl7(text), order_hash)
            }
            Payload::Bytes(bytes) => {
                let kind = info.map(|i| i.kind.as_str());
                if let Some(name) = &bytes.name {
                    check_file_name(name).map_err(|why| {
                        Failure::Refused(format!("file name {name:?} for {to:?} {why}"))
                    })?;
                }
                let http = bytes.http.map(|h| journal::HttpOptions {
                    method: h.method,
                    path: h.path,
                    headers: h.headers,
                });
                if let Some(h) = &http {
                    if let Some(kind) = kind.filter(|k| *k != "http") {
                        return Err(Failure::Refused(format!(
                            "destination {to:?} is {kind}: only an http destination takes \
                             a method, path or headers"
                        )));
                    }
                    check_http(h).map_err(|why| Failure::Refused(format!("{why} for {to:?}")))?;
                }
                let key = self.ordering_keys.get(to).and_then(|k| k.header.as_ref());
                let order_hash = key.map_or(0, |key| {
                    let mut headers = http.iter().flat_map(|h| &h.headers);
                    let value = headers.find(|(k, _)| k.eq_ignore_ascii_case(key));
                    order_hash(value.map_or("", |(_, v)| v))
                });
                let payload = journal::Payload::Bytes {
                    data: bytes.data,
                    name: bytes.name,
                    content_type: bytes.content_type,
                    http,
                };
                (payload, order_hash)
            }
        };
        let not_before_ms = match out.not_before_ms {
            None => 0,
            Some(t) if t > now_ms.saturating_add(MAX_DELAY_MS) as u64 => {
                return Err(Failure::Refused(format!(
                    "not-before-ms for {to:?} is more than {} days ahead",
                    MAX_DELAY_MS / DAY_MS
                )));
            }
            Some(t) => t as i64,
        };
        Ok(Queued {
            destination: out.destination,
            payload,
            not_before_ms,
            order_hash,
        })
    }
}

const DAY_MS: i64 = 24 * 3600 * 1000;
/// How far ahead a message may be delayed: a message waiting in the outbox
/// keeps its event from being purged, and one years ahead is a mistake.
const MAX_DELAY_MS: i64 = 30 * DAY_MS;

/// Why an http destination cannot send a message with these options: the
/// method must be a token, the path relative to the destination's url
/// (no scheme, no leading `/`, no `..` segment, no `#`, no control
/// characters), and the headers usable and not the host's own.
fn check_http(h: &journal::HttpOptions) -> Result<(), String> {
    if let Some(m) = &h.method
        && http::Method::from_bytes(m.as_bytes()).is_err()
    {
        return Err(format!("method {m:?} is not an HTTP method"));
    }
    if let Some(p) = &h.path {
        let below = p.split(['?']).next().unwrap_or("");
        // Decoded as the server will: `%2e%2e` is `..` too.
        let climbs = |segment: &str| percent_decode(segment).is_none_or(|s| s == "..");
        if p.starts_with('/')
            || below.contains("://")
            || below.split('/').any(climbs)
            || p.contains('#')
            || p.chars().any(char::is_control)
        {
            return Err(format!(
                "path {p:?} must be relative to the destination's url (no leading /, \
                 scheme, .. segment (however encoded), bad %-escape, # or control characters)"
            ));
        }
    }
    for (name, value) in &h.headers {
        crate::config::check_header(name, value)
            .map_err(|why| format!("header {name:?}: {why}"))?;
    }
    Ok(())
}

/// FNV-1a of an ordering-key value: stable across builds, since it is
/// stored with the message, and never negative (SQLite's `%` keeps signs).
fn order_hash(value: &str) -> i64 {
    let hash = value.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i64::from(hash)
}

/// The durable state a session reads through to.
pub trait StateSource: Send {
    fn kv_get(&self, bot: &str, key: &str) -> Result<Option<Vec<u8>>>;
    fn kv_list(&self, bot: &str, prefix: &str) -> Result<Vec<String>>;
    fn sequence(&self, bot: &str, name: &str) -> Result<u64>;
}

/// A journal reader shared between a worker and the sessions it runs.
pub type SharedReader = Arc<Mutex<Reader>>;

impl StateSource for SharedReader {
    fn kv_get(&self, bot: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().expect("reader lock").kv_get(bot, key)?)
    }
    fn kv_list(&self, bot: &str, prefix: &str) -> Result<Vec<String>> {
        Ok(self.lock().expect("reader lock").kv_list(bot, prefix)?)
    }
    fn sequence(&self, bot: &str, name: &str) -> Result<u64> {
        Ok(self.lock().expect("reader lock").sequence(bot, name)?)
    }
}

/// No durable state at all: for `interlink check` and `interlink test`.
pub struct NoState;

impl StateSource for NoState {
    fn kv_get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn kv_list(&self, _: &str, _: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn sequence(&self, _: &str, _: &str) -> Result<u64> {
        Ok(0)
    }
}

/// Key-value and sequence writes not yet in the journal.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// `None` marks a deleted key.
    pub kv: BTreeMap<String, Option<Vec<u8>>>,
    pub sequences: BTreeMap<String, u64>,
}

impl Overlay {
    fn absorb(&mut self, newer: Overlay) {
        self.kv.extend(newer.kv);
        self.sequences.extend(newer.sequences);
    }
}

/// What a session's calls may do with state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Handling journaled events: read and write.
    Event,
    /// `manifest` is running: state is out of reach.
    Loading,
    /// Answering a query (HTTP `GET`/`HEAD`), which is not journaled:
    /// committed state can be read, not written.
    Query,
}

/// One bot's view of host state across a batch of events. Each event's
/// writes sit in `pending` until [`Session::keep_event`] moves them to
/// `batch` (the event succeeded) or [`Session::drop_event`] discards them.
pub struct Session {
    pub bot: String,
    pub policy: Arc<BotPolicy>,
    base: Box<dyn StateSource>,
    batch: Overlay,
    pending: Overlay,
    mode: Mode,
    /// The bot's log lines (and captured output) not yet written out.
    pub logs: Vec<(tracing::Level, String)>,
    /// What `now-ms` answers instead of the wall clock (`interlink test`).
    pub clock: Option<i64>,
}

impl Session {
    pub fn new(bot: &str, policy: Arc<BotPolicy>, base: Box<dyn StateSource>) -> Self {
        Session {
            bot: bot.to_string(),
            policy,
            base,
            batch: Overlay::default(),
            pending: Overlay::default(),
            mode: Mode::Event,
            logs: Vec::new(),
            clock: None,
        }
    }

    /// The time as the bot sees it: the test clock, else the wall clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.unwrap_or_else(crate::journal::now_ms)
    }

    /// A session for calling `manifest` or `check-settings` (with the
    /// settings of `policy`), where state is unavailable.
    pub fn loading(policy: Arc<BotPolicy>) -> Self {
        let mut s = Session::new("", policy, Box::new(NoState));
        s.mode = Mode::Loading;
        s
    }

    /// A session for answering a query: reads see committed state, writes
    /// (and sequences) trap.
    pub fn query(bot: &str, policy: Arc<BotPolicy>, base: Box<dyn StateSource>) -> Self {
        let mut s = Session::new(bot, policy, base);
        s.mode = Mode::Query;
        s
    }

    /// Whether the next calls answer a query (read-only) or handle events.
    pub fn set_query(&mut self, query: bool) {
        self.mode = if query { Mode::Query } else { Mode::Event };
    }

    /// The event succeeded: its writes join the batch.
    pub fn keep_event(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.batch.absorb(pending);
    }

    /// The event failed: its writes are discarded.
    pub fn drop_event(&mut self) {
        self.pending = Overlay::default();
    }

    /// The batch's writes, ready for the journal; the session starts a new
    /// batch.
    pub fn take_writes(&mut self) -> StateWrites {
        let batch = std::mem::take(&mut self.batch);
        StateWrites {
            bot: self.bot.clone(),
            kv: batch.kv.into_iter().collect(),
            sequences: batch.sequences.into_iter().collect(),
        }
    }

    fn writable(&self, what: &str) -> Result<()> {
        match self.mode {
            Mode::Event => Ok(()),
            Mode::Loading => {
                bail!(
                    "{what} is not available while the host loads the bot or checks its settings \
                     (in `manifest` or `check-settings`)"
                )
            }
            Mode::Query => bail!("{what} is not allowed while answering a query (GET/HEAD)"),
        }
    }

    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        for layer in [&self.pending, &self.batch] {
            if let Some(v) = layer.kv.get(key) {
                return Ok(v.clone());
            }
        }
        if self.mode == Mode::Loading {
            return Ok(None);
        }
        self.base.kv_get(&self.bot, key)
    }

    fn kv_list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys: BTreeSet<String> = if self.mode == Mode::Loading {
            BTreeSet::new()
        } else {
            self.base.kv_list(&self.bot, prefix)?.into_iter().collect()
        };
        for layer in [&self.batch, &self.pending] {
            for (k, v) in layer.kv.range(prefix.to_string()..) {
                if !k.starts_with(prefix) {
                    break;
                }
                match v {
                    Some(_) => keys.insert(k.clone()),
                    None => keys.remove(k),
                };
            }
        }
        Ok(keys.into_iter().collect())
    }

    fn next_sequence(&mut self, name: &str) -> Result<u64> {
        self.writable("next-sequence")?;
        let current = match self
            .pending
            .sequences
            .get(name)
            .or(self.batch.sequences.get(name))
        {
            Some(v) => *v,
            None => self.base.sequence(&self.bot, name)?,
        };
        let next = current + 1;
        self.pending.sequences.insert(name.to_string(), next);
        Ok(next)
    }
}

/// Caps linear memory growth and remembers whether the cap was hit, so a
/// trap can be reported as "exceeded its memory limit".
pub struct MemoryLimiter {
    pub cap: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            bail!("memory limit of {} MiB exceeded", self.cap / (1024 * 1024));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one instance's store.
pub struct BotState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub session: Session,
}

impl WasiView for BotState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl BotState {
    /// Adds a log line, within the per-call limits.
    pub fn push_log(&mut self, level: Level, mut message: String) {
        let logs = &mut self.session.logs;
        if logs.len() >= MAX_LOG_LINES {
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        logs.push((level.into(), message));
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        bail!(
            "key-value key of {} bytes is over the {MAX_KEY_BYTES}-byte limit",
            key.len()
        );
    }
    Ok(())
}

impl super::bindings::types::Host for BotState {}

impl host::Host for BotState {
    fn log(&mut self, level: Level, message: String) -> Result<()> {
        self.push_log(level, message);
        Ok(())
    }

    fn config(&mut self, key: String) -> Result<Option<String>> {
        Ok(self.session.policy.settings.get(&key).cloned())
    }

    fn destination(&mut self, name: String) -> Result<Option<DestinationInfo>> {
        Ok(self.session.policy.destinations.get(&name).cloned())
    }

    fn kv_get(&mut self, key: String) -> Result<Option<Vec<u8>>> {
        check_key(&key)?;
        self.session.kv_get(&key)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<()> {
        self.session.writable("kv-set")?;
        check_key(&key)?;
        if value.len() > MAX_VALUE_BYTES {
            bail!(
                "key-value value of {} bytes is over the {MAX_VALUE_BYTES}-byte limit",
                value.len()
            );
        }
        self.session.pending.kv.insert(key, Some(value));
        Ok(())
    }

    fn kv_delete(&mut self, key: String) -> Result<()> {
        self.session.writable("kv-delete")?;
        check_key(&key)?;
        self.session.pending.kv.insert(key, None);
        Ok(())
    }

    fn kv_list(&mut self, prefix: String) -> Result<Vec<String>> {
        self.session.kv_list(&prefix)
    }

    fn next_sequence(&mut self, name: String) -> Result<u64> {
        check_key(&name)?;
        self.session.next_sequence(&name)
    }

    fn now_ms(&mut self) -> Result<u64> {
        Ok(self.session.now_ms() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Base;
    impl StateSource for Base {
        fn kv_get(&self, _: &str, key: &str) -> Result<Option<Vec<u8>>> {
            Ok((key == "a").then(|| b"base".to_vec()))
        }
        fn kv_list(&self, _: &str, _: &str) -> Result<Vec<String>> {
            Ok(vec!["a".into()])
        }
        fn sequence(&self, _: &str, _: &str) -> Result<u64> {
            Ok(41)
        }
    }

    #[test]
    fn failed_events_leave_no_writes_and_kept_ones_stack() {
        let mut s = Session::new("bot", Arc::default(), Box::new(Base));
        assert_eq!(s.next_sequence("acc").unwrap(), 42);
        s.pending.kv.insert("b".into(), Some(b"1".to_vec()));
        s.keep_event();
        assert_eq!(s.next_sequence("acc").unwrap(), 43);
        s.pending.kv.insert("a".into(), None);
        assert_eq!(s.kv_list("").unwrap(), vec!["b".to_string()]);
        s.drop_event();
        assert_eq!(s.kv_get("a").unwrap().unwrap(), b"base");
        assert_eq!(
            s.kv_list("").unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        let w = s.take_writes();
        assert_eq!(w.sequences, vec![("acc".to_string(), 42)]);
        assert_eq!(w.kv, vec![("b".to_string(), Some(b"1".to_vec()))]);
    }

    #[test]
    fn state_is_out_of_reach_while_loading() {
        let mut s = Session::loading(Arc::default());
        assert!(
            s.next_sequence("x")
                .unwrap_err()
                .to_string()
                .contains("manifest")
        );
        assert_eq!(s.kv_get("a").unwrap(), None);
    }

    #[test]
    fn queries_read_committed_state_and_cannot_write() {
        let mut s = Session::query("bot", Arc::default(), Box::new(Base));
        assert_eq!(s.kv_get("a").unwrap().unwrap(), b"base");
        assert_eq!(s.kv_list("").unwrap(), vec!["a".to_string()]);
        let refused = s.next_sequence("x").unwrap_err().to_string();
        assert_eq!(
            refused,
            "next-sequence is not allowed while answering a query (GET/HEAD)"
        );
        assert!(s.writable("kv-set").is_err());
    }

    #[test]
    fn accepted_messages_carry_the_hash_of_their_ordering_key() {
        let info = |name: &str, kind: &str| DestinationInfo {
            name: name.into(),
            kind: kind.into(),
            encoding: "UNICODE UTF-8".into(),
            timezone: None,
            sending_facility: None,
            receiving_facility: None,
        };
        let policy = BotPolicy {
            destinations: [
                ("lanes".into(), info("lanes", "mllp")),
                ("one".into(), info("one", "mllp")),
                ("dir".into(), info("dir", "folder")),
                ("pacs".into(), info("pacs", "dicom")),
            ]
            .into(),
            ordering_keys: [(
                "lanes".into(),
                OrderingKey {
                    hl7: Some("PID-3.1".parse().unwrap()),
                    header: None,
                },
            )]
            .into(),
            ..BotPolicy::default()
        };
        let msg =
            |mrn: &str| format!("MSH|^~\\&|A|B|C|D|2026||ADT^A08|1|P|2.5\rPID|1||{mrn}^^^H\r");
        let send = |to: &str, mrn: &str| Outbound {
            destination: to.into(),
            payload: Payload::Hl7(msg(mrn)),
            not_before_ms: Some(7),
        };
        let queued = policy
            .accept(
                vec![
                    send("lanes", "M1"),
                    send("lanes", "M1"),
                    send("lanes", "M2"),
                    send("one", "M1"),
                ],
                0,
            )
            .unwrap();
        let hashes: Vec<i64> = queued.iter().map(|q| q.order_hash).collect();
        assert_eq!(hashes[0], hashes[1]);
        assert_ne!(hashes[0], hashes[2]);
        assert!(hashes.iter().all(|h| *h >= 0));
        assert_eq!(hashes[3], 0, "no ordering_key, one lane");
        assert_eq!(queued[0].payload, journal::Payload::Hl7(msg("M1")));
        assert_eq!(queued[0].not_before_ms, 7);

        // Bytes go to destinations that take files, under a plain name.
        let bytes = |to: &str, name: &str| Outbound {
            destination: to.into(),
            payload: Payload::Bytes(super::super::bindings::types::BytesPayload {
                data: b"a,b\n".to_vec(),
                name: Some(name.into()),
                content_type: Some("text/csv".into()),
                http: None,
            }),
            not_before_ms: None,
        };
        let queued = policy.accept(vec![bytes("dir", "list.csv")], 0).unwrap();
        assert_eq!(queued[0].not_before_ms, 0);
        let refused = |out| policy.accept(vec![out], 0).unwrap_err().to_string();
        assert_eq!(
            refused(bytes("one", "list.csv")),
            "reply refused: destination \"one\" is mllp, which takes HL7 text only; bytes go \
             to a folder, SFTP, http or DICOM destination"
        );
        // DICOM destinations take files, never HL7 text.
        assert!(policy.accept(vec![bytes("pacs", "exam.dcm")], 0).is_ok());
        assert_eq!(
            refused(send("pacs", "M1")),
            "reply refused: destination \"pacs\" is dicom, which takes DICOM Part-10 files as \
             bytes, not HL7 text"
        );
        for name in ["../x.csv", "a/b", ".hidden", "", "a\nb"] {
            assert!(
                refused(bytes("dir", name)).contains("file name"),
                "{name:?}"
            );
        }

        // A delay of more than 30 days is a mistake.
        let mut late = send("one", "M1");
        late.not_before_ms = Some(MAX_DELAY_MS as u64 + 1);
        assert!(refused(late).contains("more than 30 days ahead"));
    }

    #[test]
    fn http_options_go_to_http_destinations_only_and_are_checked() {
        let info = |name: &str, kind: &str| DestinationInfo {
            name: name.into(),
            kind: kind.into(),
            encoding: "utf-8".into(),
            timezone: None,
            sending_facility: None,
            receiving_facility: None,
        };
        let policy = BotPolicy {
            destinations: [
                ("fhir".into(), info("fhir", "http")),
                ("dir".into(), info("dir", "folder")),
            ]
            .into(),
            ordering_keys: [(
                "fhir".into(),
                OrderingKey {
                    hl7: None,
                    header: Some("x-patient".into()),
                },
            )]
            .into(),
            ..BotPolicy::default()
        };
        let out = |to: &str, method: &str, path: &str, headers: &[(&str, &str)]| Outbound {
            destination: to.into(),
            payload: Payload::Bytes(super::super::bindings::types::BytesPayload {
                data: b"{}".to_vec(),
                name: None,
                content_type: Some("application/fhir+json".into()),
                http: Some(super::super::bindings::types::HttpOptions {
                    method: Some(method.into()),
                    path: Some(path.into()),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                }),
            }),
            not_before_ms: None,
        };
        let queued = policy
            .accept(
                vec![
                    out(
                        "fhir",
                        "PUT",
                        "Patient?identifier=s|1",
                        &[("X-Patient", "1")],
                    ),
                    out(
                        "fhir",
                        "PUT",
                        "Encounter?identifier=s|9",
                        &[("x-patient", "1")],
                    ),
                    out("fhir", "POST", "Patient", &[("X-Patient", "2")]),
                ],
                0,
            )
            .unwrap();
        assert_eq!(queued[0].order_hash, queued[1].order_hash);
        assert_ne!(queued[0].order_hash, queued[2].order_hash);
        let journal::Payload::Bytes { http: Some(h), .. } = &queued[0].payload else {
            panic!()
        };
        assert_eq!(
            (h.method.as_deref(), h.path.as_deref()),
            (Some("PUT"), Some("Patient?identifier=s|1"))
        );
        let refused = |o| policy.accept(vec![o], 0).unwrap_err().to_string();
        assert_eq!(
            refused(out("dir", "PUT", "x", &[])),
            "reply refused: destination \"dir\" is folder: only an http destination takes a \
             method, path or headers"
        );
        for (method, path, header, says) in [
            ("P UT", "x", "X-A", "method \"P UT\""),
            ("PUT", "/x", "X-A", "path \"/x\" must be relative"),
            ("PUT", "http://evil/x", "X-A", "must be relative"),
            ("PUT", "a/../b", "X-A", "must be relative"),
            ("PUT", "a/%2e%2E/b", "X-A", "must be relative"),
            ("PUT", "a/.%2e", "X-A", "must be relative"),
            ("PUT", "a/%zz", "X-A", "bad %-escape"),
            (
                "PUT",
                "x",
                "Authorization",
                "header \"Authorization\": set by the host",
            ),
            ("PUT", "x", "Idempotency-Key", "set by the host"),
            ("PUT", "x", "A B", "not a header name"),
        ] {
            let e = refused(out("fhir", method, path, &[(header, "v")]));
            assert!(e.contains(says) && e.contains("for \"fhir\""), "{e}");
        }
        // A query may carry a URL (a FHIR identifier system).
        assert!(
            policy
                .accept(
                    vec![out("fhir", "PUT", "Patient?identifier=http://h/mrn|1", &[])],
                    0
                )
                .is_ok()
        );
    }
}
