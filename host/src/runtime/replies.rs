//! Application acknowledgements: a listener with `ack = "application"`
//! waits here for the outcome of the first bot run of its message. A worker
//! may finish before the listener starts waiting, so an outcome nobody waits
//! for yet is kept for a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long an outcome waits for its listener.
const KEEP: Duration = Duration::from_secs(60);

/// What a bot made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppReply {
    /// Done; the bot's ACK, if it gave one.
    Ack(Option<String>),
    /// The run failed (or will be retried), with the reason.
    Failed(String),
}

#[derive(Default)]
pub struct Replies {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    waiting: HashMap<i64, oneshot::Sender<AppReply>>,
    early: HashMap<i64, (Instant, AppReply)>,
}

impl Replies {
    /// The outcome of `event_id`'s first bot run.
    pub fn wait(&self, event_id: i64) -> oneshot::Receiver<AppReply> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock().expect("replies lock");
        match inner.early.remove(&event_id) {
            Some((_, reply)) => {
                let _ = tx.send(reply);
            }
            None => {
                inner.waiting.insert(event_id, tx);
            }
        }
        rx
    }

    /// Stops waiting (the listener gave up).
    pub fn forget(&self, event_id: i64) {
        self.inner
            .lock()
            .expect("replies lock")
            .waiting
            .remove(&event_id);
    }

    /// Hands over an outcome; only the first per event counts.
    pub fn deliver(&self, event_id: i64, reply: AppReply) {
        let mut inner = self.inner.lock().expect("replies lock");
        if let Some(tx) = inner.waiting.remove(&event_id) {
            let _ = tx.send(reply);
            return;
        }
        let now = Instant::now();
        inner
            .early
            .retain(|_, (at, _)| now.duration_since(*at) < KEEP);
        inner.early.entry(event_id).or_insert((now, reply));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_before_or_after_the_wait() {
        let r = Replies::default();
        r.deliver(1, AppReply::Ack(None));
        assert_eq!(r.wait(1).try_recv().unwrap(), AppReply::Ack(None));
        let mut rx = r.wait(2);
        r.deliver(2, AppReply::Failed("x".into()));
        r.deliver(2, AppReply::Ack(None));
        assert_eq!(rx.try_recv().unwrap(), AppReply::Failed("x".into()));
    }
}
