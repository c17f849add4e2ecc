//! The bot's `[bots.schedule-publisher] settings`, read and checked in one
//! place. [`Settings::load`] is what `check_settings` runs at load and on
//! every reload, and what each event starts with: every error names the
//! setting, so an operator knows which line of the configuration to fix.

use chrono::NaiveTime;
use chrono_tz::Tz;
use interlink_sdk::host;

/// HL7 delimiters: a value written into a field must not contain them.
const DELIMITERS: &[char] = &['|', '^', '~', '\\', '&'];

/// Everything the bot is configured with.
pub struct Settings {
    /// Where each appointment change goes as SIU (any destination kind).
    pub partner_destination: String,
    /// Where the daily reminder CSV goes (a folder or SFTP destination).
    pub reminder_destination: String,
    /// Our facility codes and the partner's codes for them.
    pub facility_map: FacilityMap,
    /// MSH-3 of the republished SIU.
    pub sending_application: String,
    /// Local time of day after which tomorrow's reminders are written.
    pub publish_at: NaiveTime,
    /// The clinic's time zone: of HL7 times without an offset, of
    /// `publish_at` and of the CSV's dates and times.
    pub timezone: Tz,
}

impl Settings {
    /// Reads and checks every setting.
    pub fn load() -> Result<Settings, String> {
        let partner_destination = host::required_setting("partner_destination")?;
        if host::destination(&partner_destination).is_none() {
            return Err(no_destination("partner_destination", &partner_destination));
        }
        let reminder_destination = host::required_setting("reminder_destination")?;
        let reminder = host::destination(&reminder_destination)
            .ok_or_else(|| no_destination("reminder_destination", &reminder_destination))?;
        if !matches!(reminder.kind.as_str(), "folder" | "sftp") {
            return Err(format!(
                "setting reminder_destination: {reminder_destination:?} is an {} destination; \
                 the reminder CSV needs a folder or sftp one",
                reminder.kind
            ));
        }
        let facility_map = FacilityMap::parse(&host::config("facility_map").unwrap_or_default())?;
        let sending_application =
            host::config("sending_application").unwrap_or_else(|| "INTERLINK".into());
        if sending_application.trim().is_empty() || sending_application.contains(DELIMITERS) {
            return Err(format!(
                "setting sending_application: {sending_application:?} must be a non-blank code \
                 without HL7 delimiters (| ^ ~ \\ &)"
            ));
        }
        let publish_at = host::config("publish_at").unwrap_or_else(|| "17:00".into());
        let publish_at = NaiveTime::parse_from_str(publish_at.trim(), "%H:%M").map_err(|_| {
            format!("setting publish_at: {publish_at:?} is not a local time HH:MM (e.g. 17:00)")
        })?;
        let timezone = match host::config("timezone") {
            Some(tz) => tz.trim().parse().map_err(|_| {
                format!("setting timezone: {tz:?} is not an IANA time zone (e.g. America/Chicago)")
            })?,
            // The reminder service's own zone, when its destination has one.
            None => reminder
                .timezone
                .and_then(|tz| tz.parse().ok())
                .ok_or_else(|| {
                    format!(
                        "setting timezone is required (or a timezone on destination \
                         {reminder_destination:?})"
                    )
                })?,
        };
        Ok(Settings {
            partner_destination,
            reminder_destination,
            facility_map,
            sending_application,
            publish_at,
            timezone,
        })
    }
}

fn no_destination(setting: &str, name: &str) -> String {
    format!("setting {setting}: there is no destination {name:?} this bot may use")
}

/// `facility_map = "CLINIC_A=PARTNER_A,CLINIC_B=PARTNER_B"`: our facility
/// code on the left, the partner's on the right.
#[derive(Debug, Default, PartialEq)]
pub struct FacilityMap(Vec<(String, String)>);

impl FacilityMap {
    /// Parses the setting's text; blank means no mapping.
    pub fn parse(text: &str) -> Result<FacilityMap, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| format!("setting facility_map: {entry:?} {why}");
            let (ours, theirs) = entry
                .split_once('=')
                .map(|(o, t)| (o.trim(), t.trim()))
                .ok_or_else(|| bad("is not OUR_CODE=PARTNER_CODE"))?;
            if ours.is_empty() || theirs.is_empty() {
                return Err(bad("is not OUR_CODE=PARTNER_CODE"));
            }
            if theirs.contains(DELIMITERS) {
                return Err(bad("has an HL7 delimiter (| ^ ~ \\ &) in the partner code"));
            }
            if pairs.iter().any(|(o, _)| o == ours) {
                return Err(bad("maps a facility that is already mapped"));
            }
            pairs.push((ours.to_string(), theirs.to_string()));
        }
        Ok(FacilityMap(pairs))
    }

    /// The partner's code for our facility `ours`.
    pub fn partner_code(&self, ours: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(o, _)| o == ours)
            .map(|(_, t)| t.as_str())
    }
}
