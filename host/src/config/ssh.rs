//! `ssh = { … }`: how to log in to an SSH server, shared by SFTP sources and
//! destinations. The server's host key must be in `known_hosts`; secrets
//! are read from an environment variable or a file, never from the config.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
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

pub(super) fn default_ssh_port() -> u16 {
    22
}

impl SshConfig {
    pub(super) fn check(&self, key: &str) -> Result<()> {
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

    pub(super) fn resolve(&mut self, join: impl Fn(&mut PathBuf)) {
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
