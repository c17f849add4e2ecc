//! `[[destination]]`: where bots' outbound messages go. A destination has a
//! name, keys that shape every message whatever the transport (character
//! set, time zone, facility overrides, retry policy), and a `kind` that
//! picks the transport. Each kind accepts only its own keys: `tls` on a
//! folder is refused like any unknown key.

use std::collections::BTreeMap;
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
    Http(HttpDestination),
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

/// `kind = "http"`: each message is one HTTP request, delivered when the
/// answer is 2xx.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDestination {
    /// Base URL (`http://` or `https://`); a message's path goes below it.
    pub url: String,
    /// Method of messages that do not name one.
    #[serde(default = "default_method")]
    pub method: String,
    /// Headers sent with every request (a message's own come after).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub auth: Option<HttpAuth>,
    /// Required for `https://`: the CA the server's certificate chains to,
    /// and an optional client certificate.
    pub tls: Option<ClientTls>,
    /// How long one request may take, from sending it to the end of the
    /// answer.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// Parallel connections. Needs `ordering_key` or `ordering_header`
    /// when above 1.
    #[serde(default = "one")]
    pub connections: usize,
    /// HL7 path whose value keeps HL7 messages in order across parallel
    /// connections.
    pub ordering_key: Option<String>,
    /// Request header (set by the bot) whose value keeps bytes messages in
    /// order across parallel connections.
    pub ordering_header: Option<String>,
}

/// Credentials for an HTTP destination, read from the environment when
/// the destination starts; never written in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuth {
    /// `Authorization: Bearer <value of this variable>`.
    pub bearer_env: Option<String>,
    /// `Authorization: Basic` with this user and the password in
    /// `basic_password_env`.
    pub basic_user: Option<String>,
    pub basic_password_env: Option<String>,
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

impl ClientTls {
    /// Its files relative to the config's folder.
    pub(super) fn resolve(&mut self, join: &impl Fn(&mut PathBuf)) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            join(p);
        }
    }
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
            "http" => DestinationKind::Http(table.try_into().map_err(own)?),
            "dicom" => DestinationKind::Dicom(table.try_into().map_err(own)?),
            other => bail!(
                "{:?}: kind = {other:?}: expected \"folder\", \"mllp\", \"sftp\", \"http\" or \"dicom\"",
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

    /// Why this destination cannot take HL7 text (`bytes` false) or a
    /// bytes payload, if it cannot (see [`refuses_payload`]).
    pub fn refuses(&self, bytes: bool) -> Option<&'static str> {
        refuses_payload(self.kind_name(), bytes)
    }

    /// The kind's name, as written in the config and offered to bots.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            DestinationKind::Folder(_) => "folder",
            DestinationKind::Mllp(_) => "mllp",
            DestinationKind::Sftp(_) => "sftp",
            DestinationKind::Http(_) => "http",
            DestinationKind::Dicom(_) => "dicom",
        }
    }

    /// Parallel connections (lanes): only MLLP and HTTP destinations have
    /// several.
    pub fn connections(&self) -> usize {
        match &self.kind {
            DestinationKind::Mllp(m) => m.connections,
            DestinationKind::Http(h) => h.connections,
            _ => 1,
        }
    }

    /// The HL7 path that spreads HL7 messages over several connections.
    pub fn ordering_key(&self) -> Option<&str> {
        match &self.kind {
            DestinationKind::Mllp(m) if m.connections > 1 => m.ordering_key.as_deref(),
            DestinationKind::Http(h) if h.connections > 1 => h.ordering_key.as_deref(),
            _ => None,
        }
    }

    /// The request header that spreads bytes messages over several
    /// connections (HTTP).
    pub fn ordering_header(&self) -> Option<&str> {
        match &self.kind {
            DestinationKind::Http(h) if h.connections > 1 => h.ordering_header.as_deref(),
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
            DestinationKind::Http(h) => h.check(key),
            DestinationKind::Dicom(d) => d.check(key),
        }
    }

    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        match &mut self.kind {
            DestinationKind::Folder(f) => join(&mut f.dir),
            DestinationKind::Mllp(MllpDestination { tls, .. })
            | DestinationKind::Http(HttpDestination { tls, .. }) => {
                if let Some(t) = tls {
                    t.resolve(&join);
                }
            }
            // The remote `dir` stays as written.
            DestinationKind::Sftp(s) => s.ssh.resolve(join),
            DestinationKind::Dicom(_) => {}
        }
    }
}

/// `connections` is 1 to 64, and above 1 has something that keeps related
/// messages in one lane (`ordered`; `what` says what to set).
fn check_lanes(key: &str, connections: usize, ordered: bool, what: &str) -> Result<()> {
    if !(1..=64).contains(&connections) {
        bail!("{key}.connections = {connections}: must be 1 to 64");
    }
    if connections > 1 && !ordered {
        bail!("{key}.connections = {connections}: set {what} so related messages stay in order");
    }
    Ok(())
}

