//! HL7 timestamps (DTM, and TS's first component): parsed with their
//! precision and UTC offset kept, written back the same way, and, with the
//! `tz` feature, converted to an IANA time zone for receivers that want
//! local time.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// How much of a timestamp was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// Seconds with 1 to 4 fractional digits.
    Fraction(u8),
}

/// A parsed `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`. Fields
/// beyond the precision are at their minimum (month and day 1, the rest 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Fraction of a second in units of 1/10^digits (see `precision`).
    pub fraction: u32,
    pub precision: Precision,
    /// Offset from UTC in minutes, when the timestamp carries one.
    pub offset_minutes: Option<i32>,
}

fn digits(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadTimestamp(s.to_string());
        if !s.is_ascii() {
            return Err(bad());
        }
        let (body, offset) = match s.find(['+', '-']) {
            Some(i) => {
                let z = &s[i + 1..];
                if z.len() != 4 {
                    return Err(bad());
                }
                let (h, m) = (
                    digits(&z[..2]).ok_or_else(bad)?,
                    digits(&z[2..]).ok_or_else(bad)?,
                );
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                let sign = if s.as_bytes()[i] == b'-' { -1 } else { 1 };
                (&s[..i], Some(sign * (h * 60 + m) as i32))
            }
            None => (s, None),
        };
        let (whole, fraction) = match body.split_once('.') {
            Some((w, f)) if w.len() == 14 && (1..=4).contains(&f.len()) => (w, Some(f)),
            Some(_) => return Err(bad()),
            None => (body, None),
        };
        if !matches!(whole.len(), 4 | 6 | 8 | 10 | 12 | 14) {
            return Err(bad());
        }
        let part = |from: usize, default: u32| -> Result<u32, Error> {
            whole
                .get(from..from + 2)
                .map_or(Ok(default), |p| digits(p).ok_or_else(bad))
        };
        let year = digits(&whole[..4]).ok_or_else(bad)? as i32;
        let (month, day) = (part(4, 1)?, part(6, 1)?);
        let (hour, minute, second) = (part(8, 0)?, part(10, 0)?, part(12, 0)?);
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        if !valid {
            return Err(bad());
        }
        let precision = match (whole.len(), fraction) {
            (_, Some(f)) => Precision::Fraction(f.len() as u8),
            (4, _) => Precision::Year,
            (6, _) => Precision::Month,
            (8, _) => Precision::Day,
            (10, _) => Precision::Hour,
            (12, _) => Precision::Minute,
            _ => Precision::Second,
        };
        let fraction = match fraction {
            Some(f) => digits(f).ok_or_else(bad)?,
            None => 0,
        };
        Ok(Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            fraction,
            precision,
            offset_minutes: offset,
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        let p = self.precision;
        if p >= Precision::Month {
            write!(f, "{:02}", self.month)?;
        }
        if p >= Precision::Day {
            write!(f, "{:02}", self.day)?;
        }
        if p >= Precision::Hour {
            write!(f, "{:02}", self.hour)?;
        }
        if p >= Precision::Minute {
            write!(f, "{:02}", self.minute)?;
        }
        if p >= Precision::Second {
            write!(f, "{:02}", self.second)?;
        }
        if let Precision::Fraction(n) = p {
            write!(f, ".{:0width$}", self.fraction, width = n as usize)?;
        }
        if let Some(o) = self.offset_minutes {
            let sign = if o < 0 { '-' } else { '+' };
            write!(f, "{sign}{:02}{:02}", o.abs() / 60, o.abs() % 60)?;
        }
        Ok(())
    }
}

#[cfg(feature = "tz")]
impl Timestamp {
    /// The same instant in the IANA zone `tz` (e.g. `America/Chicago`), with
    /// that zone's offset at the instant and the same precision. A timestamp
    /// without an offset is taken to be UTC.
    pub fn in_zone(&self, tz: &str) -> Result<Timestamp, Error> {
        use chrono::{Datelike, NaiveDate, Offset, TimeZone, Timelike};
        let zone: chrono_tz::Tz = tz
            .parse()
            .map_err(|_| Error::UnknownTimeZone(tz.to_string()))?;
        let naive = NaiveDate::from_ymd_opt(self.year, self.month, self.day)
            .and_then(|d| d.and_hms_opt(self.hour, self.minute, self.second))
            .ok_or_else(|| Error::BadTimestamp(self.to_string()))?;
        let utc = naive - chrono::Duration::minutes(i64::from(self.offset_minutes.unwrap_or(0)));
        let local = zone.from_utc_datetime(&utc);
        Ok(Timestamp {
            year: local.year(),
            month: local.month(),
            day: local.day(),
            hour: local.hour(),
            minute: local.minute(),
            second: local.second(),
            offset_minutes: Some(local.offset().fix().local_minus_utc() / 60),
            ..*self
        })
    }
}

