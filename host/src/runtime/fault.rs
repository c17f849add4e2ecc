//! Fault injection for the end-to-end tests, compiled into debug builds
//! only. `INTERLINK_FAULT=worker-panic:BOT:N` makes the worker of bot `BOT`
//! panic once, just before it runs its `N`th event since the host started
//! (counting from 1), to prove that a dead worker is noticed and restarted;
//! `INTERLINK_FAULT=worker-poison:BOT:N` makes it panic before that event
//! every time it is tried, to prove a run that keeps killing its worker is
//! failed instead of stalling the bot.

#[cfg(debug_assertions)]
mod injected {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    /// The worker panic asked for: which bot, before which of its events.
    struct WorkerPanic {
        bot: String,
        nth_event: u64,
        /// Every try of that event, not just the first.
        every_try: bool,
        seen: AtomicU64,
        /// The id of the `nth_event`th event, once seen.
        poisoned: AtomicI64,
    }

    fn planned() -> Option<&'static WorkerPanic> {
        static PLAN: OnceLock<Option<WorkerPanic>> = OnceLock::new();
        PLAN.get_or_init(|| {
            let spec = std::env::var("INTERLINK_FAULT").ok()?;
            let (every_try, rest) = match spec.strip_prefix("worker-poison:") {
                Some(rest) => (true, rest),
                None => (false, spec.strip_prefix("worker-panic:")?),
            };
            let (bot, n) = rest.rsplit_once(':')?;
            Some(WorkerPanic {
                bot: bot.to_string(),
                nth_event: n.parse().ok()?,
                every_try,
                seen: AtomicU64::new(0),
                poisoned: AtomicI64::new(0),
            })
        })
        .as_ref()
    }

    /// Called by `bot`'s worker before it runs event `event_id`.
    pub fn before_event(bot: &str, event_id: i64) {
        let Some(plan) = planned().filter(|p| p.bot == bot) else {
            return;
        };
        let again = plan.every_try && plan.poisoned.load(Ordering::SeqCst) == event_id;
        if plan.seen.fetch_add(1, Ordering::SeqCst) + 1 == plan.nth_event || again {
            plan.poisoned.store(event_id, Ordering::SeqCst);
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
pub fn before_event(_bot: &str, _event_id: i64) {}
