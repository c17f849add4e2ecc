//! The daily reminder list. Each cron tick asks: is it past `publish_at`
//! in the clinic's time zone, and has today's list not been written yet?
//! Then tomorrow's (local date) booked appointments go to
//! `reminder_destination` as `reminders-YYYY-MM-DD.csv`, and the bot
//! records the date, so a later tick the same day does nothing. An
//! appointment is listed once for a day at most (it keeps the day it was
//! listed for, so one moved to another day is listed again); cancelled,
//! deleted and no-show ones never.
//!
//! The same daily run forgets appointments that started more than
//! [`KEEP_DAYS`] days ago (after that, a message about one is taken as
//! news).

use chrono::{Days, NaiveDate};
use interlink_sdk::prelude::*;

use crate::appointment::{Appointment, Status};
use crate::clock::local;
use crate::settings::Settings;
use crate::store;

/// Key holding the local date whose run wrote the list (`2026-11-24`).
const PUBLISHED_ON: &str = "reminders/published-on";

/// Appointments are forgotten this many days after their start.
pub const KEEP_DAYS: i64 = 30;

/// The CSV's first line.
const HEADER: &str = "appointment_id,start,duration_min,patient_id,patient_name,resource,phone\r\n";

/// Handles a tick due at `at_ms`.
pub fn on_tick(settings: &Settings, at_ms: i64) -> Result<Reply, BotError> {
    let now = local(at_ms, settings.timezone);
    let today = now.date_naive();
    if now.time() < settings.publish_at
        || host::kv::get_string(PUBLISHED_ON).as_deref() == Some(&today.to_string())
    {
        return Ok(Reply::default());
    }
    let tomorrow = today + Days::new(1);
    let mut due = Vec::new();
    for mut a in store::all()? {
        // A cancellation of an appointment never booked here has no start:
        // its last change dates it, or, without a usable MSH-7, when it
        // was received.
        let dated = a
            .details
            .start_ms
            .or(a.changed_at_ms)
            .unwrap_or(a.received_at_ms);
        if dated < at_ms - KEEP_DAYS * 24 * 3_600_000 {
            store::remove(&a);
        } else if a.status == Status::Booked
            && a.listed_for != Some(tomorrow)
            && starts_on(&a, tomorrow, settings)
        {
            a.listed_for = Some(tomorrow);
            store::save(&a);
            due.push(a);
        }
    }
    due.sort_by(|a, b| (a.details.start_ms, &a.id).cmp(&(b.details.start_ms, &b.id)));
    host::kv::set(PUBLISHED_ON, today.to_string());
    host::info(&format!(
        "reminders for {tomorrow}: {} listed, to {}",
        due.len(),
        settings.reminder_destination
    ));
    let file = Outbound::bytes(&settings.reminder_destination, csv(&due, settings))
        .named(&format!("reminders-{tomorrow}.csv"))
        .content_type("text/csv");
    Ok(Reply::default().push(file))
}

fn starts_on(a: &Appointment, day: NaiveDate, settings: &Settings) -> bool {
    a.details
        .start_ms
        .is_some_and(|s| local(s, settings.timezone).date_naive() == day)
}

/// The CSV: a header line, then one line per appointment (start as local
/// `YYYY-MM-DD HH:MM`), lines ending in CRLF (RFC 4180).
fn csv(appointments: &[Appointment], settings: &Settings) -> String {
    let mut out = String::from(HEADER);
    for a in appointments {
        let d = &a.details;
        let start = d.start_ms.map(|s| {
            local(s, settings.timezone)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        });
        let row = [
            Some(a.id.clone()),
            start,
            d.duration_min.map(|m| m.to_string()),
            d.patient_id.clone(),
            d.patient_name.clone(),
            d.resource.clone(),
            d.phone.clone(),
        ];
        let cells: Vec<String> = row
            .iter()
            .map(|c| csv_cell(c.as_deref().unwrap_or("")))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV cell: quoted, with quotes doubled, when it holds a comma, a quote
/// or a line break.
fn csv_cell(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}
