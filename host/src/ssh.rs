//! SSH sessions for SFTP sources and destinations: a TCP connect with a
//! timeout, the handshake, the server's host key checked against
//! `known_hosts` (unless explicitly waived), then a key or password login.
//! Every call here blocks; callers run it on a thread of their own.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use ssh2::{CheckResult, HashType, KnownHostFileKind, Session, Sftp};

use crate::config::SshConfig;

/// Where to connect and how to log in.
#[derive(Debug, Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    ssh: SshConfig,
    connect_timeout: Duration,
}

/// A logged-in SFTP session.
pub struct SftpSession {
    pub sftp: Sftp,
    // Dropped after `sftp`: the channel needs its session.
    _session: Session,
}

impl Endpoint {
    /// The endpoint of `owner` (e.g. `sftp source "lab"`), warning at once
    /// if it is configured not to check the server's host key.
    pub fn new(
        owner: &str,
        host: String,
        port: u16,
        ssh: SshConfig,
        connect_timeout_s: u64,
    ) -> Endpoint {
        if ssh.insecure_accept_any_host_key {
            tracing::warn!(
                "{owner}: insecure_accept_any_host_key = true: the server's identity is NOT \
                 checked; anyone in the network path can read and forge these files"
            );
        }
        Endpoint {
            host,
            port,
            ssh,
            connect_timeout: Duration::from_secs(connect_timeout_s),
        }
    }

    /// `host:port`, as logged.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects, checks the host key, logs in and opens the SFTP subsystem.
    pub fn open(&self) -> Result<SftpSession> {
        let address = self.address();
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {address}"))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            anyhow!(
                "cannot connect to {address}: {}",
                last.map_or("no address".into(), |e| e.to_string())
            )
        })?;
        let mut session = Session::new().context("cannot create an SSH session")?;
        session.set_timeout(u32::try_from(self.ssh.timeout_s * 1000).unwrap_or(u32::MAX));
        session.set_tcp_stream(tcp);
        session
            .handshake()
            .with_context(|| format!("SSH handshake with {address} failed"))?;
        self.verify_host_key(&session)?;
        self.login(&session)?;
        let sftp = session
            .sftp()
            .with_context(|| format!("{address} has no SFTP subsystem"))?;
        Ok(SftpSession {
            sftp,
            _session: session,
        })
    }

    fn verify_host_key(&self, session: &Session) -> Result<()> {
        let address = self.address();
        let (key, _) = session
            .host_key()
            .ok_or_else(|| anyhow!("{address} sent no host key"))?;
        let fingerprint = session
            .host_key_hash(HashType::Sha256)
            .map(|h| base64::engine::general_purpose::STANDARD_NO_PAD.encode(h))
            .unwrap_or_default();
        let file = match &self.ssh.known_hosts {
            Some(file) if !self.ssh.insecure_accept_any_host_key => file,
            // Config load made sure this is only with the insecure flag.
            _ => {
                tracing::debug!("accepting {address}'s host key SHA256:{fingerprint} unchecked");
                return Ok(());
            }
        };
        let mut known = session.known_hosts()?;
        known
            .read_file(file, KnownHostFileKind::OpenSSH)
            .with_context(|| format!("cannot read known_hosts {}", file.display()))?;
        match known.check_port(&self.host, self.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => bail!(
                "host key of {address} (SHA256:{fingerprint}) does not match the one in {}: \
                 refusing to connect; the server's key changed or this is not the expected server",
                file.display()
            ),
            CheckResult::NotFound => bail!(
                "host key of {address} (SHA256:{fingerprint}) is not in {}: refusing to connect; \
                 add it (`ssh-keyscan -p {} {}`) after checking the fingerprint",
                file.display(),
                self.port,
                self.host
            ),
            CheckResult::Failure => bail!(
                "cannot check the host key of {address} against {}",
                file.display()
            ),
        }
    }

    fn login(&self, session: &Session) -> Result<()> {
        let ssh = &self.ssh;
        let address = self.address();
        let result = if let Some(key) = &ssh.private_key {
            let passphrase = ssh
                .passphrase_env
                .as_deref()
                .map(crate::secret::from_env)
                .transpose()?;
            session
                .userauth_pubkey_file(&ssh.user, None, key, passphrase.as_deref())
                .map_err(|e| anyhow!("key {} not accepted: {e}", key.display()))
        } else {
            let password = match (&ssh.password_env, &ssh.password_file) {
                (Some(var), _) => crate::secret::from_env(var)?,
                (None, Some(file)) => crate::secret::from_file(file).context("password_file")?,
                (None, None) => bail!("no private_key, password_env or password_file"),
            };
            session
                .userauth_password(&ssh.user, &password)
                .map_err(|e| anyhow!("password not accepted: {e}"))
        };
        result.with_context(|| format!("login to {address} as {:?} refused", ssh.user))?;
        if !session.authenticated() {
            bail!("login to {address} as {:?} refused", ssh.user);
        }
        Ok(())
    }
}

impl SftpSession {
    /// Makes `dir` and its missing parents.
    pub fn create_dir_all(&self, dir: &Path) -> Result<()> {
        if self.sftp.stat(dir).is_ok_and(|s| s.is_dir()) {
            return Ok(());
        }
        if let Some(parent) = dir.parent()
            && !parent.as_os_str().is_empty()
        {
            self.create_dir_all(parent)?;
        }
        self.sftp
            .mkdir(dir, 0o755)
            .or_else(|e| {
                // Someone else may have made it meanwhile.
                if self.sftp.stat(dir).is_ok_and(|s| s.is_dir()) {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .with_context(|| format!("cannot create remote dir {}", dir.display()))
    }

    /// Renames `from` to `to`, replacing `to` if it exists (SFTP v3
    /// servers refuse to overwrite on rename).
    pub fn replace(&self, from: &Path, to: &Path) -> Result<()> {
        if self.sftp.rename(from, to, None).is_ok() {
            return Ok(());
        }
        let _ = self.sftp.unlink(to);
        self.sftp
            .rename(from, to, None)
            .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
    }
}
