//! `interlink.toml`: the host configuration, its defaults, and the checks
//! that turn a bad file into a message naming the offending key. One module
//! per section; each section checks itself and resolves its own paths.
//!
//! Relative paths are resolved against the directory of the config file (or
//! the working directory for the embedded default).

mod bots;
mod cron;
mod destination;
mod dicom;
mod folder;
mod http;
mod journal;
mod listener;
mod log;
mod plugins;
mod sftp;
mod ssh;
mod values;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

pub use bots::{BotConfig, SubscriptionConfig};
pub use cron::{CatchUp, CronConfig};
pub use destination::{
    ClientTls, DestinationConfig, DestinationKind, DicomDestination, FolderDestination, HttpAuth,
    HttpDestination, MllpDestination, OnAe, RetryConfig, SftpDestination, check_header,
    refuses_payload,
};
pub use dicom::{DicomCharset, DicomConfig};
pub use folder::FolderConfig;
pub use http::{HttpAccess, HttpConfig, Role, TokenConfig};
pub use journal::{Backend as JournalBackend, JournalConfig};
pub use listener::{AckWhen, ListenerConfig, ListenerTls};
pub use log::LogConfig;
pub use plugins::PluginsConfig;
pub use sftp::SftpConfig;
pub use ssh::SshConfig;
pub use values::After;

/// The configuration used when `interlink run` is given no file: everything
/// local, a drop folder feeding the example bots, a folder destination.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The token file of the embedded default's `write` token.
pub const DEFAULT_TOKEN_FILE: &str = "data/admin.token";

/// The whole host configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// DICOM Modality Worklist SCPs.
    #[serde(default, rename = "dicom")]
    pub dicom: Vec<DicomConfig>,
    #[serde(
        default,
        rename = "destination",
        deserialize_with = "destination::list"
    )]
    pub destinations: Vec<DestinationConfig>,
    #[serde(default)]
    pub bots: BTreeMap<String, BotConfig>,
    #[serde(default)]
    pub log: LogConfig,
    /// No `[http]` table: no HTTP server.
    pub http: Option<HttpConfig>,
}

