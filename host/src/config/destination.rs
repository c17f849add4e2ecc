//! `[[destination]]`: where bots' outbound messages go. A destination has a
//! name, keys that shape every message whatever the transport (character
//! set, time zone, facility overrides, retry policy), and a `kind` that
//! picks the transport. Each kind accepts only its own keys: `tls` on a
//! folder is refused like any unknown key.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use interlink_sdk::hl7::Charset;
use serde::Deserialize;

use super::ssh::{SshConfig, default_ssh_port};
use super::values::{charset, check_time_zone, default_connect_timeout_s, default_encoding};

/// A destination: its name, the keys every kind has, and its transport.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationConfig {
    pub name: String,
    /// Character set the receiver gets (MSH-18 is set to match).
    pub encoding: Charset,
    /// IANA time zone the receiver expects: MSH-7 is rendered in it, and
    /// bots are offered it.
    pub timezone: Option<String>,
    /// Overrides MSH-4 on delivery.
    pub sending_facility: Option<String>,
    /// Overrides MSH-6 on delivery.
    pub receiving_facility: Option<String>,
    pub retry: RetryConfig,
    pub kind: DestinationKind,
}

/// The transport, with the keys that only it has.
#[derive(Debug, Clone, PartialEq)]
pub enum DestinationKind {
    Folder(FolderDestination),
    Mllp(MllpDestination),
    Sftp(SftpDestination),
    Dicom(DicomDestination),
}

/// The keys every kind has, read before the kind's own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    kind: String,
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    encoding: Charset,
    timezone: Option<String>,
    sending_facility: Option<String>,
    receiving_facility: Option<String>,
    #[serde(default)]
    retry: RetryConfig,
}

const COMMON_KEYS: [&str; 7] = [
    "name",
    "kind",
    "encoding",
    "timezone",
    "sending_facility",
    "receiving_facility",
    "retry",
];

/// `kind = "folder"`: each message becomes a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderDestination {
    pub dir: PathBuf,
    /// File name extension.
    #[serde(default = "default_extension")]
    pub extension: String,
}

/// `kind = "mllp"`: each message is sent over MLLP and must be ACKed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpDestination {
    pub host: String,
    pub port: u16,
    /// How long to wait for the ACK.
    #[serde(default = "default_ack_timeout_s")]
    pub ack_timeout_s: u64,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    #[serde(default)]
    pub on_ae: OnAe,
    pub tls: Option<ClientTls>,
    /// Parallel connections. Needs `ordering_key` when above 1.
    #[serde(default = "one")]
    pub connections: usize,
    /// HL7 path (e.g. `PID-3.1`) whose value keeps its messages in order
    /// across parallel connections.
    pub ordering_key: Option<String>,
}

/// `kind = "sftp"`: each message becomes a file on an SSH server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpDestination {
    pub host: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub ssh: SshConfig,
    /// Remote directory (kept as written).
    pub dir: String,
    /// File name extension.
    #[serde(default = "default_extension")]
    pub extension: String,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
}

/// `kind = "dicom"`: each message (a DICOM Part-10 file, sent by a bot as
/// bytes) is sent with C-STORE and must be answered with a success or
/// warning status.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomDestination {
    pub host: String,
    pub port: u16,
    /// The receiver's AE title.
    pub called_ae: String,
    /// Ours.
    #[serde(default = "default_calling_ae")]
    pub calling_ae: String,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// How long to wait for the association and the C-STORE response.
    #[serde(default = "default_ack_timeout_s")]
    pub ack_timeout_s: u64,
}

/// What an AE answer does to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnAe {
    #[default]
    Retry,
    DeadLetter,
}

/// Retry policy for a destination.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_s")]
    pub max_backoff_s: u64,
    /// A message still undelivered this long after it was queued goes to
    /// the dead-letter list.
    pub max_age_s: Option<u64>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_s: default_max_backoff_s(),
            max_age_s: None,
        }
    }
}

/// TLS towards an MLLP destination: the CA its certificate must chain to
/// (the system roots when absent) and an optional client certificate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name to verify the server certificate against (default: `host`).
    pub server_name: Option<String>,
}

/// Reads the `[[destination]]` array, naming the entry in every error
/// (`destination[2] ("ehr"): kind "folder": unknown field `tls`…`).
pub(super) fn list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<DestinationConfig>, D::Error> {
    let tables = Vec::<toml::Table>::deserialize(d)?;
    tables
        .into_iter()
        .enumerate()
        .map(|(i, t)| DestinationConfig::from_table(t).with_context(|| format!("destination[{i}]")))
        .collect::<Result<_>>()
        .map_err(|e| serde::de::Error::custom(format!("{e:#}")))
}

