//! The bot's settings (`[bots.encounter-worklist] settings`), read and
//! checked in one place. [`Settings::load`] is what `check_settings` runs,
//! so every event handler works with settings that passed; each error names
//! the setting, which is what the host shows in its log, `interlink check`
//! and the dashboard.

use interlink_sdk::hl7::is_time_zone;
use interlink_sdk::host;

use crate::accession::AccessionFormat;

/// Everything configurable, with its default.
pub struct Settings {
    /// How accession numbers look (`accession_prefix`, `accession_digits`).
    pub accession: AccessionFormat,
    /// `accession_period_min`: an accession number this old is replaced.
    pub period_ms: i64,
    /// `procedure_id` and `procedure_description`: the requested procedure
    /// of every worklist item.
    pub procedure_id: String,
    pub procedure_description: String,
    /// `timezone`: the modality's IANA zone. Worklist times are rendered in
    /// it, and HL7 times without a UTC offset are read in it.
    pub timezone: String,
    /// `max_open_hours`: an encounter open longer than this drops off.
    pub max_open_ms: i64,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

impl Settings {
    /// Reads and checks every setting.
    pub fn load() -> Result<Settings, String> {
        let prefix = host::setting("accession_prefix", "ACC".to_string())?;
        let digits = host::setting("accession_digits", 12u32)?;
        let accession = AccessionFormat::new(&prefix, digits)?;
        let period_min = host::setting("accession_period_min", 5u32)?;
        if period_min < 1 {
            return Err("setting accession_period_min: must be at least 1 (minutes)".into());
        }
        let max_open_hours = host::setting("max_open_hours", 72u32)?;
        if max_open_hours < 1 {
            return Err("setting max_open_hours: must be at least 1 (hours)".into());
        }
        let timezone = host::setting("timezone", "UTC".to_string())?;
        if !is_time_zone(&timezone) {
            return Err(format!(
                "setting timezone: {timezone:?} is not an IANA time zone (e.g. America/Chicago)"
            ));
        }
        Ok(Settings {
            accession,
            period_ms: i64::from(period_min) * MINUTE_MS,
            procedure_id: text_setting("procedure_id", "POCUS")?,
            procedure_description: text_setting(
                "procedure_description",
                "Point-of-care ultrasound",
            )?,
            timezone,
            max_open_ms: i64::from(max_open_hours) * HOUR_MS,
        })
    }
}

/// A text setting that, when given, is not blank.
fn text_setting(key: &str, default: &str) -> Result<String, String> {
    match host::config(key) {
        None => Ok(default.to_string()),
        Some(v) if v.trim().is_empty() => Err(format!("setting {key}: must not be blank")),
        Some(v) => Ok(v.trim().to_string()),
    }
}
