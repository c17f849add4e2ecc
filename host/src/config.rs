//! `interlink.toml`: the host configuration, its defaults, and the checks
//! that turn a bad file into a message naming the offending key.
//!
//! Relative paths are resolved against the directory of the config file (or
//! the working directory for the embedded default).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use interlink_sdk::hl7::Charset;
use serde::Deserialize;

/// The configuration used when `interlink run` is given no file: everything
/// local, a drop folder feeding the example bots, a folder destination.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The whole host configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub journal: JournalConfig,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub cron: CronConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default, rename = "folder")]
    pub folders: Vec<FolderConfig>,
    #[serde(default, rename = "sftp")]
    pub sftp_sources: Vec<SftpConfig>,
    #[serde(default, rename = "destination")]
    pub destinations: Vec<DestinationConfig>,
    #[serde(default)]
    pub bots: BTreeMap<String, BotConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    #[serde(default = "default_journal_path")]
    pub path: PathBuf,
    /// Processed events older than this are purged.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Largest the journal may grow; past it, new input is refused (NACKed)
    /// as it would be on a full disk. Unlimited when absent.
    pub max_size_mb: Option<u64>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: default_journal_path(),
            retention_days: default_retention_days(),
            max_size_mb: None,
        }
    }
}

fn default_journal_path() -> PathBuf {
    "data/interlink.db".into()
}
fn default_retention_days() -> u32 {
    7
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory watched for `.wasm` bots.
    #[serde(default = "default_plugins_dir")]
    pub dir: PathBuf,
    /// Where compiled bots are cached; next to the journal by default.
    pub cache_dir: Option<PathBuf>,
    /// Memory cap of one bot instance.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Wall-clock limit of one `handle` call.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts for an event whose bot fails with a retryable error.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, capped at 5 minutes.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: default_plugins_dir(),
            cache_dir: None,
            memory_mb: default_memory_mb(),
            timeout_ms: default_timeout_ms(),
            max_attempts: default_max_attempts(),
            retry_backoff_ms: default_retry_backoff_ms(),
        }
    }
}

fn default_plugins_dir() -> PathBuf {
    "plugins".into()
}
fn default_memory_mb() -> u32 {
    64
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_backoff_ms() -> u64 {
    1000
}

/// What to do about firings missed while the host was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Nothing: the schedule resumes at its next firing.
    #[default]
    None,
    /// One tick for the latest missed firing, however many were missed.
    Last,
}

/// `[cron]`: how bots' cron schedules are evaluated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronConfig {
    /// IANA time zone the schedules are read in.
    #[serde(default = "default_cron_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub catch_up: CatchUp,
}

impl Default for CronConfig {
    fn default() -> Self {
        CronConfig {
            timezone: default_cron_timezone(),
            catch_up: CatchUp::None,
        }
    }
}

fn default_cron_timezone() -> String {
    "UTC".into()
}

/// What happens to a file once it is safely in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Delete,
    Keep,
    Move(PathBuf),
}

impl<'de> Deserialize<'de> for After {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "delete" => Ok(After::Delete),
            "keep" => Ok(After::Keep),
            _ => match s.strip_prefix("move:") {
                Some(dir) if !dir.is_empty() => Ok(After::Move(dir.into())),
                _ => Err(serde::de::Error::custom(format!(
                    "after = {s:?}: expected \"delete\", \"keep\" or \"move:<dir>\""
                ))),
            },
        }
    }
}

/// Reads a character set by name (`utf-8`, `iso-8859-1`, `8859/15`, …).
fn charset<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Charset, D::Error> {
    let s = String::deserialize(d)?;
    Charset::from_name(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "encoding = {s:?}: not a supported character set \
             (e.g. \"utf-8\", \"iso-8859-1\", \"8859/15\", \"gb18030\")"
        ))
    })
}

fn default_encoding() -> Charset {
    Charset::Utf8
}

