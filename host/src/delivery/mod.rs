//! Delivery: drains the durable outbox, one FIFO queue per destination. A
//! message leaves the queue only when its destination has taken it; a
//! failed attempt is retried with exponential backoff (and the messages
//! behind it wait, to keep order); a message that can never be delivered
//! (it cannot be encoded for the destination, or the receiver refuses it
//! for good) goes to the dead-letter list.
//! A message a bot deferred (`not-before-ms`) waits without holding up the
//! messages behind it; the due ones go in queue order.
//! DICOM destinations take DICOM Part-10 files (bytes) over C-STORE.
//! When hosts share a journal, only the one that owns a destination
//! (`crate::cluster`) delivers its queue.
//! A paused destination ([`crate::status::DestinationStatus`], kept in the
//! journal across restarts) keeps queueing and delivers nothing: its lanes
//! wait until it is resumed.

mod dicom;
mod file_out;
mod folder;
mod http;
pub mod mllp;
mod prepare;
mod sftp;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::cluster::{Cluster, Turn};
use crate::config::{DestinationConfig, DestinationKind};
use crate::journal::{self, Journal, OutboxRow, Reader};
use crate::status::DestinationStatus;
use crate::telemetry;

/// How often an idle queue looks at the journal without being woken.
const IDLE_POLL: Duration = Duration::from_millis(1000);

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later.
    #[error("{0}")]
    Transient(Reason),
    /// Worth trying again, not before the receiver said (HTTP
    /// `Retry-After`; waits at most `max_backoff_s`).
    #[error("{0}")]
    Later(Reason, Duration),
    /// Will never succeed: dead-letter it.
    #[error("{0}")]
    Permanent(Reason),
}

/// The host's words for a failure, and what it quotes from the receiver
/// (an ACK's text, which may name the patient): the journal keeps both,
/// the log shows the quote only with `[log] phi = true`.
#[derive(Debug)]
pub struct Reason {
    pub text: String,
    pub quote: Option<String>,
}

