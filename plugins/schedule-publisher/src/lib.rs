//! schedule-publisher: keeps a clinic's appointments from its SIU feed,
//! republishes every change to a partner with the partner's facility codes,
//! and each evening writes tomorrow's appointments as a CSV for a reminder
//! service. See `README.md` for the settings.
//!
//! How it is put together, one module per job:
//! - [`settings`]: reading and checking `[bots.schedule-publisher] settings`;
//! - [`appointment`]: what an SIU message says, and applying it (late and
//!   repeated messages included);
//! - [`store`]: appointments in the durable key-value store;
//! - [`feed`]: the SIU event, from message to republished SIU;
//! - [`partner`]: the SIU the partner gets;
//! - [`reminders`]: the cron tick that writes the CSV;
//! - [`clock`]: HL7 times, instants and the clinic's local time.

mod appointment;
mod clock;
mod feed;
mod partner;
mod reminders;
mod settings;
mod store;

use interlink_sdk::prelude::*;

use settings::Settings;

struct SchedulePublisher;

impl Bot for SchedulePublisher {
    fn manifest() -> Manifest {
        Manifest::new("schedule-publisher", env!("CARGO_PKG_VERSION"))
            .description(
                "Republishes SIU appointment changes to a partner; writes tomorrow's reminder CSV",
            )
            .subscribe(Subscription::hl7([
                "SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15", "SIU^S17", "SIU^S26",
            ]))
            // Every 15 minutes: the CSV is written at the first tick after
            // `publish_at`.
            .subscribe(Subscription::Cron("0 */15 * * * *".into()))
    }

    fn check_settings() -> Result<(), String> {
        Settings::load().map(drop)
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        // The host runs no event before the settings pass `check_settings`.
        let settings = Settings::load().map_err(BotError::fatal)?;
        match event {
            Event::Hl7(input) => feed::on_siu(&settings, &input),
            Event::Tick(tick) => reminders::on_tick(&settings, tick.scheduled_at_ms as i64),
            Event::File(_) | Event::Http(_) => Ok(Reply::default()),
        }
    }
}

export_bot!(SchedulePublisher);