/// A drop folder watched for files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    pub name: String,
    pub dir: PathBuf,
    #[serde(default = "default_pattern")]
    pub pattern: String,
    #[serde(default = "default_after")]
    pub after: After,
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    pub encoding: Charset,
    /// A file is taken only once it has not changed for this long, so a
    /// copy in progress is never read half-written.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Rescan interval, on top of filesystem notifications.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Where a file that looks like HL7 but cannot be read as HL7 is moved;
    /// without it such a file stays and is tried again once it changes.
    pub error_dir: Option<PathBuf>,
}

fn default_pattern() -> String {
    "*".into()
}
fn default_after() -> After {
    After::Delete
}
fn default_settle_ms() -> u64 {
    300
}
fn default_poll_ms() -> u64 {
    1000
}

/// How to log in to an SSH server (SFTP sources and destinations). The
/// server's host key must be in `known_hosts`; secrets are read from an
/// environment variable or a file, never from the config text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    pub user: String,
    /// Private key file (OpenSSH or PEM format).
    pub private_key: Option<PathBuf>,
    /// Environment variable holding the private key's passphrase.
    pub passphrase_env: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Refused with a message: see `password_env` and `password_file`.
    #[serde(default)]
    password: Option<toml::Value>,
    /// OpenSSH known_hosts file the server's host key must be listed in.
    pub known_hosts: Option<PathBuf>,
    /// Accept whatever key the server shows. For tests only; logged loudly.
    #[serde(default)]
    pub insecure_accept_any_host_key: bool,
    /// Longest any one SSH operation (read, write, listing) may take.
    #[serde(default = "default_ssh_timeout_s")]
    pub timeout_s: u64,
}

fn default_ssh_timeout_s() -> u64 {
    30
}
fn default_ssh_port() -> u16 {
    22
}

impl SshConfig {
    fn check(&self, key: &str) -> Result<()> {
        if self.password.is_some() {
            bail!(
                "{key}.password: secrets are not read from the config; use password_env or password_file"
            );
        }
        if self.user.is_empty() {
            bail!("{key}.user must not be empty");
        }
        let ways = [
            self.private_key.is_some(),
            self.password_env.is_some(),
            self.password_file.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() != 1 {
            bail!("{key}: set exactly one of private_key, password_env, password_file");
        }
        if self.known_hosts.is_none() && !self.insecure_accept_any_host_key {
            bail!(
                "{key}.known_hosts: required, the server's host key is checked against it \
                 (`ssh-keyscan -p PORT HOST > known_hosts`, then compare the fingerprint)"
            );
        }
        if self.timeout_s == 0 {
            bail!("{key}.timeout_s must be at least 1");
        }
        Ok(())
    }

    fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
        let paths = [
            &mut self.private_key,
            &mut self.password_file,
            &mut self.known_hosts,
        ];
        for p in paths.into_iter().flatten() {
            join(p);
        }
    }
}

/// An SFTP server polled on a schedule for files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    pub name: String,
    pub host: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub ssh: SshConfig,
    /// Remote directory polled.
    pub dir: String,
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Cron schedule of the polls (sec min hour day month weekday), in
    /// `[cron] timezone`.
    #[serde(default = "default_sftp_schedule")]
    pub schedule: String,
    /// What happens to a file once journaled; `move:` takes a remote dir.
    #[serde(default = "default_after")]
    pub after: After,
    /// Remote dir for files that cannot be downloaded or read as HL7;
    /// without it they stay and are tried again at the next poll.
    pub error_dir: Option<String>,
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    pub encoding: Charset,
    /// A file is taken only once it is this old (by its remote mtime).
    #[serde(default)]
    pub min_age_s: u64,
    /// A file is taken only once two polls in a row saw the same size and
    /// mtime, so one still being uploaded is left for later.
    #[serde(default = "yes")]
    pub size_stable: bool,
    #[serde(default = "default_max_files_per_poll")]
    pub max_files_per_poll: usize,
    /// Also poll subdirectories (but not `after`'s or `error_dir`).
    #[serde(default)]
    pub recursive: bool,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    /// Larger files are not downloaded (they go to `error_dir`).
    #[serde(default = "default_max_file_mb")]
    pub max_file_mb: u64,
}

