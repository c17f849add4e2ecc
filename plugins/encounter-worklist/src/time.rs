//! Instants and local times. HL7 times become milliseconds since the Unix
//! epoch (comparable across senders and with `host::now_ms`); worklist
//! times are rendered in the modality's time zone with the SDK's
//! [`Timestamp::in_zone`] (the SDK's `tz` feature).

use interlink_sdk::hl7::{Error, Precision, Timestamp, format_timestamp};

const DAY_MS: i64 = 86_400_000;

/// The instant `ts` stands for. A time without a UTC offset is local time
/// in `zone`; in a DST gap or overlap the zone's offset after the change
/// decides.
pub fn instant_ms(ts: &Timestamp, zone: &str) -> Result<i64, Error> {
    let wall = wall_ms(ts);
    let offset = match ts.offset_minutes {
        Some(offset) => offset,
        None => {
            // The zone's offset at the wall time read as UTC is off by at
            // most one change of offset; asking again at the corrected
            // instant settles it.
            let guess = offset_at(wall, zone)?;
            offset_at(wall - i64::from(guess) * 60_000, zone)?
        }
    };
    Ok(wall - i64::from(offset) * 60_000)
}

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

fn offset_at(ms: i64, zone: &str) -> Result<i32, Error> {
    Ok(local(ms, zone)?.offset_minutes.unwrap_or(0))
}

/// The time on the timestamp's clock face as if it were UTC.
fn wall_ms(t: &Timestamp) -> i64 {
    let days = days_from_civil(i64::from(t.year), t.month, t.day);
    let seconds = i64::from(t.hour * 3600 + t.minute * 60 + t.second);
    let fraction_ms = match t.precision {
        Precision::Fraction(digits) => i64::from(t.fraction) * 1000 / 10i64.pow(u32::from(digits)),
        _ => 0,
    };
    days * DAY_MS + seconds * 1000 + fraction_ms
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn times_with_offsets_are_exact() {
        // 2026-11-24T09:00:00Z
        let at = 1_795_510_800_000;
        assert_eq!(instant_ms(&ts("20261124090000+0000"), "UTC").unwrap(), at);
        assert_eq!(instant_ms(&ts("20261124030000-0600"), "UTC").unwrap(), at);
        assert_eq!(
            instant_ms(&ts("20261124090000.25+0000"), "UTC").unwrap(),
            at + 250
        );
    }

    #[test]
    fn times_without_offsets_are_local_to_the_zone() {
        let at = 1_795_510_800_000;
        assert_eq!(
            instant_ms(&ts("20261124030000"), "America/Chicago").unwrap(),
            at
        );
        // Summer time: Chicago is UTC-5.
        let summer = instant_ms(&ts("20260701070000"), "America/Chicago").unwrap();
        assert_eq!(
            iso(&local(summer, "UTC").unwrap()),
            "2026-07-01T12:00:00+00:00"
        );
    }

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
