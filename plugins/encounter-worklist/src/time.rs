//! Local times: worklist times are rendered in the modality's time zone
//! with the SDK's [`Timestamp::in_zone`] (the SDK's `tz` feature). HL7 times
//! become instants with the SDK's [`Timestamp::instant_ms`].

use interlink_sdk::hl7::{Error, Timestamp, format_timestamp};

/// `ms` in `zone`, as a timestamp with that zone's offset.
pub fn local(ms: i64, zone: &str) -> Result<Timestamp, Error> {
    let utc: Timestamp = format!("{}+0000", format_timestamp(ms.max(0) as u64)).parse()?;
    utc.in_zone(zone)
}

/// ISO 8601 with the offset, e.g. `2026-11-24T03:00:00-06:00`.
pub fn iso(t: &Timestamp) -> String {
    let offset = t.offset_minutes.unwrap_or(0);
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        offset.abs() / 60,
        offset.abs() % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_local_iso_times() {
        let at = 1_795_510_800_000;
        assert_eq!(
            iso(&local(at, "America/Chicago").unwrap()),
            "2026-11-24T03:00:00-06:00"
        );
        assert_eq!(
            iso(&local(at, "Asia/Kolkata").unwrap()),
            "2026-11-24T14:30:00+05:30"
        );
    }
}