impl Config {
    /// Reads and checks a config file, resolving paths against its folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("in {}", path.display()))
    }

    /// The file if given, else the embedded default (whose dashboard token
    /// is generated into [`DEFAULT_TOKEN_FILE`] the first time).
    pub fn load_or_default(path: Option<&Path>) -> Result<Config> {
        match path {
            Some(p) => Self::load(p),
            None => {
                http::generate_token_file(Path::new(DEFAULT_TOKEN_FILE))?;
                Self::parse(EMBEDDED_DEFAULT, Path::new(""))
            }
        }
    }

    /// Parses and checks config text; relative paths are joined to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.check()?;
        cfg.resolve(base);
        if let Some(http) = &cfg.http {
            http.check_secrets("http")?;
        }
        Ok(cfg)
    }

    /// Each section's own checks, and the ones across sections: names
    /// unique among sources and among destinations, bots naming real
    /// destinations.
    fn check(&self) -> Result<()> {
        self.plugins.check()?;
        self.journal.check()?;
        self.cron.check()?;
        if let Some(http) = &self.http {
            http.check("http")?;
        }
        let mut sources = HashSet::new();
        let mut source = |name: &str, key: &str| -> Result<()> {
            values::check_name(name, &format!("{key}.name"))?;
            if !sources.insert(name.to_string()) {
                bail!("{key}.name = {name:?}: another source has that name");
            }
            Ok(())
        };
        for (i, l) in self.listeners.iter().enumerate() {
            let key = format!("listener[{i}]");
            source(&l.name, &key)?;
            l.check(&key)?;
        }
        for (i, f) in self.folders.iter().enumerate() {
            let key = format!("folder[{i}]");
            source(&f.name, &key)?;
            f.check(&key)?;
        }
        for (i, s) in self.sftp_sources.iter().enumerate() {
            let key = format!("sftp[{i}]");
            source(&s.name, &key)?;
            s.check(&key)?;
        }
        for (i, d) in self.dicom.iter().enumerate() {
            let key = format!("dicom[{i}]");
            source(&d.name, &key)?;
            d.check(&key)?;
        }
        let mut dests = HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let key = format!("destination[{i}]");
            values::check_name(&d.name, &format!("{key}.name"))?;
            if !dests.insert(d.name.as_str()) {
                bail!(
                    "{key}.name = {:?}: another destination has that name",
                    d.name
                );
            }
            d.check(&key)?;
        }
        for (name, bot) in &self.bots {
            bot.check(&format!("bots.{name}"), &dests)?;
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.journal.resolve(join);
        join(&mut self.plugins.dir);
        if let Some(c) = &mut self.plugins.cache_dir {
            join(c);
        }
        for l in &mut self.listeners {
            l.resolve(join);
        }
        for f in &mut self.folders {
            f.resolve(join);
        }
        for s in &mut self.sftp_sources {
            s.resolve(join);
        }
        for d in &mut self.destinations {
            d.resolve(join);
        }
        if let Some(h) = &mut self.http {
            h.resolve(join);
        }
    }

    /// The key that authenticates compile cache entries: beside the journal.
    pub fn cache_key_path(&self) -> PathBuf {
        self.journal
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join("cache.key")
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", Config::parse(text, Path::new("/base")).unwrap_err())
    }

    #[test]
    fn embedded_default_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        http::generate_token_file(&dir.path().join(DEFAULT_TOKEN_FILE)).unwrap();
        let cfg = Config::parse(EMBEDDED_DEFAULT, dir.path()).unwrap();
        assert!(cfg.http.as_ref().is_some_and(|h| h.tokens.len() == 1));
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
        assert!(
            err("[[destination]]\nname='e'\nkind='mllp'")
                .contains("destination[0]: \"e\": kind \"mllp\": missing field `host`")
        );
        assert!(err(&format!("{mllp}connections=4")).contains("set ordering_key"));
        assert!(err(&format!("{mllp}ordering_key='PID'")).contains("destination[0].ordering_key"));
        assert!(err(&format!("{mllp}timezone='Mars/Base'")).contains("destination[0].timezone"));
        assert!(err(&format!("{mllp}on_ae='shrug'")).contains("shrug"));
        assert!(err("[[listener]]\nname='l'\nlisten='2575'").contains("listener[0].listen"));
        assert!(err("[[listener]]\nname='l'\nlisten='127.0.0.1:1'\nack='later'").contains("later"));
        assert!(
            err("[[listener]]\nname='l'\nlisten='127.0.0.1:1'\nmax_connections=0")
                .contains("listener[0].max_connections")
        );
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
    fn http_destination_checks_name_the_key() {
        let http = "[[destination]]\nname='f'\nkind='http'\nurl='http://127.0.0.1:8080/fhir'\n";
        let cfg = Config::parse(http, Path::new("/")).unwrap();
        let DestinationKind::Http(h) = &cfg.destinations[0].kind else {
            panic!()
        };
        assert_eq!(
            (h.method.as_str(), h.timeout_s, h.connections),
            ("POST", 30, 1)
        );
        for (extra, says) in [
            (
                "",
                "destination[0].url = \"ftp://x/\": must start with http://",
            ),
            (
                "tls={ca='ca.pem'}",
                "destination[0].tls: the url is http://",
            ),
            ("method='P UT'", "destination[0].method"),
            (
                "headers={Authorization='x'}",
                "destination[0].headers.Authorization: set by the host",
            ),
            (
                "headers={'A B'='x'}",
                "destination[0].headers.A B: not a header name",
            ),
            (
                "connections=2",
                "set ordering_header (e.g. \"X-Patient-Id\", for bytes) or",
            ),
            (
                "connections=2\nordering_header='a b'",
                "destination[0].ordering_header",
            ),
            (
                "auth={basic_user='u'}",
                "destination[0].auth: set bearer_env, or basic_user",
            ),
            ("auth={bearer='t'}", "unknown field `bearer`"),
            ("timeout_s=0", "destination[0]: timeout_s"),
            ("ack_timeout_s=1", "unknown field `ack_timeout_s`"),
        ] {
            let text = if extra.is_empty() {
                http.replace("http://127.0.0.1:8080/fhir", "ftp://x/")
            } else {
                format!("{http}{extra}")
            };
            let e = err(&text);
            assert!(e.contains(says), "{extra}: {e}");
        }
        let https = http.replace("http://", "https://");
        assert!(err(&https).contains("destination[0].url is https: set tls.ca"));
        let secret = err(&http.replace("http://", "http://fhir:s3cret@"));
        assert!(
            secret.contains("destination[0].url: a user or password") && !secret.contains("s3cret"),
            "{secret}"
        );
        let ok = format!(
            "{https}tls={{ca='ca.pem'}}\nconnections=4\nordering_header='X-Patient-Id'\n\
             auth={{bearer_env='FHIR_TOKEN'}}\nheaders={{Accept='application/fhir+json'}}"
        );
        let cfg = Config::parse(&ok, Path::new("/etc/il")).unwrap();
        let d = &cfg.destinations[0];
        assert_eq!(
            (d.kind_name(), d.connections(), d.ordering_header()),
            ("http", 4, Some("X-Patient-Id"))
        );
        assert!(
            matches!(&d.kind, DestinationKind::Http(h) if h.tls.as_ref().unwrap().ca.as_deref() == Some(Path::new("/etc/il/ca.pem")))
        );
    }

    #[test]
    fn destinations_accept_only_their_own_keys() {
        let folder = "[[destination]]\nname='d'\nkind='folder'\ndir='x'\n";
        let e = err(&format!("{folder}tls={{ca='ca.pem'}}"));
        assert!(
            e.contains("destination[0]: \"d\": kind \"folder\": unknown field `tls`"),
            "{e}"
        );
        assert!(err(&format!("{folder}connections=2")).contains("unknown field `connections`"));
        assert!(err(&format!("{folder}ssh={{user='u'}}")).contains("unknown field `ssh`"));
        let mllp = "[[destination]]\nname='m'\nkind='mllp'\nhost='h'\nport=1\n";
        assert!(err(&format!("{mllp}extension='x'")).contains("unknown field `extension`"));
        assert!(err(&format!("{mllp}retry={{backoff=1}}")).contains("unknown field `backoff`"));
        let cfg = Config::parse(
            &format!("{folder}receiving_facility='H'\nretry={{max_age_s=5}}\n{mllp}"),
            Path::new("/etc/il"),
        )
        .unwrap();
        let [d, m] = &cfg.destinations[..] else {
            panic!()
        };
        assert_eq!(d.receiving_facility.as_deref(), Some("H"));
        assert_eq!(d.retry.max_age_s, Some(5));
        assert!(matches!(&d.kind, DestinationKind::Folder(f) if f.dir == Path::new("/etc/il/x")));
        assert_eq!(
            (m.kind_name(), m.connections(), m.ordering_key()),
            ("mllp", 1, None)
        );
    }

    #[test]
    fn dicom_checks_name_the_key() {
        let scp =
            "[[dicom]]\nname='mwl'\nlisten='127.0.0.1:11112'\nae_title='INTERLINK'\nbot='w'\n";
        let cfg = Config::parse(scp, Path::new("/")).unwrap();
        let d = &cfg.dicom[0];
        assert_eq!(
            (
                d.path.as_str(),
                d.modality.as_str(),
                d.timezone.as_str(),
                d.max_pdu
            ),
            ("/worklist", "US", "UTC", 16_384)
        );
        assert_eq!(d.charset, DicomCharset::Utf8);
        assert!(
            err("[[dicom]]\nname='m'\nlisten='1'\nae_title='A'\nbot='w'")
                .contains("dicom[0].listen")
        );
        let bad = |extra: &str, key: &str| {
            let e = err(&scp.replace("ae_title='INTERLINK'\n", extra));
            assert!(e.contains(key), "{extra}: {e}");
        };
        bad("ae_title='THIS TITLE IS TOO LONG'\n", "dicom[0].ae_title");
        bad("ae_title='A\\\\B'\n", "dicom[0].ae_title");
        bad(
            "ae_title='I'\nallowed_callers=['']\n",
            "dicom[0].allowed_callers[0]",
        );
        bad("ae_title='I'\ntimezone='Mars/Base'\n", "dicom[0].timezone");
        bad("ae_title='I'\nmodality='us'\n", "dicom[0].modality");
        bad("ae_title='I'\nmax_pdu=100\n", "dicom[0].max_pdu");
        bad("ae_title='I'\npath='worklist'\n", "dicom[0].path");
        bad("ae_title='I'\ncharset='ISO_IR 6'\n", "ISO_IR 6");
        assert!(
            err(&format!(
                "{scp}[[listener]]\nname='mwl'\nlisten='127.0.0.1:1'"
            ))
            .contains("another source")
        );
        let store = "[[destination]]\nname='pacs'\nkind='dicom'\nhost='h'\nport=104\n";
        assert!(err(store).contains("missing field `called_ae`"));
        assert!(err(&format!("{store}called_ae='PACS'\ndir='x'")).contains("unknown field `dir`"));
        assert!(
            err(&format!("{store}called_ae='PACS'\nack_timeout_s=0")).contains("destination[0]")
        );
        let cfg = Config::parse(&format!("{store}called_ae='PACS'"), Path::new("/")).unwrap();
        match &cfg.destinations[0].kind {
            DestinationKind::Dicom(d) => assert_eq!(
                (d.called_ae.as_str(), d.calling_ae.as_str(), d.ack_timeout_s),
                ("PACS", "INTERLINK", 30)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_checks_name_the_key_and_refuse_inline_tokens() {
        let http = "[http]\nlisten='127.0.0.1:8080'\n";
        assert!(err("[http]\nlisten='8080'").contains("http.listen"));
        assert!(
            err(&format!(
                "{http}[[http.token]]\nname='a'\nrole='write'\ntoken='x'"
            ))
            .contains("http.token[0].token: secrets are not read from the config")
        );
        assert!(
            err(&format!(
                "{http}[[http.token]]\nname='a'\nrole='admin'\ntoken_env='X'"
            ))
            .contains("admin")
        );
        assert!(
            err(&format!(
                "{http}[[http.token]]\nname='a'\nrole='read'\ntoken_env='INTERLINK_TEST_UNSET_TOKEN'"
            ))
            .contains("http.token[0]")
        );
        assert!(err("[bots.b]\nhttp_role='everyone'").contains("everyone"));
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
        assert!(err(dest).contains("kind \"sftp\": missing field `ssh`"));
        let cfg = Config::parse(&format!("{dest}{key}"), Path::new("/etc/il")).unwrap();
        match &cfg.destinations[0].kind {
            DestinationKind::Sftp(s) => {
                assert_eq!(s.dir, "in");
                assert_eq!(s.ssh.known_hosts.as_deref(), Some(Path::new("/etc/il/kh")));
            }
            other => panic!("{other:?}"),
        }
    }
}
