//! What another host sharing the journal committed that this host must act
//! on. The bot an application ACK or an HTTP command waits for may run on
//! another host than the one the sender is connected to: its outcome
//! reaches this host through the journal. A destination may be paused or
//! resumed through another host's API: its queue's owner may be this one.
//! A thread reads both whenever some host commits (the journal's
//! notification, [`Outcomes::wake`]) and, for notifications lost while
//! reconnecting, every [`POLL`]; it hands outcomes to their waiters (an
//! outcome delivered twice counts once) and pauses or resumes this host's
//! destinations as the journal says.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use super::Runtime;

/// How often awaited outcomes are looked for without a notification.
const POLL: Duration = Duration::from_millis(250);

/// Wakes the thread.
pub struct Outcomes(SyncSender<()>);

impl Outcomes {
    /// Starts the thread for `rt`'s waiters.
    pub fn start(rt: &Arc<Runtime>) -> Outcomes {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = rt.clone();
        std::thread::Builder::new()
            .name("remote-outcomes".into())
            .spawn(move || run(&rt, &rx))
            .expect("cannot start the remote outcomes thread");
        Outcomes(tx)
    }

    /// Some host committed: look for the awaited outcomes now.
    pub fn wake(&self) {
        let _ = self.0.try_send(());
    }
}

fn run(rt: &Runtime, wake: &Receiver<()>) {
    let reader = loop {
        match rt.journal.reader() {
            Ok(r) => break r,
            Err(e) => {
                tracing::error!("cannot read the journal for other hosts' outcomes: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    loop {
        if let Err(RecvTimeoutError::Disconnected) = wake.recv_timeout(POLL) {
            return;
        }
        for event in rt.replies.awaited() {
            match reader.committed_reply(event) {
                Ok(Some(reply)) => rt.replies.deliver(event, reply),
                Ok(None) => {}
                Err(e) => tracing::warn!(event, "cannot read an awaited outcome: {e}"),
            }
        }
        match reader.paused_destinations() {
            Ok(paused) => {
                for (name, status) in crate::status::registry().destinations() {
                    let pause = paused.contains(&name);
                    if status.is_paused() != pause {
                        status.set_paused(pause);
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read which destinations are paused: {e}"),
        }
        for event in rt.http_replies.awaited() {
            match reader.committed_answer(event) {
                Ok(Some(answer)) => rt.http_replies.deliver(event, answer),
                Ok(None) => {}
                Err(e) => tracing::warn!(event, "cannot read an awaited answer: {e}"),
            }
        }
    }
}
