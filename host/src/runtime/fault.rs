//! Fault injection for the end-to-end tests, compiled into debug builds
//! only. `INTERLINK_FAULT=worker-panic:BOT:N` makes the worker of bot `BOT`
//! panic once, just before it runs its `N`th event since the host started
//! (counting from 1), to prove that a dead worker is noticed and restarted.

#[cfg(debug_assertions)]
mod injected {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The worker panic asked for: which bot, before which of its events.
    struct WorkerPanic {
        bot: String,
        nth_event: u64,
        seen: AtomicU64,
    }

    fn planned() -> Option<&'static WorkerPanic> {
        static PLAN: OnceLock<Option<WorkerPanic>> = OnceLock::new();
        PLAN.get_or_init(|| {
            let spec = std::env::var("INTERLINK_FAULT").ok()?;
            let rest = spec.strip_prefix("worker-panic:")?;
            let (bot, n) = rest.rsplit_once(':')?;
            Some(WorkerPanic {
                bot: bot.to_string(),
                nth_event: n.parse().ok()?,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
    }

    /// Called by `bot`'s worker before it runs an event.
    pub fn before_event(bot: &str) {
        let Some(plan) = planned().filter(|p| p.bot == bot) else {
            return;
        };
        if plan.seen.fetch_add(1, Ordering::SeqCst) + 1 == plan.nth_event {
            panic!(
                "INTERLINK_FAULT: worker-panic injected before event {}",
                plan.nth_event
            );
        }
    }
}

#[cfg(debug_assertions)]
pub use injected::before_event;

/// Release builds inject nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn before_event(_bot: &str) {}
