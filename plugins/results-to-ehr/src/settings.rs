//! The bot's `[bots.results-to-ehr] settings`, read and checked in one
//! place. `check_settings` calls [`Settings::load`] when the host loads the
//! bot and on every config reload, so each event can rely on it; every
//! error names the setting, which is what the operator sees in `interlink
//! check`, the log and the dashboard.

use interlink_sdk::host;

/// At most this many EHRs get each exam.
pub const MAX_EHRS: usize = 3;

/// How report lines become OBX segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// One `TX` OBX per line of the report.
    Tx,
    /// One `FT` OBX, lines joined with the `\.br\` line break.
    Ft,
}

/// One EHR the results go to.
#[derive(Debug, Clone)]
pub struct Ehr {
    /// The `[[destination]]` name.
    pub name: String,
    /// `preliminary.<name>`: send a preliminary ORU (`P`) when attestation
    /// is requested.
    pub preliminary: bool,
    /// The destination's IANA time zone (UTC when it has none).
    pub timezone: Option<String>,
}

/// Where the exam's file goes after the ORU, and how much later.
#[derive(Debug, Clone)]
pub struct PacsPush {
    pub destination: String,
    pub delay_ms: u64,
}

/// Everything the bot is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ehrs: Vec<Ehr>,
    /// OBR-4.1 and OBX-3.1.
    pub procedure_id: String,
    /// OBR-4.2 and OBX-3.2.
    pub procedure_description: String,
    /// MSH-3.
    pub sending_application: String,
    pub report_format: ReportFormat,
    pub pacs: Option<PacsPush>,
}

impl Settings {
    /// Reads and checks every setting; the error names the first bad one.
    pub fn load() -> Result<Settings, String> {
        Ok(Settings {
            ehrs: ehrs()?,
            procedure_id: host::required_setting("procedure_id")?,
            procedure_description: host::setting("procedure_description", String::new())?,
            sending_application: host::setting("sending_application", "INTERLINK".to_string())?,
            report_format: match host::setting("report_format", "tx".to_string())?.as_str() {
                "tx" => ReportFormat::Tx,
                "ft" => ReportFormat::Ft,
                other => {
                    return Err(format!(
                        "setting report_format: {other:?} is not valid (tx or ft)"
                    ));
                }
            },
            pacs: pacs()?,
        })
    }

    /// The EHR called `name`, if it is one of `ehr_destinations`.
    pub fn ehr(&self, name: &str) -> Option<&Ehr> {
        self.ehrs.iter().find(|e| e.name == name)
    }
}

/// `ehr_destinations`: 1 to 3 distinct destinations the bot may use, each
/// with its `preliminary.<name>` switch.
fn ehrs() -> Result<Vec<Ehr>, String> {
    let list = host::required_setting("ehr_destinations")?;
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(format!(
            "setting ehr_destinations: {list:?} has an empty name (write names separated by commas)"
        ));
    }
    if names.len() > MAX_EHRS {
        return Err(format!(
            "setting ehr_destinations: at most {MAX_EHRS} destinations, got {}",
            names.len()
        ));
    }
    let mut ehrs: Vec<Ehr> = Vec::new();
    for name in names {
        if ehrs.iter().any(|e| e.name == name) {
            return Err(format!("setting ehr_destinations: {name} is listed twice"));
        }
        let Some(info) = host::destination(name) else {
            return Err(format!(
                "setting ehr_destinations: no destination named {name} that this bot may use"
            ));
        };
        ehrs.push(Ehr {
            name: name.to_string(),
            preliminary: host::setting(&format!("preliminary.{name}"), false)?,
            timezone: info.timezone,
        });
    }
    Ok(ehrs)
}

/// `pacs_destination` (a folder or SFTP destination: it gets bytes) and
/// `pacs_push_delay_s`, which means nothing without it.
fn pacs() -> Result<Option<PacsPush>, String> {
    let delay_s: Option<u64> = match host::config("pacs_push_delay_s") {
        None => None,
        Some(_) => Some(host::setting("pacs_push_delay_s", 0)?),
    };
    let Some(destination) = host::config("pacs_destination") else {
        return match delay_s {
            Some(_) => Err("setting pacs_push_delay_s: set pacs_destination too".into()),
            None => Ok(None),
        };
    };
    match host::destination(&destination).map(|d| d.kind) {
        None => Err(format!(
            "setting pacs_destination: no destination named {destination} that this bot may use"
        )),
        Some(kind) if kind == "mllp" => Err(format!(
            "setting pacs_destination: {destination} is an MLLP destination; files go to a folder or SFTP destination"
        )),
        Some(_) => Ok(Some(PacsPush {
            destination,
            delay_ms: delay_s.unwrap_or(0).saturating_mul(1000),
        })),
    }
}
