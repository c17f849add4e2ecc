//! Metrics: the one place that names every metric the host exports, the
//! Prometheus recorder (installed by `interlink run`, rendered by
//! `GET /metrics`), and one function per thing worth counting, which the
//! triggers, the runtime, delivery and the journal call. Without an
//! installed recorder (the other subcommands, unit tests) every call is a
//! no-op.
//!
//! Label values are only configured names (sources, bots, destinations)
//! and ACK codes, never message content.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Messages journaled, per source (listener, folder or SFTP source).
pub const MESSAGES_RECEIVED: &str = "interlink_messages_received_total";
/// ACKs a listener sent, per listener and MSA-1 code (AA/AE/AR/CA/CE/CR).
pub const ACKS_SENT: &str = "interlink_acks_sent_total";
/// Bot runs per bot and outcome (`done`, `retry`, `failed`).
pub const BOT_RUNS: &str = "interlink_bot_runs_total";
/// Time a bot took on one event, per bot.
pub const BOT_RUN_DURATION: &str = "interlink_bot_run_duration_seconds";
/// Messages waiting in a destination's queue (refreshed when scraped).
pub const OUTBOX_DEPTH: &str = "interlink_outbox_depth";
/// Age of a destination's oldest waiting message (refreshed when scraped).
pub const OUTBOX_OLDEST_AGE: &str = "interlink_outbox_oldest_age_seconds";
/// Delivery attempts per destination and outcome (`sent`, `retry`, `dead`).
pub const DELIVERIES: &str = "interlink_deliveries_total";
/// Time one group commit of the journal takes (BEGIN to COMMIT with fsync).
pub const JOURNAL_COMMIT_DURATION: &str = "interlink_journal_commit_duration_seconds";
/// Size of the journal's files (database and WAL) on disk.
pub const JOURNAL_SIZE: &str = "interlink_journal_size_bytes";
/// SFTP polls per source and outcome (`ok`, `failed`).
pub const SFTP_POLLS: &str = "interlink_sftp_polls_total";
/// Drop-folder scans per source and outcome (`ok`, `failed`).
pub const FOLDER_SCANS: &str = "interlink_folder_scans_total";

/// Bot runs take milliseconds to the `timeout_ms` limit (1 s by default).
const BOT_RUN_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// A group commit is an fsync or two: tenths of a millisecond to a
/// slow disk's hundreds.
const COMMIT_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// How often histograms are drained into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How long a gauge nobody sets stays in the output.
const GAUGE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Installs the Prometheus recorder for the process and starts its upkeep
/// task (call from inside the tokio runtime, once).
pub fn install() -> anyhow::Result<()> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BOT_RUN_DURATION.into()), BOT_RUN_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(JOURNAL_COMMIT_DURATION.into()),
            COMMIT_BUCKETS,
        )?
        // The gauges are set from the journal at each scrape: one nobody
        // sets any more (a destination removed by a reload) disappears.
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    describe();
    let upkeep = handle.clone();
    HANDLE
        .set(handle)
        .map_err(|_| anyhow::anyhow!("metrics recorder installed twice"))?;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(())
}

fn describe() {
    describe_counter!(MESSAGES_RECEIVED, "Messages journaled, per source");
    describe_counter!(ACKS_SENT, "ACKs sent by listeners, per listener and code");
    describe_counter!(BOT_RUNS, "Bot runs, per bot and outcome");
    describe_histogram!(
        BOT_RUN_DURATION,
        metrics::Unit::Seconds,
        "Time a bot took on one event"
    );
    describe_gauge!(
        OUTBOX_DEPTH,
        "Messages waiting for delivery, per destination"
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest message waiting, per destination"
    );
    describe_counter!(DELIVERIES, "Delivery attempts, per destination and outcome");
    describe_histogram!(
        JOURNAL_COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time one group commit of the journal takes"
    );
    describe_gauge!(
        JOURNAL_SIZE,
        metrics::Unit::Bytes,
        "Journal database and WAL size on disk"
    );
    describe_counter!(SFTP_POLLS, "SFTP polls, per source and outcome");
    describe_counter!(FOLDER_SCANS, "Drop-folder scans, per source and outcome");
}

/// The metrics in Prometheus text format, or `None` without a recorder.
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// `count` messages from `source` were journaled.
pub fn received(source: &str, count: usize) {
    counter!(MESSAGES_RECEIVED, "source" => source.to_string()).increment(count as u64);
}

/// Listener `source` sent an ACK with MSA-1 `code`.
pub fn ack_sent(source: &str, code: &str) {
    counter!(ACKS_SENT, "source" => source.to_string(), "code" => code.to_string()).increment(1);
}

/// `bot` ran an event with `outcome`, in `took` when the bot ran at all.
pub fn bot_run(bot: &str, outcome: &'static str, took: Option<Duration>) {
    counter!(BOT_RUNS, "bot" => bot.to_string(), "outcome" => outcome).increment(1);
    if let Some(took) = took {
        histogram!(BOT_RUN_DURATION, "bot" => bot.to_string()).record(took.as_secs_f64());
    }
}

/// A delivery attempt to `destination` ended with `outcome`.
pub fn delivery(destination: &str, outcome: &'static str) {
    counter!(DELIVERIES, "destination" => destination.to_string(), "outcome" => outcome)
        .increment(1);
}

/// `destination`'s queue: how many wait, and how long the oldest has.
pub fn outbox(destination: &str, depth: u64, oldest_age: Duration) {
    gauge!(OUTBOX_DEPTH, "destination" => destination.to_string()).set(depth as f64);
    gauge!(OUTBOX_OLDEST_AGE, "destination" => destination.to_string())
        .set(oldest_age.as_secs_f64());
}

/// One group commit of the journal took `took`.
pub fn journal_commit(took: Duration) {
    histogram!(JOURNAL_COMMIT_DURATION).record(took.as_secs_f64());
}

/// The journal's files take `bytes` on disk.
pub fn journal_size(bytes: u64) {
    gauge!(JOURNAL_SIZE).set(bytes as f64);
}

/// Outcome label of a poll or scan.
fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

/// A poll of SFTP source `source` ended.
pub fn sftp_poll(source: &str, ok: bool) {
    counter!(SFTP_POLLS, "source" => source.to_string(), "outcome" => outcome(ok)).increment(1);
}

/// A scan of drop folder `source` ended.
pub fn folder_scan(source: &str, ok: bool) {
    counter!(FOLDER_SCANS, "source" => source.to_string(), "outcome" => outcome(ok)).increment(1);
}