/// `ordering_key`, when set, is an HL7 path.
fn check_ordering_key(key: &str, ordering_key: Option<&str>) -> Result<()> {
    if let Some(k) = ordering_key
        && k.parse::<interlink_sdk::hl7::Path>().is_err()
    {
        bail!("{key}.ordering_key = {k:?}: not an HL7 path like \"PID-3.1\"");
    }
    Ok(())
}

impl MllpDestination {
    fn check(&self, key: &str) -> Result<()> {
        if self.ack_timeout_s == 0 || self.connect_timeout_s == 0 {
            bail!("{key}: ack_timeout_s and connect_timeout_s must be at least 1");
        }
        let what = "ordering_key (e.g. \"PID-3.1\")";
        check_lanes(key, self.connections, self.ordering_key.is_some(), what)?;
        check_ordering_key(key, self.ordering_key.as_deref())
    }
}

impl HttpDestination {
    fn check(&self, key: &str) -> Result<()> {
        let url: http::Uri = self
            .url
            .parse()
            .map_err(|e| anyhow::anyhow!("{key}.url = {:?}: {e}", self.url))?;
        // Not quoted: it would show the password.
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            bail!(
                "{key}.url: a user or password in the url would be sent as the Host header; \
                 credentials go in {key}.auth (from the environment)"
            );
        }
        match (url.scheme_str(), &self.tls) {
            (Some("https"), Some(_)) | (Some("http"), None) => {}
            (Some("https"), None) => {
                bail!("{key}.url is https: set tls.ca, the CA the server's certificate chains to")
            }
            (Some("http"), Some(_)) => bail!("{key}.tls: the url is http://, not https://"),
            _ => bail!(
                "{key}.url = {:?}: must start with http:// or https://",
                self.url
            ),
        }
        if url.host().is_none() || url.query().is_some() {
            bail!(
                "{key}.url = {:?}: a host and a path, without a query",
                self.url
            );
        }
        if http::Method::from_bytes(self.method.as_bytes()).is_err() {
            bail!("{key}.method = {:?}: not an HTTP method", self.method);
        }
        for (name, value) in &self.headers {
            check_header(name, value)
                .map_err(|why| anyhow::anyhow!("{key}.headers.{name}: {why}"))?;
        }
        if self.timeout_s == 0 || self.connect_timeout_s == 0 {
            bail!("{key}: timeout_s and connect_timeout_s must be at least 1");
        }
        let ordered = self.ordering_key.is_some() || self.ordering_header.is_some();
        let what = "ordering_header (e.g. \"X-Patient-Id\", for bytes) or ordering_key (e.g. \"PID-3.1\", for HL7)";
        check_lanes(key, self.connections, ordered, what)?;
        check_ordering_key(key, self.ordering_key.as_deref())?;
        if let Some(h) = &self.ordering_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            bail!("{key}.ordering_header = {h:?}: not a header name like \"X-Patient-Id\"");
        }
        if let Some(a) = &self.auth {
            match (&a.bearer_env, &a.basic_user, &a.basic_password_env) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                _ => bail!("{key}.auth: set bearer_env, or basic_user and basic_password_env"),
            }
        }
        Ok(())
    }
}

/// Why a destination of kind `kind` (as [`DestinationConfig::kind_name`]
/// names it) cannot take HL7 text (`bytes` false) or bytes, if it cannot:
/// MLLP takes HL7 text only, DICOM (C-STORE) files only, the others both.
/// Checked at the bot's reply and again at delivery, in case the
/// destination changed kind since.
pub fn refuses_payload(kind: &str, bytes: bool) -> Option<&'static str> {
    match (kind, bytes) {
        ("mllp", true) => {
            Some("takes HL7 text only; bytes go to a folder, SFTP, http or DICOM destination")
        }
        ("dicom", false) => Some("takes DICOM Part-10 files as bytes, not HL7 text"),
        _ => None,
    }
}

/// Header names the host sets itself on HTTP requests: neither the
/// configuration nor a bot may.
const RESERVED_HEADERS: [&str; 7] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "authorization",
    "idempotency-key",
    "x-request-id",
];

/// Why `name: value` cannot be a request header, if it cannot.
pub fn check_header(name: &str, value: &str) -> Result<(), &'static str> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err("not a header name");
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err("set by the host");
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err("not a header value (control characters or non-ASCII)");
    }
    Ok(())
}

fn default_method() -> String {
    "POST".into()
}
fn default_timeout_s() -> u64 {
    30
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
