//! SFTP destinations: each message becomes a file on an SSH server
//! ([`super::file_out`]: temporary name, fsync where the server offers it,
//! rename). The SSH session is kept between messages; ssh2 blocks, so each
//! write runs on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use super::DeliveryError;
use super::file_out;
use crate::config::SftpDestination;
use crate::journal::OutboxRow;
use crate::ssh::{Endpoint, SftpSession};

pub struct SftpSink {
    endpoint: Arc<Endpoint>,
    dir: Arc<PathBuf>,
    extension: String,
    session: Option<SftpSession>,
}

impl SftpSink {
    pub fn new(name: &str, cfg: &SftpDestination) -> Result<Self> {
        Ok(SftpSink {
            endpoint: Arc::new(Endpoint::new(
                &format!("destination {name:?}"),
                cfg.host.clone(),
                cfg.port,
                cfg.ssh.clone(),
                cfg.connect_timeout_s,
            )),
            dir: Arc::new(PathBuf::from(&cfg.dir)),
            extension: cfg.extension.clone(),
            session: None,
        })
    }

    pub async fn deliver(&mut self, row: &OutboxRow, bytes: &[u8]) -> Result<(), DeliveryError> {
        let name = file_out::name_of(row, &self.extension);
        let kept = self.session.take();
        let (endpoint, dir, bytes) = (self.endpoint.clone(), self.dir.clone(), bytes.to_vec());
        let (session, result) = tokio::task::spawn_blocking(move || {
            // A kept session may have been closed by the server meanwhile:
            // one more try on a fresh one.
            if let Some(s) = kept
                && write(&s, &dir, &name, &bytes).is_ok()
            {
                return (Some(s), Ok(()));
            }
            let fresh = match endpoint.open() {
                Ok(s) => s,
                Err(e) => return (None, Err(e)),
            };
            match write(&fresh, &dir, &name, &bytes) {
                Ok(()) => (Some(fresh), Ok(())),
                Err(e) => (None, Err(e)),
            }
        })
        .await
        .unwrap_or_else(|e| (None, Err(anyhow::anyhow!("delivery task failed: {e}"))));
        self.session = session;
        result.map_err(|e| DeliveryError::Transient(format!("{e:#}").into()))
    }
}

fn write(session: &SftpSession, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    session.create_dir_all(dir)?;
    file_out::write(session, dir, name, bytes)
}

impl file_out::Storage for SftpSession {
    type File = ssh2::File;

    fn create(&self, path: &Path) -> Result<ssh2::File> {
        Ok(self.sftp.create(path)?)
    }

    /// fsync@openssh.com where the server has it; not every server does.
    fn sync(&self, file: &mut ssh2::File) -> Result<()> {
        let _ = file.fsync();
        Ok(())
    }

    fn replace(&self, from: &Path, to: &Path) -> Result<()> {
        SftpSession::replace(self, from, to)
    }
}
