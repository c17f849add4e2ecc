//! Folder destinations: each message becomes a file in a local directory
//! ([`super::file_out`]: temporary name, fsync, rename). The write and fsync
//! run on tokio's blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::DeliveryError;
use super::file_out::{self, Local};
use crate::config::FolderDestination;
use crate::journal::OutboxRow;

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

    pub async fn deliver(&mut self, row: &OutboxRow, bytes: &[u8]) -> Result<(), DeliveryError> {
        let name = file_out::name_of(row, &self.extension);
        let (dir, bytes) = (self.dir.clone(), bytes.to_vec());
        crate::blocking::run(move || file_out::write(&Local, &dir, &name, &bytes))
            .await
            .map_err(|e| DeliveryError::Transient(format!("{e:#}").into()))
    }
}
