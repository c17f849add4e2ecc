//! Instants and the clinic's local time. Appointments are kept as instants
//! (milliseconds since the Unix epoch); an HL7 time without a UTC offset is
//! read as the clinic's local time (setting `timezone`), as HL7 senders
//! mean it.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use interlink_sdk::hl7::Timestamp;

/// The instant an HL7 timestamp (`20261125093000`, `202611250930-0600`)
/// stands for, in milliseconds since the Unix epoch; `None` when it is
/// not a valid timestamp.
pub fn hl7_instant(text: &str, zone: Tz) -> Option<i64> {
    let t: Timestamp = text.trim().parse().ok()?;
    let naive =
        NaiveDate::from_ymd_opt(t.year, t.month, t.day)?.and_hms_opt(t.hour, t.minute, t.second)?;
    let instant = match t.offset_minutes {
        Some(offset) => naive - Duration::minutes(i64::from(offset)),
        None => local_to_utc(naive, zone),
    };
    Some(instant.and_utc().timestamp_millis())
}

/// UTC of a wall-clock time in `zone`: the earlier of two in the hour a
/// DST change repeats, an hour later for a time it skips.
fn local_to_utc(naive: NaiveDateTime, zone: Tz) -> NaiveDateTime {
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map_or(naive, |local| local.naive_utc())
}

/// The instant `ms` in `zone`.
pub fn local(ms: i64, zone: Tz) -> DateTime<Tz> {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    utc.with_timezone(&zone)
}