#[cfg(feature = "tz")]
impl Timestamp {
    /// The instant `unix_ms` to the second in the IANA zone `tz` (UTC
    /// without one), with that zone's offset: what an ORU's MSH-7 or a
    /// worklist's scheduled time shows.
    pub fn at_ms(unix_ms: i64, tz: Option<&str>) -> Result<Timestamp, Error> {
        let utc: Timestamp = format!("{}+0000", format_timestamp(unix_ms.max(0) as u64)).parse()?;
        match tz {
            Some(zone) => utc.in_zone(zone),
            None => Ok(utc),
        }
    }
}

impl Timestamp {
    /// ISO 8601 / RFC 3339 to the second, with the offset (UTC when it has
    /// none): `2026-11-24T03:00:00-06:00`, as JSON and FHIR `dateTime`
    /// want it.
    pub fn to_rfc3339(&self) -> String {
        let offset = self.offset_minutes.unwrap_or(0);
        let sign = if offset < 0 { '-' } else { '+' };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            offset.abs() / 60,
            offset.abs() % 60
        )
    }
}

/// Whether `tz` names a zone in the IANA database.
#[cfg(feature = "tz")]
pub fn is_time_zone(tz: &str) -> bool {
    tz.parse::<chrono_tz::Tz>().is_ok()
}