fn default_sftp_schedule() -> String {
    "*/10 * * * * *".into()
}
fn default_max_files_per_poll() -> usize {
    500
}
fn default_max_file_mb() -> u64 {
    64
}

/// When a listener acknowledges a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AckWhen {
    /// As soon as the message is durably in the journal.
    #[default]
    Commit,
    /// After the subscribed bot has run, with its ACK.
    Application,
}

/// Server certificate and key, and optionally the CA that client
/// certificates must chain to (mutual TLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// An MLLP listener (`[[listener]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub name: String,
    /// `host:port` to listen on.
    pub listen: String,
    #[serde(default)]
    pub ack: AckWhen,
    /// Character set when MSH-18 is empty.
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    pub encoding: Charset,
    #[serde(default = "default_max_message_kb")]
    pub max_message_kb: usize,
    /// A connection with no traffic for this long is closed.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// A frame that has started must be complete within this.
    #[serde(default = "default_frame_timeout_s")]
    pub frame_timeout_s: u64,
    /// Honour MSH-15/MSH-16 (enhanced acknowledgement mode).
    #[serde(default = "yes")]
    pub enhanced_mode: bool,
    /// A resent message (same sender and MSH-10) within this window gets the
    /// original ACK again and is not processed twice; 0 turns this off.
    #[serde(default = "default_duplicate_window_s")]
    pub duplicate_window_s: u64,
    /// With `ack = "application"`: how long to wait for the bot before
    /// answering AE. Default: the bot time limit plus one second.
    pub application_timeout_ms: Option<u64>,
    pub tls: Option<ListenerTls>,
}

fn default_max_message_kb() -> usize {
    1024
}
fn default_idle_timeout_s() -> u64 {
    600
}
fn default_frame_timeout_s() -> u64 {
    30
}
fn default_duplicate_window_s() -> u64 {
    600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    Folder,
    Mllp,
    Sftp,
}

impl DestinationKind {
    pub fn name(self) -> &'static str {
        match self {
            DestinationKind::Folder => "folder",
            DestinationKind::Mllp => "mllp",
            DestinationKind::Sftp => "sftp",
        }
    }
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
#[derive(Debug, Clone, Deserialize)]
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

fn default_initial_backoff_ms() -> u64 {
    1000
}
fn default_max_backoff_s() -> u64 {
    300
}

/// TLS towards an MLLP destination: the CA its certificate must chain to
/// (the system roots when absent) and an optional client certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name to verify the server certificate against (default: `host`).
    pub server_name: Option<String>,
}

/// Where bots' outbound messages go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    pub kind: DestinationKind,
    /// `folder`: the directory messages are written to; `sftp`: the
    /// remote directory.
    pub dir: Option<PathBuf>,
    /// `folder`, `sftp`: file name extension.
    #[serde(default = "default_extension")]
    pub extension: String,
    /// `mllp`, `sftp`: where the receiver listens (`sftp`: port 22 by
    /// default).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `sftp`: how to log in.
    pub ssh: Option<SshConfig>,
    /// `mllp`: how long to wait for the ACK.
    #[serde(default = "default_ack_timeout_s")]
    pub ack_timeout_s: u64,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: u64,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub on_ae: OnAe,
    pub tls: Option<ClientTls>,
    /// `mllp`: parallel connections. Needs `ordering_key` when above 1.
    #[serde(default = "one")]
    pub connections: usize,
    /// `mllp`: HL7 path (e.g. `PID-3.1`) whose value keeps its messages in
    /// order across parallel connections.
    pub ordering_key: Option<String>,
    #[serde(default = "default_encoding", deserialize_with = "charset")]
    pub encoding: Charset,
    /// IANA time zone the receiver expects, offered to bots.
    pub timezone: Option<String>,
    /// Overrides MSH-4 on delivery.
    pub sending_facility: Option<String>,
    /// Overrides MSH-6 on delivery.
    pub receiving_facility: Option<String>,
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
fn default_connect_timeout_s() -> u64 {
    10
}

