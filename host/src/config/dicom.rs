//! `[[dicom]]`: a DICOM Modality Worklist SCP. Modalities query it with
//! C-FIND; each query is answered from a bot's HTTP worklist (a read-only
//! query, like a `GET` to the bot's mount point).

use anyhow::{Result, bail};
use serde::Deserialize;

use super::values::{check_name, check_server, check_time_zone};

/// The character set of the answers (`SpecificCharacterSet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum DicomCharset {
    /// UTF-8.
    #[default]
    #[serde(rename = "ISO_IR 192")]
    Utf8,
    /// Latin-1; characters outside it are sent as `?`.
    #[serde(rename = "ISO_IR 100")]
    Latin1,
}

impl DicomCharset {
    /// The defined term, as `SpecificCharacterSet` carries it.
    pub fn term(self) -> &'static str {
        match self {
            DicomCharset::Utf8 => "ISO_IR 192",
            DicomCharset::Latin1 => "ISO_IR 100",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomConfig {
    pub name: String,
    /// `host:port` to listen on.
    pub listen: String,
    /// The called AE title this SCP answers to; associations calling
    /// another are rejected.
    pub ae_title: String,
    /// Calling AE titles allowed; empty: any.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
    /// The modalities' IANA time zone: scheduled dates and times are given
    /// and matched in it.
    #[serde(default = "utc")]
    pub timezone: String,
    /// The bot whose HTTP worklist answers the queries.
    pub bot: String,
    /// Where below the bot's mount point the worklist is.
    #[serde(default = "default_path")]
    pub path: String,
    /// The items' Modality.
    #[serde(default = "default_modality")]
    pub modality: String,
    /// The items' ScheduledStationAETitle; unset: none, and a query's
    /// station AE title does not narrow the answer.
    pub station_ae: Option<String>,
    #[serde(default)]
    pub charset: DicomCharset,
    /// Largest PDU we receive (and announce).
    #[serde(default = "default_max_pdu")]
    pub max_pdu: u32,
    /// An association with no traffic for this long is aborted.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// Associations served at once; further connections are closed.
    #[serde(default = "default_max_associations")]
    pub max_associations: usize,
}

impl DicomConfig {
    pub(super) fn check(&self, key: &str) -> Result<()> {
        check_server(
            key,
            &self.listen,
            "127.0.0.1:11112",
            ("max_associations", self.max_associations),
            1024,
        )?;
        check_ae_title(&self.ae_title, &format!("{key}.ae_title"))?;
        for (i, caller) in self.allowed_callers.iter().enumerate() {
            check_ae_title(caller, &format!("{key}.allowed_callers[{i}]"))?;
        }
        if let Some(ae) = &self.station_ae {
            check_ae_title(ae, &format!("{key}.station_ae"))?;
        }
        check_time_zone(&self.timezone, &format!("{key}.timezone"))?;
        check_name(&self.bot, &format!("{key}.bot"))?;
        if !self.path.starts_with('/') || self.path.contains(['?', '#']) {
            bail!("{key}.path = {:?}: a path like \"/worklist\"", self.path);
        }
        let modality_ok = (1..=16).contains(&self.modality.len())
            && self
                .modality
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !modality_ok {
            bail!(
                "{key}.modality = {:?}: a DICOM code string like \"US\"",
                self.modality
            );
        }
        if !(4096..=1_048_576).contains(&self.max_pdu) {
            bail!("{key}.max_pdu = {}: must be 4096 to 1048576", self.max_pdu);
        }
        if self.idle_timeout_s == 0 {
            bail!("{key}.idle_timeout_s must be at least 1");
        }
        Ok(())
    }
}

/// An AE title: 1-16 characters of printable ASCII without a backslash,
/// not only spaces.
pub(super) fn check_ae_title(title: &str, key: &str) -> Result<()> {
    let ok = (1..=16).contains(&title.len())
        && !title.trim().is_empty()
        && title
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    if !ok {
        bail!("{key} = {title:?}: an AE title is 1-16 printable ASCII characters, no backslash");
    }
    Ok(())
}

fn utc() -> String {
    "UTC".into()
}
fn default_path() -> String {
    "/worklist".into()
}
fn default_modality() -> String {
    "US".into()
}
fn default_max_pdu() -> u32 {
    16_384
}
fn default_idle_timeout_s() -> u64 {
    300
}
fn default_max_associations() -> usize {
    32
}
