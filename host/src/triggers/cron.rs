//! Cron ticks: the schedules live bots subscribe to (in their manifests or
//! through `[bots.NAME]`), evaluated in `[cron] timezone`. Each firing is
//! journaled as a tick event before any bot sees it, so it is delivered at
//! least once even across a crash. A bot still busy with a schedule's
//! previous tick is skipped (and the skip logged); a delayed loop fires
//! once, not once per missed firing; after a restart, `catch_up = "last"`
//! fires one tick for the latest firing missed while the host was down.
//! Its journal reads run on tokio's blocking pool.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use cron::Schedule;

use crate::blocking;
use crate::config::{CatchUp, CronConfig};
use crate::intake::{Inbound, Intake, Provenance};
use crate::journal::Reader;
use crate::runtime::routing::RouteKey;
use crate::status::CronStatus;

/// Longest the scheduler sleeps, so schedules of newly loaded bots start
/// promptly.
const MAX_SLEEP: Duration = Duration::from_millis(250);

struct Entry {
    schedule: Schedule,
    next: DateTime<Tz>,
}

/// Runs the scheduler until the process ends.
pub async fn run(cfg: CronConfig, intake: Intake) -> Result<()> {
    let tz = Tz::from_str(&cfg.timezone).map_err(|e| anyhow::anyhow!("cron.timezone: {e}"))?;
    let journal = intake.journal().clone();
    let reader = Arc::new(Mutex::new(
        blocking::run(move || Ok(journal.reader()?)).await?,
    ));
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut first_pass = true;
    loop {
        let now = Utc::now().with_timezone(&tz);
        let live = intake.router().cron_schedules();
        entries.retain(|s, _| live.contains(s));
        for text in live {
            if entries.contains_key(&text) {
                continue;
            }
            let Ok(schedule) = Schedule::from_str(&text) else {
                continue;
            };
            if first_pass && cfg.catch_up == CatchUp::Last {
                // The journal read, and the walk over every firing since
                // (a per-second schedule after days down is a long one), go
                // to the blocking pool.
                let (r, t, s) = (reader.clone(), text.clone(), schedule.clone());
                let missed = blocking::run(move || {
                    let last = r.lock().expect("reader lock").last_tick(&t)?;
                    Ok(last.and_then(|ms| latest_missed(&s, ms, &now)))
                })
                .await
                .ok()
                .flatten();
                if let Some(missed) = missed {
                    tracing::info!(schedule = %text, "catching up on the firing missed at {missed}");
                    fire(&intake, &reader, &text, missed.timestamp_millis()).await;
                }
            }
            let Some(next) = schedule.after(&now).next() else {
                continue;
            };
            entries.insert(text, Entry { schedule, next });
        }
        first_pass = false;
        for (text, entry) in entries.iter_mut() {
            if entry.next <= now {
                fire(&intake, &reader, text, entry.next.timestamp_millis()).await;
                // From now, not from the missed time: no storm after a stall.
                match entry.schedule.after(&now).next() {
                    Some(n) => entry.next = n,
                    None => entry.next = now + chrono::Duration::days(36500),
                }
            }
        }
        crate::status::registry().set_cron(
            entries
                .iter()
                .map(|(schedule, e)| CronStatus {
                    schedule: schedule.clone(),
                    next_firing_ms: e.next.timestamp_millis(),
                })
                .collect(),
        );
        let soonest = entries.values().map(|e| e.next).min();
        let wait = soonest
            .and_then(|n| (n - Utc::now().with_timezone(&tz)).to_std().ok())
            .unwrap_or(MAX_SLEEP)
            .clamp(Duration::from_millis(5), MAX_SLEEP);
        tokio::time::sleep(wait).await;
    }
}

/// The latest firing after `last_ms` and at or before `now`.
fn latest_missed(schedule: &Schedule, last_ms: i64, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
    let last = DateTime::<Utc>::from_timestamp_millis(last_ms)?.with_timezone(&now.timezone());
    schedule
        .after(&last)
        .take_while(|t| t <= now)
        .take(1_000_000)
        .last()
}

/// Journals one firing of `schedule` for the bots that want it.
async fn fire(intake: &Intake, reader: &Arc<Mutex<Reader>>, schedule: &str, at_ms: i64) {
    let routes = intake.router().route(RouteKey::Tick { schedule });
    let (r, s) = (reader.clone(), schedule.to_string());
    let busy: Vec<String> = blocking::run(move || {
        let r = r.lock().expect("reader lock");
        Ok(routes
            .into_iter()
            .filter(|bot| r.tick_pending(bot, &s).unwrap_or(false))
            .collect())
    })
    .await
    .unwrap_or_default();
    for bot in &busy {
        tracing::warn!(bot = %bot, schedule, "skipped a tick: the bot is still busy with the previous one");
    }
    let item = Inbound::Tick {
        schedule: schedule.to_string(),
        at_ms,
        except: busy,
    };
    let provenance = Provenance::Tick {
        schedule: schedule.to_string(),
        at_ms,
    };
    if let Err(e) = intake.submit(schedule, vec![item], Some(provenance)).await {
        tracing::error!(schedule, "tick not journaled: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_latest_missed_firing() {
        let s = Schedule::from_str("0 */5 * * * *").unwrap();
        let tz: Tz = "America/Chicago".parse().unwrap();
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .with_timezone(&tz);
        let last = (now - chrono::Duration::minutes(23)).timestamp_millis();
        let missed = latest_missed(&s, last, &now).unwrap();
        assert!(missed <= now && now - missed < chrono::Duration::minutes(5));
        assert_eq!(latest_missed(&s, now.timestamp_millis(), &now), None);
    }
}