/// Formats milliseconds since the Unix epoch as `YYYYMMDDHHMMSS` in UTC.
pub fn format_timestamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The current time as an HL7 timestamp in UTC, with its `+0000` offset.
pub fn now_timestamp() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    format!("{}+0000", format_timestamp(ms))
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Instants of timestamps, with local times read in an IANA zone.
#[cfg(feature = "tz")]
impl Timestamp {
    /// The instant this timestamp stands for, in milliseconds since the
    /// Unix epoch (fractions of a second included). With a UTC offset it is
    /// exact; without one it is wall-clock time in the IANA zone `tz`, and
    /// where a DST change makes that wall time ambiguous the rule is:
    ///
    /// - a time the change skips maps forward by the gap (02:30 on the
    ///   spring-forward night in `America/Chicago` is 03:30 CDT): it is read
    ///   with the offset before the change;
    /// - a time the change repeats takes the earlier instant (01:30 on the
    ///   fall-back night is 01:30 CDT, not CST).
    pub fn instant_ms(&self, tz: &str) -> Result<i64, Error> {
        use chrono::{LocalResult, NaiveDate, Offset, TimeZone};
        let zone: chrono_tz::Tz = tz
            .parse()
            .map_err(|_| Error::UnknownTimeZone(tz.to_string()))?;
        let fraction_ms = match self.precision {
            Precision::Fraction(digits) => {
                i64::from(self.fraction) * 1000 / 10i64.pow(u32::from(digits))
            }
            _ => 0,
        };
        let wall = NaiveDate::from_ymd_opt(self.year, self.month, self.day)
            .and_then(|d| d.and_hms_opt(self.hour, self.minute, self.second))
            .ok_or_else(|| Error::BadTimestamp(self.to_string()))?
            + chrono::Duration::milliseconds(fraction_ms);
        let utc = match self.offset_minutes {
            Some(offset) => wall - chrono::Duration::minutes(i64::from(offset)),
            None => match zone.from_local_datetime(&wall) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.naive_utc(),
                LocalResult::None => {
                    // Changes of offset are months apart: a day before the
                    // gap, the offset before it holds.
                    let day_before = wall - chrono::Duration::days(1);
                    let before = zone.offset_from_utc_datetime(&day_before).fix();
                    wall - chrono::Duration::seconds(i64::from(before.local_minus_utc()))
                }
            },
        };
        Ok(utc.and_utc().timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_a_zone_as_rfc_3339() {
        let utc: Timestamp = "20261124090000".parse().unwrap();
        assert_eq!(utc.to_rfc3339(), "2026-11-24T09:00:00+00:00");
        let kolkata: Timestamp = "202611241430+0530".parse().unwrap();
        assert_eq!(kolkata.to_rfc3339(), "2026-11-24T14:30:00+05:30");
        #[cfg(feature = "tz")]
        {
            let at = 1_795_510_800_000; // 2026-11-24T09:00:00Z
            let chicago = Timestamp::at_ms(at, Some("America/Chicago")).unwrap();
            assert_eq!(chicago.to_string(), "20261124030000-0600");
            assert_eq!(chicago.to_rfc3339(), "2026-11-24T03:00:00-06:00");
            assert_eq!(
                Timestamp::at_ms(at, None).unwrap().to_string(),
                "20261124090000+0000"
            );
            assert!(Timestamp::at_ms(at, Some("Mars/Base")).is_err());
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_timestamp(0), "19700101000000");
        assert_eq!(format_timestamp(951_782_400_000), "20000229000000");
        assert_eq!(format_timestamp(1_795_000_000_123), "20261118110640");
        assert!(now_timestamp().ends_with("+0000"));
    }

    #[test]
    fn parses_and_writes_back_every_precision() {
        for s in [
            "2026",
            "202611",
            "20261122",
            "2026112203",
            "202611220314",
            "20261122031405",
            "20261122031405.1",
            "20261122031405.1234-0600",
            "20261122+0100",
        ] {
            let t: Timestamp = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        let t: Timestamp = "20261122031405.12-0530".parse().unwrap();
        assert_eq!((t.hour, t.fraction, t.offset_minutes), (3, 12, Some(-330)));
        assert_eq!(t.precision, Precision::Fraction(2));
    }

    #[test]
    fn rejects_bad_timestamps() {
        for s in [
            "",
            "26",
            "2026131",
            "20260230",
            "20261122250000",
            "2026112203.5",
            "20261122+01",
            "2026-11-22",
            "2+Ǵ0",
            "2026+Ǵ00",
        ] {
            assert!(s.parse::<Timestamp>().is_err(), "{s}");
        }
    }

    #[cfg(feature = "tz")]
    #[test]
    fn converts_to_named_zones_across_dst() {
        let summer: Timestamp = "20260701120000+0000".parse().unwrap();
        assert_eq!(
            summer.in_zone("America/Chicago").unwrap().to_string(),
            "20260701070000-0500"
        );
        let winter: Timestamp = "202601151200".parse().unwrap();
        assert_eq!(
            winter.in_zone("America/Chicago").unwrap().to_string(),
            "202601150600-0600"
        );
        let from_berlin: Timestamp = "20260315103000.5+0100".parse().unwrap();
        assert_eq!(
            from_berlin.in_zone("Asia/Kolkata").unwrap().to_string(),
            "20260315150000.5+0530"
        );
        assert_eq!(
            summer.in_zone("Mars/Olympus").unwrap_err(),
            Error::UnknownTimeZone("Mars/Olympus".into())
        );
    }

    #[cfg(feature = "tz")]
    #[test]
    fn instants_of_local_times_across_dst_changes() {
        let ms = |text: &str, tz: &str| text.parse::<Timestamp>().unwrap().instant_ms(tz).unwrap();
        // 2026-11-24T09:00:00Z, with and without an offset.
        let at = 1_795_510_800_000;
        assert_eq!(ms("20261124030000-0600", "Asia/Kolkata"), at);
        assert_eq!(ms("20261124030000", "America/Chicago"), at);
        assert_eq!(ms("20261124090000.25", "UTC"), at + 250);
        // Spring forward, 2026-03-08 in Chicago: 02:30 does not exist and
        // maps forward by the gap, to 03:30 CDT (08:30Z).
        assert_eq!(
            ms("20260308023000", "America/Chicago"),
            ms("20260308083000+0000", "UTC")
        );
        // Fall back, 2026-11-01: 01:30 happens twice; the earlier (CDT,
        // 06:30Z) is taken.
        assert_eq!(
            ms("20261101013000", "America/Chicago"),
            ms("20261101063000+0000", "UTC")
        );
        // A 30-minute gap (Lord Howe, 2026-10-04 02:00 -> 02:30).
        assert_eq!(
            ms("20261004021500", "Australia/Lord_Howe"),
            ms("20261004024500+1100", "UTC")
        );
        assert!(matches!(
            "20261124"
                .parse::<Timestamp>()
                .unwrap()
                .instant_ms("Mars/Olympus"),
            Err(Error::UnknownTimeZone(_))
        ));
    }
}
