//! Folder destinations: each message becomes a file named after its outbox
//! id, written under a temporary name, fsync'd and renamed into place, so a
//! reader never sees half a message and a redelivery after a crash rewrites
//! the same file instead of adding a second one. The write and fsync run on
//! tokio's blocking pool.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::DeliveryError;
use crate::config::FolderDestination;

pub struct FolderSink {
    dir: Arc<PathBuf>,
    extension: String,
}

impl FolderSink {
    pub fn new(name: &str, cfg: &FolderDestination) -> Result<Self> {
        std::fs::create_dir_all(&cfg.dir).with_context(|| {
            format!("destination {name:?}: cannot create {}", cfg.dir.display())
        })?;
        Ok(FolderSink {
            dir: Arc::new(cfg.dir.clone()),
            extension: cfg.extension.clone(),
        })
    }

    pub async fn deliver(&mut self, id: i64, bytes: &[u8]) -> Result<(), DeliveryError> {
        let name = format!("{id:010}.{}", self.extension);
        let (dir, bytes) = (self.dir.clone(), bytes.to_vec());
        crate::blocking::run(move || {
            let tmp = dir.join(format!(".{name}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, dir.join(&name))
            };
            write().with_context(|| format!("cannot write {name}"))
        })
        .await
        .map_err(|e| DeliveryError::Transient(format!("{e:#}")))
    }
}
