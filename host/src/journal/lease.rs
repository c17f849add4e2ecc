//! One active host per PostgreSQL journal.
//!
//! Hosts that share a journal take turns: the one holding a session
//! advisory lock runs (listeners, bots, deliveries, pollers, cron, purge);
//! the others are standbys that try for the lock every second and take over
//! when it is released. PostgreSQL releases it when the holder's session
//! ends: at once when the host dies (its connection closes), and when the
//! network between them is cut, after `takeover_s` without a word from the
//! holder (the session's `idle_session_timeout`; a healthy holder speaks
//! several times a second). The holder fences itself first: when its
//! session has not answered for half of `takeover_s`, it stops the process,
//! so two hosts never run the journal's work at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::params;

use super::Connector;
use super::db::{Db, DbResult};
use super::postgres::Session;

/// The advisory lock the active host holds ("interlin" in ASCII).
const ACTIVE_LOCK: i64 = 0x696e_7465_726c_696e;

/// Exit status of a host that lost its hold on the journal (EX_TEMPFAIL:
/// a supervisor restarts it, and it comes back as a standby).
const FENCED_EXIT: i32 = 75;

/// Waits until this host holds the journal `connector` leads to, then keeps
/// holding it on threads of its own: the process stops (fenced) when the
/// hold can no longer be confirmed within half of `takeover`.
pub fn hold_active(connector: &Connector, takeover: Duration) -> DbResult<()> {
    let session = connector.connect()?;
    session.batch(&format!(
        "SET idle_session_timeout = {}",
        takeover.as_millis()
    ))?;
    let mut waiting = false;
    while !try_lock(&session)? {
        if !waiting {
            tracing::info!(
                "standby: another host is active on this journal; this one takes over when it stops"
            );
            waiting = true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    tracing::info!(takeover_s = takeover.as_secs(), "active on the journal");
    keep(session, takeover);
    Ok(())
}

fn try_lock(session: &Session) -> DbResult<bool> {
    Db::Postgres(session).query_row(
        "SELECT pg_try_advisory_lock(?1)",
        params![ACTIVE_LOCK],
        |r| r.get(0),
    )
}

/// Confirms the hold every tenth of `takeover` on one thread, and on
/// another stops the process once no confirmation came for half of it (a
/// cut network leaves a call hanging rather than failing).
fn keep(session: Session, takeover: Duration) {
    let confirmed = Arc::new(Mutex::new(Instant::now()));
    let beat = (takeover / 10).max(Duration::from_millis(100));
    let last = confirmed.clone();
    std::thread::Builder::new()
        .name("journal-lease".into())
        .spawn(move || {
            loop {
                std::thread::sleep(beat);
                match session.batch("SELECT 1") {
                    Ok(()) => *last.lock().expect("lease clock") = Instant::now(),
                    Err(e) => fence(&format!("its session failed: {e}")),
                }
            }
        })
        .expect("cannot start the journal lease thread");
    std::thread::Builder::new()
        .name("journal-fence".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let silent = confirmed.lock().expect("lease clock").elapsed();
                if silent > takeover / 2 {
                    fence(&format!("PostgreSQL has not answered for {silent:?}"));
                }
            }
        })
        .expect("cannot start the journal fence thread");
}

fn fence(why: &str) -> ! {
    tracing::error!(
        "lost the hold on the journal ({why}): stopping, so that a standby takes over \
         and two hosts never work at once"
    );
    std::process::exit(FENCED_EXIT)
}
