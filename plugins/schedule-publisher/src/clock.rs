//! Instants and the clinic's local time. Appointments are kept as instants
//! (milliseconds since the Unix epoch); an HL7 time without a UTC offset is
//! read as the clinic's local time (setting `timezone`), as HL7 senders
//! mean it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use interlink_sdk::hl7::Timestamp;

/// The instant an HL7 timestamp (`20261125093000`, `202611250930-0600`)
/// stands for, in milliseconds since the Unix epoch; `None` when it is
/// not a valid timestamp. A time without an offset is local to `zone`, by
/// the SDK's rule for DST changes ([`Timestamp::instant_ms`]).
pub fn hl7_instant(text: &str, zone: Tz) -> Option<i64> {
    let t: Timestamp = text.trim().parse().ok()?;
    t.instant_ms(zone.name()).ok()
}

/// The instant `ms` in `zone`.
pub fn local(ms: i64, zone: Tz) -> DateTime<Tz> {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    utc.with_timezone(&zone)
}
