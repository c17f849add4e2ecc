//! The bot's settings (`[bots.adt-to-fhir.settings]`), read and checked in
//! one place. [`Settings::load`] is what `check_settings` runs, so every
//! event works with settings that passed; each error names the setting,
//! which is what the host shows in its log, `interlink check` and the
//! dashboard.

use interlink_sdk::hl7::is_time_zone;
use interlink_sdk::host;

/// Which resources the bot sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub patient: bool,
    pub encounter: bool,
    pub observation: bool,
}

/// Everything configurable, with its default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `destination`: the `http` destination (the FHIR server's base URL).
    pub destination: String,
    /// `identifier_system`: the system of identifiers without an assigning
    /// authority, and the base of those with one that has no
    /// `system.<AUTHORITY>` of its own (`<identifier_system>/<AUTHORITY>`).
    pub identifier_system: String,
    /// `visit_system`: the system of visit numbers (PV1-19), by default
    /// `<identifier_system>/visit`.
    pub visit_system: String,
    /// The system of Observation identifiers:
    /// `<identifier_system>/observation`.
    pub observation_system: String,
    /// `resources`: which resources to send.
    pub resources: Resources,
    /// `timezone`: HL7 times without a UTC offset are read in it.
    pub timezone: String,
    /// `ordering_header`: a request header carrying the patient's
    /// identifier, for a destination whose `ordering_header` names it.
    pub ordering_header: Option<String>,
}

impl Settings {
    /// Reads and checks every setting.
    pub fn load() -> Result<Settings, String> {
        let destination = host::required_setting("destination")?;
        match host::destination(&destination).map(|d| d.kind) {
            None => {
                return Err(format!(
                    "setting destination: no destination named {destination} that this bot may use"
                ));
            }
            Some(kind) if kind != "http" => {
                return Err(format!(
                    "setting destination: {destination} is a {kind} destination; FHIR resources go to an http destination"
                ));
            }
            Some(_) => {}
        }
        let identifier_system = host::setting(
            "identifier_system",
            "http://interlink.local/fhir/identifier".to_string(),
        )?;
        check_system("identifier_system", &identifier_system)?;
        let visit_system = host::setting("visit_system", under(&identifier_system, "visit"))?;
        check_system("visit_system", &visit_system)?;
        let timezone = host::setting("timezone", "UTC".to_string())?;
        if !is_time_zone(&timezone) {
            return Err(format!(
                "setting timezone: {timezone:?} is not an IANA time zone (e.g. America/Chicago)"
            ));
        }
        let ordering_header = host::config("ordering_header").map(|h| h.trim().to_string());
        if let Some(h) = &ordering_header
            && (h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(format!(
                "setting ordering_header: {h:?} is not a header name (letters, digits and -)"
            ));
        }
        Ok(Settings {
            destination,
            observation_system: under(&identifier_system, "observation"),
            identifier_system,
            visit_system,
            resources: resources()?,
            timezone,
            ordering_header,
        })
    }

    /// The identifier system of an assigning authority (PID-3.4.1,
    /// PV1-19.4.1): `system.<AUTHORITY>` when set, else
    /// `<identifier_system>/<AUTHORITY>`; `identifier_system` itself
    /// without one.
    pub fn system_for(&self, authority: &str) -> Result<String, String> {
        if authority.is_empty() {
            return Ok(self.identifier_system.clone());
        }
        let key = format!("system.{authority}");
        match host::config(&key) {
            Some(system) => {
                let system = system.trim().to_string();
                check_system(&key, &system)?;
                Ok(system)
            }
            None => Ok(under(&self.identifier_system, authority)),
        }
    }
}

/// `<identifier_system>/<name>`, a system below `identifier_system` (its
/// trailing `/` not doubled).
fn under(identifier_system: &str, name: &str) -> String {
    format!("{}/{name}", identifier_system.trim_end_matches('/'))
}

/// `resources`: a comma-separated list of `Patient`, `Encounter` and
/// `Observation` (all three by default).
fn resources() -> Result<Resources, String> {
    let list = host::setting("resources", "Patient,Encounter,Observation".to_string())?;
    let mut r = Resources {
        patient: false,
        encounter: false,
        observation: false,
    };
    for name in list.split(',').map(str::trim) {
        match name {
            "Patient" => r.patient = true,
            "Encounter" => r.encounter = true,
            "Observation" => r.observation = true,
            other => {
                return Err(format!(
                    "setting resources: {other:?} is not one of Patient, Encounter, Observation"
                ));
            }
        }
    }
    Ok(r)
}

/// A FHIR `uri` usable as an identifier system: absolute (`http://…`,
/// `urn:…`), without spaces or the `|` that separates system and value in
/// a search.
fn check_system(key: &str, system: &str) -> Result<(), String> {
    let absolute = system.starts_with("urn:") || system.contains("://");
    if !absolute || system.contains([' ', '|']) || system.chars().any(char::is_control) {
        return Err(format!(
            "setting {key}: {system:?} is not an absolute URI (e.g. http://hospital.org/mrn or urn:oid:1.2.3)"
        ));
    }
    Ok(())
}
