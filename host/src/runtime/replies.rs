//! Outcomes of bot runs that someone waits for, by event id: a listener
//! with `ack = "application"` waits for the first bot run of its message
//! ([`AppReply`]), an HTTP command for its bot's answer
//! ([`crate::journal::HttpAnswer`]). Any number of waiters can wait on one
//! event (the first copy of a message and its resends, on other
//! connections); all get the same outcome. A worker may finish before a
//! waiter starts waiting (or while nobody waits, as after a crash and
//! restart), so an outcome is kept for a minute after it is delivered.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long an outcome stays available to waiters that come late.
const KEEP: Duration = Duration::from_secs(60);

pub use crate::journal::AppReply;

/// Outcomes of type `T` by event id.
pub struct Replies<T = AppReply> {
    inner: Mutex<Inner<T>>,
}

impl<T> Default for Replies<T> {
    fn default() -> Self {
        Replies {
            inner: Mutex::new(Inner {
                waiting: HashMap::new(),
                delivered: HashMap::new(),
                expiry: VecDeque::new(),
            }),
        }
    }
}

struct Inner<T> {
    waiting: HashMap<i64, Vec<oneshot::Sender<T>>>,
    delivered: HashMap<i64, T>,
    /// `delivered`'s keys in delivery order, for expiry.
    expiry: VecDeque<(Instant, i64)>,
}

impl<T: Clone> Replies<T> {
    /// The outcome of `event_id`'s first bot run.
    pub fn wait(&self, event_id: i64) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock().expect("replies lock");
        inner.expire(Instant::now());
        match inner.delivered.get(&event_id) {
            Some(reply) => {
                let _ = tx.send(reply.clone());
            }
            None => inner.waiting.entry(event_id).or_default().push(tx),
        }
        rx
    }

    /// Drops the waiters of `event_id` that gave up (dropped their
    /// receiver); the others keep waiting.
    pub fn forget(&self, event_id: i64) {
        let mut inner = self.inner.lock().expect("replies lock");
        if let Some(waiters) = inner.waiting.get_mut(&event_id) {
            waiters.retain(|tx| !tx.is_closed());
            if waiters.is_empty() {
                inner.waiting.remove(&event_id);
            }
        }
    }

    /// The events someone waits for.
    pub fn awaited(&self) -> Vec<i64> {
        let inner = self.inner.lock().expect("replies lock");
        inner.waiting.keys().copied().collect()
    }

    /// Hands over an outcome to every waiter; only the first per event
    /// counts.
    pub fn deliver(&self, event_id: i64, reply: T) {
        let mut inner = self.inner.lock().expect("replies lock");
        let now = Instant::now();
        inner.expire(now);
        if inner.delivered.contains_key(&event_id) {
            return;
        }
        for tx in inner.waiting.remove(&event_id).unwrap_or_default() {
            let _ = tx.send(reply.clone());
        }
        inner.delivered.insert(event_id, reply);
        inner.expiry.push_back((now, event_id));
    }
}

impl<T> Inner<T> {
    /// Forgets outcomes delivered more than [`KEEP`] ago.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.expiry.front() {
            if now.duration_since(at) < KEEP {
                break;
            }
            self.expiry.pop_front();
            self.delivered.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_before_or_after_the_wait() {
        let r = Replies::<AppReply>::default();
        r.deliver(1, AppReply::Ack(None));
        assert_eq!(r.wait(1).try_recv().unwrap(), AppReply::Ack(None));
        let mut rx = r.wait(2);
        r.deliver(2, AppReply::Failed("x".into()));
        r.deliver(2, AppReply::Ack(None));
        assert_eq!(rx.try_recv().unwrap(), AppReply::Failed("x".into()));
    }

    #[test]
    fn every_waiter_gets_the_outcome_and_late_ones_too() {
        let r = Replies::<AppReply>::default();
        let mut first = r.wait(7);
        let gave_up = r.wait(7);
        let mut resend = r.wait(7);
        drop(gave_up);
        r.forget(7);
        r.deliver(7, AppReply::Ack(Some("MSH|x".into())));
        let want = AppReply::Ack(Some("MSH|x".into()));
        assert_eq!(first.try_recv().unwrap(), want);
        assert_eq!(resend.try_recv().unwrap(), want);
        assert_eq!(r.wait(7).try_recv().unwrap(), want);
    }

    #[test]
    fn outcomes_expire() {
        let r = Replies::<AppReply>::default();
        r.deliver(1, AppReply::Ack(None));
        let mut inner = r.inner.lock().unwrap();
        inner.expire(Instant::now() + KEEP);
        assert!(inner.delivered.is_empty() && inner.expiry.is_empty());
    }
}
