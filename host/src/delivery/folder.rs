//! Folder destinations: each message becomes a file named after its outbox
//! id, written under a temporary name, fsync'd and renamed into place, so a
//! reader never sees half a message and a redelivery after a crash rewrites
//! the same file instead of adding a second one.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::DeliveryError;
use crate::config::FolderDestination;

pub struct FolderSink {
    dir: PathBuf,
    extension: String,
}

impl FolderSink {
    pub fn new(name: &str, cfg: &FolderDestination) -> Result<Self> {
        std::fs::create_dir_all(&cfg.dir).with_context(|| {
            format!("destination {name:?}: cannot create {}", cfg.dir.display())
        })?;
        Ok(FolderSink {
            dir: cfg.dir.clone(),
            extension: cfg.extension.clone(),
        })
    }

    pub fn deliver(&mut self, id: i64, bytes: &[u8]) -> Result<(), DeliveryError> {
        let name = format!("{id:010}.{}", self.extension);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(&name))
        };
        write().map_err(|e| DeliveryError::Transient(format!("cannot write {name}: {e}")))
    }
}
