//! End-to-end tests of cron ticks: a bot subscribed (through the config)
//! to an every-second schedule gets journaled ticks; after a restart,
//! `catch_up` decides whether the firings missed while down get one tick.

use std::time::Duration;

use interlink_tests::{Host, config, wait_until};

const EVERY_SECOND: &str = "* * * * * *";

fn ticking_host(catch_up: &str) -> Host {
    let extra = format!(
        "[cron]\ncatch_up = \"{catch_up}\"\n[bots.probe]\nsubscribe_also = [{{ cron = \"{EVERY_SECOND}\" }}]\n"
    );
    let mut host = Host::new(&config(&extra));
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host
}

/// (scheduled time, journaled time) of every tick, oldest first.
fn ticks(host: &Host) -> Vec<(i64, i64)> {
    host.query_rows("SELECT body, received_at_ms FROM events WHERE kind = 'tick' ORDER BY id")
        .iter()
        .map(|r| (r[0].get::<String>().parse().unwrap(), r[1].get()))
        .collect()
}

#[test]
fn a_bot_with_an_every_second_schedule_gets_ticks() {
    let host = ticking_host("none");
    assert!(
        wait_until(Duration::from_secs(10), || ticks(&host).len() >= 3),
        "{}",
        host.log()
    );
    let t = ticks(&host);
    // One per second, on the second, journaled as it fires.
    for w in t.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 1000, "{t:?}");
    }
    assert!(
        t.iter()
            .all(|(at, journaled)| at % 1000 == 0 && (0..500).contains(&(journaled - at))),
        "{t:?}"
    );
    host.wait_query(
        "SELECT COUNT(*) FROM runs WHERE bot = 'probe' AND status = 'done' AND event_id <= 3",
        3,
        Duration::from_secs(10),
    );
    let source: String = host.query("SELECT source FROM events WHERE kind = 'tick' LIMIT 1");
    assert_eq!(source, EVERY_SECOND);
}

#[test]
fn a_bot_busy_with_its_previous_tick_is_skipped() {
    let extra = format!(
        "[bots.probe]\nsettings = {{ tick_ms = \"2500\" }}\nsubscribe_also = [{{ cron = \"{EVERY_SECOND}\" }}]\n"
    );
    let cfg = config(&extra).replace("timeout_ms = 500", "timeout_ms = 10000");
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    assert!(wait_until(Duration::from_secs(15), || ticks(&host).len() >= 6));
    host.wait_log(
        "skipped a tick: the bot is still busy with the previous one",
        Duration::from_secs(5),
    );
    // Every firing is journaled; the busy bot got only some of them, never
    // two at once.
    let routed: i64 = host.query("SELECT COUNT(*) FROM events WHERE kind = 'tick' AND routed = 1");
    let all: i64 = host.query("SELECT COUNT(*) FROM events WHERE kind = 'tick'");
    assert!(
        routed < all && routed >= 2,
        "{routed} of {all} ticks routed"
    );
    assert!(host.query::<i64>("SELECT COUNT(*) FROM runs WHERE status = 'pending'") <= 1);
}

fn ticks_caught_up_after_a_restart(catch_up: &str) -> usize {
    let mut host = ticking_host(catch_up);
    assert!(wait_until(Duration::from_secs(10), || !ticks(&host).is_empty()));
    host.kill();
    let last_before = ticks(&host).last().unwrap().0;
    // Down through two firings (the scenario, not a wait for a result).
    std::thread::sleep(Duration::from_millis(2500));
    host.start();
    assert!(wait_until(Duration::from_secs(10), || ticks(&host)
        .iter()
        .filter(|t| t.0 > last_before)
        .count()
        >= 2));
    // A caught-up tick is journaled well after its scheduled time.
    ticks(&host)
        .iter()
        .filter(|(at, journaled)| *at > last_before && journaled - at > 500)
        .count()
}

#[test]
fn catch_up_last_fires_once_for_what_was_missed() {
    assert_eq!(ticks_caught_up_after_a_restart("last"), 1);
}

#[test]
fn catch_up_none_fires_nothing_for_what_was_missed() {
    assert_eq!(ticks_caught_up_after_a_restart("none"), 0);
}