/// One subscription written in the config (exactly one key set).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// MSH-9 patterns.
    pub hl7: Option<Vec<String>>,
    /// With `hl7`: only from this source.
    pub source: Option<String>,
    /// Non-HL7 files from this source.
    pub files: Option<String>,
    pub cron: Option<String>,
    pub http: Option<String>,
}

/// `[bots.NAME]`: what the host adds to or narrows in a bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// Read by the bot with `host::config`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// When set, the only destinations the bot may send to.
    pub destinations: Option<Vec<String>>,
    /// Replaces the manifest's subscriptions.
    pub subscribe: Option<Vec<SubscriptionConfig>>,
    /// Added to the manifest's (or `subscribe`'s) subscriptions.
    #[serde(default)]
    pub subscribe_also: Vec<SubscriptionConfig>,
    /// A disabled bot is loaded and checked but gets no events.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            settings: BTreeMap::new(),
            destinations: None,
            subscribe: None,
            subscribe_also: Vec::new(),
            enabled: true,
        }
    }
}

impl Config {
    /// Reads and checks a config file, resolving paths against its folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("in {}", path.display()))
    }

    /// The file if given, else the embedded default.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config> {
        match path {
            Some(p) => Self::load(p),
            None => Self::parse(EMBEDDED_DEFAULT, Path::new("")),
        }
    }

    /// Parses and checks config text; relative paths are joined to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.check()?;
        cfg.resolve(base);
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        if self.plugins.memory_mb == 0 || self.plugins.memory_mb > 4096 {
            bail!(
                "plugins.memory_mb = {}: must be 1 to 4096",
                self.plugins.memory_mb
            );
        }
        if self.plugins.timeout_ms == 0 {
            bail!("plugins.timeout_ms must be at least 1");
        }
        if self.plugins.max_attempts == 0 {
            bail!("plugins.max_attempts must be at least 1");
        }
        if !interlink_sdk::hl7::is_time_zone(&self.cron.timezone) {
            bail!(
                "cron.timezone = {:?}: not an IANA time zone",
                self.cron.timezone
            );
        }
        let mut sources = HashSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let key = format!("listener[{i}]");
            check_name(&l.name, &format!("{key}.name"))?;
            if !sources.insert(l.name.as_str()) {
                bail!("{key}.name = {:?}: another source has that name", l.name);
            }
            if !is_host_port(&l.listen) {
                bail!(
                    "{key}.listen = {:?}: expected host:port, e.g. \"127.0.0.1:2575\"",
                    l.listen
                );
            }
            if l.max_message_kb == 0 {
                bail!("{key}.max_message_kb must be at least 1");
            }
        }
        for (i, f) in self.folders.iter().enumerate() {
            let key = format!("folder[{i}]");
            check_name(&f.name, &format!("{key}.name"))?;
            if !sources.insert(f.name.as_str()) {
                bail!("{key}.name = {:?}: another source has that name", f.name);
            }
            glob::Pattern::new(&f.pattern)
                .with_context(|| format!("{key}.pattern = {:?} is not a valid glob", f.pattern))?;
            if f.poll_ms == 0 {
                bail!("{key}.poll_ms must be at least 1");
            }
        }
        for (i, s) in self.sftp_sources.iter().enumerate() {
            let key = format!("sftp[{i}]");
            check_name(&s.name, &format!("{key}.name"))?;
            if !sources.insert(s.name.as_str()) {
                bail!("{key}.name = {:?}: another source has that name", s.name);
            }
            s.ssh.check(&format!("{key}.ssh"))?;
            glob::Pattern::new(&s.pattern)
                .with_context(|| format!("{key}.pattern = {:?} is not a valid glob", s.pattern))?;
            if let Err(e) = s.schedule.parse::<cron::Schedule>() {
                bail!(
                    "{key}.schedule = {:?} is not a schedule ({e}); use sec min hour day month weekday",
                    s.schedule
                );
            }
            if s.dir.is_empty() {
                bail!("{key}.dir must not be empty");
            }
            if s.max_files_per_poll == 0 || s.connect_timeout_s == 0 || s.max_file_mb == 0 {
                bail!(
                    "{key}: max_files_per_poll, connect_timeout_s and max_file_mb must be at least 1"
                );
            }
        }
        let mut dests = HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let key = format!("destination[{i}]");
            check_name(&d.name, &format!("{key}.name"))?;
            if !dests.insert(d.name.as_str()) {
                bail!(
                    "{key}.name = {:?}: another destination has that name",
                    d.name
                );
            }
            match d.kind {
                DestinationKind::Folder if d.dir.is_none() => {
                    bail!("{key} ({:?}): kind \"folder\" needs `dir`", d.name)
                }
                DestinationKind::Mllp if d.host.is_none() || d.port.is_none() => {
                    bail!(
                        "{key} ({:?}): kind \"mllp\" needs `host` and `port`",
                        d.name
                    )
                }
                DestinationKind::Sftp if d.host.is_none() || d.dir.is_none() || d.ssh.is_none() => {
                    bail!(
                        "{key} ({:?}): kind \"sftp\" needs `host`, `dir` and `ssh`",
                        d.name
                    )
                }
                DestinationKind::Mllp if d.ack_timeout_s == 0 || d.connect_timeout_s == 0 => {
                    bail!(
                        "{key} ({:?}): ack_timeout_s and connect_timeout_s must be at least 1",
                        d.name
                    )
                }
                _ => {}
            }
            if let Some(ssh) = &d.ssh {
                ssh.check(&format!("{key}.ssh"))?;
            }
            if !(1..=64).contains(&d.connections) {
                bail!("{key}.connections = {}: must be 1 to 64", d.connections);
            }
            if d.connections > 1 && d.kind != DestinationKind::Mllp {
                bail!("{key}.connections: only mllp destinations open several connections");
            }
            if d.connections > 1 && d.ordering_key.is_none() {
                bail!(
                    "{key}.connections = {}: set ordering_key (e.g. \"PID-3.1\") so related messages stay in order",
                    d.connections
                );
            }
            if let Some(k) = &d.ordering_key
                && k.parse::<interlink_sdk::hl7::Path>().is_err()
            {
                bail!("{key}.ordering_key = {k:?}: not an HL7 path like \"PID-3.1\"");
            }
            if let Some(tz) = &d.timezone
                && !interlink_sdk::hl7::is_time_zone(tz)
            {
                bail!("{key}.timezone = {tz:?}: not an IANA time zone (e.g. \"America/Chicago\")");
            }
        }
        for (name, bot) in &self.bots {
            let key = format!("bots.{name}");
            for d in bot.destinations.iter().flatten() {
                if !dests.contains(d.as_str()) {
                    bail!("{key}.destinations: no [[destination]] is named {d:?}");
                }
            }
            let all = bot.subscribe.iter().flatten().chain(&bot.subscribe_also);
            for (j, s) in all.enumerate() {
                let set = [
                    s.hl7.is_some(),
                    s.files.is_some(),
                    s.cron.is_some(),
                    s.http.is_some(),
                ];
                if set.iter().filter(|x| **x).count() != 1 {
                    bail!(
                        "{key}: subscription {} must set exactly one of hl7, files, cron, http",
                        j + 1
                    );
                }
                if let Some(c) = &s.cron
                    && let Err(e) = c.parse::<cron::Schedule>()
                {
                    bail!(
                        "{key}: subscription {}: cron = {c:?} is not a schedule ({e}); use sec min hour day month weekday",
                        j + 1
                    );
                }
                if s.source.is_some() && s.hl7.is_none() {
                    bail!("{key}: subscription {}: `source` goes with `hl7`", j + 1);
                }
            }
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.journal.path);
        join(&mut self.plugins.dir);
        if let Some(c) = &mut self.plugins.cache_dir {
            join(c);
        }
        for l in &mut self.listeners {
            if let Some(t) = &mut l.tls {
                join(&mut t.cert);
                join(&mut t.key);
                if let Some(ca) = &mut t.client_ca {
                    join(ca);
                }
            }
        }
        for f in &mut self.folders {
            join(&mut f.dir);
            if let After::Move(d) = &mut f.after {
                join(d);
            }
            if let Some(d) = &mut f.error_dir {
                join(d);
            }
        }
        // Remote paths (`dir`, `after`, `error_dir` of SFTP) stay as written.
        for s in &mut self.sftp_sources {
            s.ssh.resolve(join);
        }
        for d in &mut self.destinations {
            if let Some(ssh) = &mut d.ssh {
                ssh.resolve(join);
            }
            if let Some(dir) = &mut d.dir
                && d.kind != DestinationKind::Sftp
            {
                join(dir);
            }
            if let Some(t) = &mut d.tls {
                for p in [&mut t.ca, &mut t.cert, &mut t.key].into_iter().flatten() {
                    join(p);
                }
            }
        }
    }

    /// Where compiled bots are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.plugins.cache_dir.clone().unwrap_or_else(|| {
            self.journal
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join("cache")
        })
    }

    /// The key that authenticates compile cache entries: beside the journal.
    pub fn cache_key_path(&self) -> PathBuf {
        self.journal
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join("cache.key")
    }

    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.name == name)
    }
}

