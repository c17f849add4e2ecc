//! The long crash storm: the end-to-end crash test (`tests/crash.rs`,
//! shared through `interlink_tests::crash`) with more kills, against the
//! release binary. Not run by `cargo test`; prints one line per ACK mode and
//! panics if a guarantee broke.
//!
//! `cargo bench -p interlink --bench crash` after `scripts/setup` (which
//! builds the probe bot and installs python-hl7). `CRASH_KILLS` (default
//! 100) and `CRASH_MESSAGES` (default 80 per kill) change the size,
//! `CRASH_SEED` repeats the kill moments of an earlier run, and an argument
//! `commit` or `application` runs one mode only.

use interlink_tests::crash::{AckMode, Storm};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let kills = env_or("CRASH_KILLS", 100);
    let messages = env_or("CRASH_MESSAGES", 80 * kills);
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (name, ack) in [
        ("commit", AckMode::Commit),
        ("application", AckMode::Application),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut storm = Storm::new(ack, messages, kills);
        storm.bin = Some(env!("CARGO_BIN_EXE_interlink").into());
        println!("{}", storm.run());
    }
}