impl Reason {
    /// The reason as the log may show it.
    fn logged(&self) -> String {
        match &self.quote {
            Some(q) => format!("{}: {}", self.text, crate::phi::text(q)),
            None => self.text.clone(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.quote {
            Some(q) => write!(f, "{}: {q}", self.text),
            None => f.write_str(&self.text),
        }
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Self {
        Reason { text, quote: None }
    }
}

/// A destination's transport.
enum Sink {
    Folder(folder::FolderSink),
    Mllp(mllp::MllpSink),
    Sftp(sftp::SftpSink),
    Http(http::HttpSink),
    Dicom(dicom::DicomSink),
}

impl Sink {
    fn new(cfg: &DestinationConfig) -> Result<Sink> {
        let name = &cfg.name;
        match &cfg.kind {
            DestinationKind::Folder(f) => Ok(Sink::Folder(folder::FolderSink::new(name, f)?)),
            DestinationKind::Mllp(m) => Ok(Sink::Mllp(mllp::MllpSink::new(name, m)?)),
            DestinationKind::Sftp(s) => Ok(Sink::Sftp(sftp::SftpSink::new(name, s)?)),
            DestinationKind::Http(h) => Ok(Sink::Http(http::HttpSink::new(
                name,
                h,
                cfg.encoding.name(),
            )?)),
            DestinationKind::Dicom(d) => Ok(Sink::Dicom(dicom::DicomSink::new(d))),
        }
    }

    async fn deliver(
        &mut self,
        row: &OutboxRow,
        bytes: &[u8],
        control_id: &str,
    ) -> Result<(), DeliveryError> {
        match self {
            Sink::Folder(f) => f.deliver(row, bytes).await,
            Sink::Mllp(m) => m.deliver(bytes, control_id).await,
            Sink::Sftp(s) => s.deliver(row, bytes).await,
            Sink::Http(h) => h.deliver(row, bytes).await,
            Sink::Dicom(d) => d.deliver(bytes).await,
        }
    }

    /// Whether it holds an open connection (MLLP, HTTP).
    fn connected(&self) -> bool {
        match self {
            Sink::Mllp(m) => m.connected(),
            Sink::Http(h) => h.connected(),
            Sink::Folder(_) | Sink::Sftp(_) | Sink::Dicom(_) => false,
        }
    }
}

/// Which messages of a destination's queue one connection carries: with
/// `connections = N` (and an `ordering_key`), lane `i` of `N` takes the
/// messages whose `order_hash % N == i`, so messages with the same key
/// value keep their order. The hash is worked out once, when a message is
/// queued ([`crate::runtime::state::BotPolicy::accept`]).
type Lane = (usize, usize);

/// Tells delivery that messages were queued: delivery owns it, the bots'
/// workers ring it after a commit that queued something. Cheap to clone.
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Wakes every idle queue to look at the outbox.
    pub fn ring(&self) {
        self.0.notify_waiters();
    }
}

/// Starts the delivery tasks of one destination: one, or one per
/// connection of a destination with several; they wait while it is paused
/// (as recorded in the journal). `wake` is rung when messages are queued.
/// Aborting the tasks stops the destination; a message being sent then
/// stays queued and is sent again by its next tasks.
pub fn spawn(
    cfg: &DestinationConfig,
    journal: &Journal,
    wake: &OutboxSignal,
    cluster: &Cluster,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let is_paused = journal.reader()?.paused_destinations()?.contains(&cfg.name);
    if is_paused {
        tracing::info!(destination = %cfg.name, "paused: messages queue until it is resumed");
    }
    let status = crate::status::registry().destination(&cfg.name, cfg.kind_name(), is_paused);
    let count = cfg.connections();
    (0..count)
        .map(|index| {
            let lane = (index, count);
            let sink = Sink::new(cfg)?;
            let reader = Arc::new(Mutex::new(journal.reader()?));
            let around = Around {
                journal: journal.clone(),
                wake: wake.clone(),
                cluster: cluster.clone(),
            };
            Ok(tokio::spawn(run(
                cfg.clone(),
                lane,
                sink,
                reader,
                around,
                status.clone(),
            )))
        })
        .collect()
}

/// What a destination's lanes share with the rest of the host: the
/// journal, the signal that messages were queued, and which destinations
/// this host delivers.
struct Around {
    journal: Journal,
    wake: OutboxSignal,
    cluster: Cluster,
}

async fn run(
    cfg: DestinationConfig,
    lane: Lane,
    mut sink: Sink,
    reader: Arc<Mutex<Reader>>,
    around: Around,
    status: Arc<DestinationStatus>,
) {
    let Around {
        journal,
        wake,
        cluster,
    } = around;
    // Every due message of this lane up to `cursor` has been handed over in
    // this process; "sent" marks are committed in the background
    // (group-committed, awaited in `marks`), so the queue never waits for an
    // fsync between messages. After a crash the cursor starts again at 0 and
    // a message whose mark was not committed is sent again: at least once,
    // never lost.
    let mut cursor = 0;
    let mut marks = JoinSet::new();
    // When the next deferred message falls due: it may sit behind the
    // cursor, so the queue is read again from the start then.
    let mut next_due: Option<i64> = None;
    let mut connected = false;
    // Held while this host owns the destination (always, on one host).
    let mut turn: Option<Turn> = None;
    loop {
        // Handed over to another host, or paused (a paused queue holds no
        // turn, so a handover never waits for a resume): the turn goes once
        // the "sent" marks are committed, so that the next owner does not
        // send those messages again.
        let handed_over = turn.as_ref().is_some_and(|t| !t.still_owned());
        if (handed_over || status.is_paused()) && turn.take().is_some() {
            rewind(&mut cursor, &mut marks).await;
        }
        status.unpaused().await;
        if turn.is_none() {
            // Rung when this host takes the destination.
            let taken = wake.0.notified();
            turn = cluster.destination_turn(&cfg.name);
            if turn.is_none() {
                let _ = tokio::time::timeout(IDLE_POLL, taken).await;
                continue;
            }
        }
        while marks.try_join_next().is_some() {}
        if next_due.is_some_and(|due| due <= journal::now_ms()) {
            rewind(&mut cursor, &mut marks).await;
        }
        let woken = wake.0.notified();
        let (queue, name, now) = (reader.clone(), cfg.name.clone(), journal::now_ms());
        let read = crate::blocking::run(move || {
            let queue = queue.lock().expect("outbox reader lock");
            let rows = queue.outbox_pending(&name, lane, cursor, now, 256)?;
            Ok((rows, queue.outbox_next_due(&name, lane, now)?))
        })
        .await;
        let rows = match read {
            Ok((rows, due)) => {
                next_due = due;
                rows
            }
            Err(e) => {
                tracing::error!(destination = %cfg.name, "cannot read the outbox: {e}");
                Vec::new()
            }
        };
        let now = journal::now_ms();
        let mut head_due: Option<i64> = None;
        let mut progressed = false;
        for row in &rows {
            if status.is_paused() || turn.as_ref().is_some_and(|t| !t.still_owned()) {
                break;
            }
            if row.next_attempt_ms > now {
                head_due = Some(row.next_attempt_ms);
                break;
            }
            let outcome = attempt(&cfg, &mut sink, &journal, &status, row, &mut marks).await;
            if sink.connected() != connected {
                connected = !connected;
                status.connection(connected);
            }
            match outcome {
                Attempt::Done => {
                    cursor = row.id;
                    progressed = true;
                }
                Attempt::Blocked => {
                    head_due = Some(now);
                    break;
                }
            }
        }
        if progressed && head_due.is_none() {
            continue;
        }
        let wait = match head_due.into_iter().chain(next_due).min() {
            Some(due) => Duration::from_millis(
                (due - journal::now_ms()).clamp(1, IDLE_POLL.as_millis() as i64) as u64,
            ),
            None => IDLE_POLL,
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(wait) => {
                // Idle: look at the whole queue again, so a dead letter put
                // back (`interlink resend`) behind the cursor is found.
                if rows.is_empty() {
                    rewind(&mut cursor, &mut marks).await;
                }
            }
        }
    }
}

/// Starts reading the queue from its start again, once every "sent" mark
/// of this lane has committed (so no delivered message is read as pending).
async fn rewind(cursor: &mut i64, marks: &mut JoinSet<()>) {
    while marks.join_next().await.is_some() {}
    *cursor = 0;
}

/// What became of the head of the queue.
enum Attempt {
    /// Delivered or dead-lettered: the queue moves on.
    Done,
    /// To be retried later; the messages behind it wait.
    Blocked,
}

/// One delivery attempt, recorded in the journal.
async fn attempt(
    cfg: &DestinationConfig,
    sink: &mut Sink,
    journal: &Journal,
    status: &DestinationStatus,
    row: &OutboxRow,
    marks: &mut JoinSet<()>,
) -> Attempt {
    // A deferred message ages from when it fell due.
    let queued = row.created_ms.max(row.not_before_ms);
    let expired = cfg
        .retry
        .max_age_s
        .is_some_and(|age| journal::now_ms() - queued > age as i64 * 1000);
    let result = if expired {
        Err(DeliveryError::Permanent(Reason {
            text: format!(
                "not delivered within max_age_s = {}",
                cfg.retry.max_age_s.unwrap_or(0)
            ),
            quote: Some(
                row.last_error
                    .clone()
                    .unwrap_or_else(|| "no attempt succeeded".into()),
            ),
        }))
    } else {
        match prepare::for_destination(cfg, &row.payload) {
            Ok((bytes, control_id)) => sink.deliver(row, &bytes, &control_id).await,
            Err(e) => Err(e),
        }
    };
    let recorded = match &result {
        Ok(()) => {
            tracing::debug!(destination = %cfg.name, outbox_id = row.id, "delivered");
            telemetry::delivery(&cfg.name, "sent");
            status.attempted(None);
            let (marked, name, id) = (journal.outbox_sent(row.id), cfg.name.clone(), row.id);
            marks.spawn(async move {
                if let Ok(Err(e)) = marked.await {
                    tracing::error!(destination = %name, outbox_id = id, "delivered, but cannot record it (it will be sent again): {e}");
                }
            });
            return Attempt::Done;
        }
        Err(DeliveryError::Permanent(why)) => {
            tracing::error!(destination = %cfg.name, outbox_id = row.id, "dead-lettered: {}", why.logged());
            telemetry::delivery(&cfg.name, "dead");
            status.attempted(Some(&why.text));
            journal
                .outbox_failed(row.id, why.to_string(), 0, true)
                .await
        }
        Err(DeliveryError::Transient(why) | DeliveryError::Later(why, _)) => {
            let cap_ms = cfg.retry.max_backoff_s as i64 * 1000;
            let mut backoff =
                crate::backoff::delay_ms(cfg.retry.initial_backoff_ms, row.attempts + 1, cap_ms);
            if let Err(DeliveryError::Later(_, wait)) = &result {
                let asked = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                backoff = backoff.max(asked.min(cap_ms));
            }
            tracing::warn!(destination = %cfg.name, outbox_id = row.id, attempt = row.attempts + 1, "delivery failed, retrying in {backoff} ms: {}", why.logged());
            telemetry::delivery(&cfg.name, "retry");
            status.attempted(Some(&why.text));
            journal
                .outbox_failed(row.id, why.to_string(), journal::now_ms() + backoff, false)
                .await
        }
    };
    match recorded {
        Ok(Ok(())) if matches!(result, Err(DeliveryError::Permanent(_))) => Attempt::Done,
        Ok(Ok(())) => Attempt::Blocked,
        Ok(Err(e)) => {
            tracing::error!(destination = %cfg.name, outbox_id = row.id, "cannot record delivery: {e}");
            Attempt::Blocked
        }
        Err(_) => Attempt::Blocked,
    }
}