impl DestinationConfig {
    fn from_table(mut table: toml::Table) -> Result<Self> {
        let common: toml::Table = COMMON_KEYS
            .iter()
            .filter_map(|k| table.remove_entry(*k))
            .collect();
        let common: Common = common.try_into()?;
        let own =
            |e: toml::de::Error| anyhow::anyhow!("{:?}: kind {:?}: {e}", common.name, common.kind);
        let kind = match common.kind.as_str() {
            "folder" => DestinationKind::Folder(table.try_into().map_err(own)?),
            "mllp" => DestinationKind::Mllp(table.try_into().map_err(own)?),
            "sftp" => DestinationKind::Sftp(table.try_into().map_err(own)?),
            "dicom" => DestinationKind::Dicom(table.try_into().map_err(own)?),
            other => bail!(
                "{:?}: kind = {other:?}: expected \"folder\", \"mllp\", \"sftp\" or \"dicom\"",
                common.name
            ),
        };
        Ok(DestinationConfig {
            name: common.name,
            encoding: common.encoding,
            timezone: common.timezone,
            sending_facility: common.sending_facility,
            receiving_facility: common.receiving_facility,
            retry: common.retry,
            kind,
        })
    }

    /// The kind's name, as written in the config and offered to bots.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            DestinationKind::Folder(_) => "folder",
            DestinationKind::Mllp(_) => "mllp",
            DestinationKind::Sftp(_) => "sftp",
            DestinationKind::Dicom(_) => "dicom",
        }
    }

    /// Parallel connections (lanes): only MLLP destinations have several.
    pub fn connections(&self) -> usize {
        match &self.kind {
            DestinationKind::Mllp(m) => m.connections,
            _ => 1,
        }
    }

    /// The HL7 path that spreads messages over several connections.
    pub fn ordering_key(&self) -> Option<&str> {
        match &self.kind {
            DestinationKind::Mllp(m) if m.connections > 1 => m.ordering_key.as_deref(),
            _ => None,
        }
    }

    pub(super) fn check(&self, key: &str) -> Result<()> {
        if let Some(tz) = &self.timezone {
            check_time_zone(tz, &format!("{key}.timezone"))?;
        }
        match &self.kind {
            DestinationKind::Folder(_) => Ok(()),
            DestinationKind::Mllp(m) => m.check(key),
            DestinationKind::Sftp(s) => s.ssh.check(&format!("{key}.ssh")),
            DestinationKind::Dicom(d) => d.check(key),
        }
    }

    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        match &mut self.kind {
            DestinationKind::Folder(f) => join(&mut f.dir),
            DestinationKind::Mllp(m) => {
                if let Some(t) = &mut m.tls {
                    for p in [&mut t.ca, &mut t.cert, &mut t.key].into_iter().flatten() {
                        join(p);
                    }
                }
            }
            // The remote `dir` stays as written.
            DestinationKind::Sftp(s) => s.ssh.resolve(join),
            DestinationKind::Dicom(_) => {}
        }
    }
}

impl MllpDestination {
    fn check(&self, key: &str) -> Result<()> {
        if self.ack_timeout_s == 0 || self.connect_timeout_s == 0 {
            bail!("{key}: ack_timeout_s and connect_timeout_s must be at least 1");
        }
        if !(1..=64).contains(&self.connections) {
            bail!("{key}.connections = {}: must be 1 to 64", self.connections);
        }
        if self.connections > 1 && self.ordering_key.is_none() {
            bail!(
                "{key}.connections = {}: set ordering_key (e.g. \"PID-3.1\") so related messages stay in order",
                self.connections
            );
        }
        if let Some(k) = &self.ordering_key
            && k.parse::<interlink_sdk::hl7::Path>().is_err()
        {
            bail!("{key}.ordering_key = {k:?}: not an HL7 path like \"PID-3.1\"");
        }
        Ok(())
    }
}

impl DicomDestination {
    fn check(&self, key: &str) -> Result<()> {
        if self.ack_timeout_s == 0 || self.connect_timeout_s == 0 {
            bail!("{key}: ack_timeout_s and connect_timeout_s must be at least 1");
        }
        super::dicom::check_ae_title(&self.called_ae, &format!("{key}.called_ae"))?;
        super::dicom::check_ae_title(&self.calling_ae, &format!("{key}.calling_ae"))
    }
}

fn default_calling_ae() -> String {
    "INTERLINK".into()
}
fn default_extension() -> String {
    "hl7".into()
}
fn one() -> usize {
    1
}
fn default_ack_timeout_s() -> u64 {
    30
}
fn default_initial_backoff_ms() -> u64 {
    1000
}
fn default_max_backoff_s() -> u64 {
    300
}
