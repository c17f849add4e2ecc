//! SFTP destinations: each message becomes a remote file named after its
//! outbox id, written under a dot-prefixed temporary name and renamed into
//! place, so the receiver never picks up half a file and a redelivery after
//! a crash replaces the same file instead of adding a second one. The SSH
//! session is kept between messages; ssh2 blocks, so each write runs on
//! tokio's blocking pool.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::DeliveryError;
use crate::config::SftpDestination;
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

    pub async fn deliver(&mut self, id: i64, bytes: &[u8]) -> Result<(), DeliveryError> {
        let name = format!("{id:010}.{}", self.extension);
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
        result.map_err(|e| DeliveryError::Transient(format!("{e:#}")))
    }
}

fn write(session: &SftpSession, dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<()> {
    session.create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = session
        .sftp
        .create(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // fsync@openssh.com where the server has it; not every server does.
    let _ = file.fsync();
    drop(file);
    session.replace(&tmp, &dir.join(name))
}