/// `host:port` with a numeric port.
fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn check_name(name: &str, key: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("{key} = {name:?}: use 1-64 letters, digits, '-' or '_'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text, Path::new("/base")).unwrap_err())
    }

    #[test]
    fn embedded_default_is_valid() {
        let cfg = Config::load_or_default(None).unwrap();
        assert!(!cfg.folders.is_empty());
        assert!(!cfg.destinations.is_empty());
    }

    #[test]
    fn resolves_relative_paths() {
        let cfg = Config::parse(
            "[[folder]]\nname='in'\ndir='inbox'\nafter='move:done'\n",
            Path::new("/etc/il"),
        )
        .unwrap();
        assert_eq!(cfg.folders[0].dir, Path::new("/etc/il/inbox"));
        assert_eq!(cfg.folders[0].after, After::Move("/etc/il/done".into()));
        assert_eq!(cfg.journal.path, Path::new("/etc/il/data/interlink.db"));
        assert_eq!(cfg.cache_dir(), Path::new("/etc/il/data/cache"));
    }

    #[test]
    fn listener_and_mllp_destination_checks_name_the_key() {
        let mllp = "[[destination]]\nname='e'\nkind='mllp'\nhost='127.0.0.1'\nport=1\n";
        assert!(err("[[destination]]\nname='e'\nkind='mllp'").contains("needs `host` and `port`"));
        assert!(err(&format!("{mllp}connections=4")).contains("set ordering_key"));
        assert!(err(&format!("{mllp}ordering_key='PID'")).contains("destination[0].ordering_key"));
        assert!(err(&format!("{mllp}timezone='Mars/Base'")).contains("destination[0].timezone"));
        assert!(err(&format!("{mllp}on_ae='shrug'")).contains("shrug"));
        assert!(err("[[listener]]\nname='l'\nlisten='2575'").contains("listener[0].listen"));
        assert!(err("[[listener]]\nname='l'\nlisten='127.0.0.1:1'\nack='later'").contains("later"));
        let dup = "[[listener]]\nname='x'\nlisten='127.0.0.1:1'\n[[folder]]\nname='x'\ndir='d'";
        assert!(err(dup).contains("another source has that name"));
        assert!(err("[cron]\ntimezone='Nowhere/Town'").contains("cron.timezone"));
        assert!(err("[cron]\ncatch_up='all'").contains("all"));
        assert!(
            err("[bots.b]\nsubscribe_also=[{ cron='every minute' }]")
                .contains("cron = \"every minute\"")
        );
        let ok = format!("{mllp}connections=4\nordering_key='PID-3.1'\ntimezone='America/Chicago'");
        assert!(Config::parse(&ok, Path::new("/")).is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(err("[plugins]\nmemory_mb = 0").contains("plugins.memory_mb"));
        assert!(err("[plugins]\ncolour = 'red'").contains("unknown field `colour`"));
        assert!(err("[[folder]]\nname='a'\ndir='x'\nafter='burn'").contains("after = \"burn\""));
        assert!(err("[[destination]]\nname='d'\nkind='folder'").contains("destination[0]"));
        assert!(err("[[destination]]\nname='d'\nkind='pigeon'\ndir='x'").contains("pigeon"));
        assert!(err("[bots.x]\ndestinations=['nowhere']").contains("bots.x.destinations"));
        assert!(err("[bots.x]\nsubscribe=[{ cron='* * * * * *', files='a' }]").contains("bots.x"));
        assert!(
            err("[[destination]]\nname='d'\nkind='folder'\ndir='x'\nencoding='ebcdic'")
                .contains("ebcdic")
        );
    }

    #[test]
    fn sftp_checks_name_the_key_and_keep_remote_paths() {
        let src = "[[sftp]]\nname='lab'\nhost='h'\ndir='/out'\nafter='move:/out/done'\n";
        let key = "ssh={user='u', private_key='id', known_hosts='kh'}";
        let cfg = Config::parse(&format!("{src}{key}"), Path::new("/etc/il")).unwrap();
        let s = &cfg.sftp_sources[0];
        assert_eq!(s.port, 22);
        assert_eq!(s.after, After::Move("/out/done".into()));
        assert_eq!(s.ssh.private_key.as_deref(), Some(Path::new("/etc/il/id")));
        assert_eq!(s.ssh.known_hosts.as_deref(), Some(Path::new("/etc/il/kh")));
        assert!(
            err(&format!(
                "{src}ssh={{user='u', password='hunter2', known_hosts='kh'}}"
            ))
            .contains("sftp[0].ssh.password: secrets are not read from the config")
        );
        assert!(
            err(&format!("{src}ssh={{user='u', private_key='id'}}"))
                .contains("sftp[0].ssh.known_hosts: required")
        );
        let insecure = "ssh={user='u', private_key='id', insecure_accept_any_host_key=true}";
        assert!(Config::parse(&format!("{src}{insecure}"), Path::new("/")).is_ok());
        assert!(
            err(&format!(
                "{src}ssh={{user='u', private_key='id', password_env='P', known_hosts='k'}}"
            ))
            .contains("exactly one of private_key, password_env, password_file")
        );
        assert!(err(&format!("{src}{key}\nschedule='hourly'")).contains("sftp[0].schedule"));
        assert!(err(&format!("{src}{key}\npattern='[x'")).contains("sftp[0].pattern"));
        assert!(
            err(&format!("{src}{key}\n[[folder]]\nname='lab'\ndir='d'")).contains("another source")
        );
        let dest = "[[destination]]\nname='d'\nkind='sftp'\nhost='h'\ndir='in'\n";
        assert!(err(dest).contains("kind \"sftp\" needs `host`, `dir` and `ssh`"));
        let cfg = Config::parse(&format!("{dest}{key}"), Path::new("/etc/il")).unwrap();
        assert_eq!(cfg.destinations[0].dir.as_deref(), Some(Path::new("in")));
    }
}
