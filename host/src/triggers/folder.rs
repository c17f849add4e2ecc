//! Drop folders (`[[folder]]`): files matching a pattern are taken once they
//! have stopped changing, journaled (an HL7 file as one event per message, any
//! other file as one file event) together with a ledger entry, and only then
//! moved, deleted or kept. The ledger (name, size, mtime, SHA-256) means a
//! file is never processed twice: not when it is kept, and not when the host
//! died between the journal commit and the move.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::{After, FolderConfig};
use crate::intake::{Hl7Item, Inbound, Intake, Provenance};
use crate::journal::{LedgerEntry, Reader};

/// Watches one folder until the process ends.
pub async fn run(cfg: FolderConfig, intake: Intake) -> Result<()> {
    std::fs::create_dir_all(&cfg.dir)
        .with_context(|| format!("folder {:?}: cannot create {}", cfg.name, cfg.dir.display()))?;
    let pattern = glob::Pattern::new(&cfg.pattern)?;
    let (tx, mut wake) = tokio::sync::mpsc::channel::<()>(1);
    let _watcher = crate::fswatch::watch_dir(&cfg.dir, move |_| {
        let _ = tx.try_send(());
    })?;
    let reader = Mutex::new(intake.journal().reader()?);
    let mut seen_kept = HashSet::new();
    tracing::info!(source = %cfg.name, "watching {} for {}", cfg.dir.display(), cfg.pattern);
    loop {
        let young = match scan(&cfg, &pattern, &intake, &reader, &mut seen_kept).await {
            Ok(young) => young,
            Err(e) => {
                tracing::error!(source = %cfg.name, "scan failed: {e:#}");
                false
            }
        };
        let wait = if young {
            cfg.settle_ms.min(cfg.poll_ms)
        } else {
            cfg.poll_ms
        };
        tokio::select! {
            _ = wake.recv() => {
                // Let a burst of changes arrive before scanning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while wake.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}

fn mtime_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Takes every settled file; returns whether some file was too young.
async fn scan(
    cfg: &FolderConfig,
    pattern: &glob::Pattern,
    intake: &Intake,
    reader: &Mutex<Reader>,
    seen_kept: &mut HashSet<(PathBuf, u64, SystemTime)>,
) -> Result<bool> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&cfg.dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata()?;
        if !meta.is_file() || name.starts_with('.') || !pattern.matches(&name) {
            continue;
        }
        files.push((meta.modified()?, name, meta.len()));
    }
    files.sort();
    let mut young = false;
    let settle = Duration::from_millis(cfg.settle_ms);
    for (mtime, name, size) in files {
        let path = cfg.dir.join(&name);
        if cfg.after == After::Keep && seen_kept.contains(&(path.clone(), size, mtime)) {
            continue;
        }
        if SystemTime::now().duration_since(mtime).unwrap_or_default() < settle {
            young = true;
            continue;
        }
        match take(cfg, intake, reader, &path, &name).await {
            Ok(()) => {
                if cfg.after == After::Keep {
                    seen_kept.insert((path, size, mtime));
                }
            }
            Err(e) => {
                tracing::error!(source = %cfg.name, file = %name, "not taken, will retry: {e:#}")
            }
        }
    }
    Ok(young)
}

/// Journals one file (unless the ledger has it) and then disposes of it.
async fn take(
    cfg: &FolderConfig,
    intake: &Intake,
    reader: &Mutex<Reader>,
    path: &Path,
    name: &str,
) -> Result<()> {
    let bytes = std::fs::read(path).context("cannot read")?;
    let meta = std::fs::metadata(path)?;
    let entry = LedgerEntry {
        source: cfg.name.clone(),
        name: name.to_string(),
        size: bytes.len() as i64,
        mtime_ms: mtime_ms(meta.modified()?),
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    let taken = reader.lock().expect("reader lock").file_taken(&entry)?;
    if taken {
        tracing::info!(source = %cfg.name, file = %name, "already journaled; finishing its disposal");
    } else {
        let items = split(cfg, name, bytes);
        let count = items.len();
        let ids = intake
            .submit(&cfg.name, items, Some(Provenance::File(entry)))
            .await?;
        tracing::info!(source = %cfg.name, file = %name, events = count, first_event = ids.first().copied().unwrap_or(0), "journaled");
    }
    dispose(&cfg.after, path, name)
}

/// An HL7 file becomes one item per message; anything else one file item.
fn split(cfg: &FolderConfig, name: &str, bytes: Vec<u8>) -> Vec<Inbound> {
    let decoded = interlink_sdk::hl7::charset::charset_of(&bytes, cfg.encoding)
        .and_then(|charset| charset.decode(&bytes).map(|t| t.into_owned()));
    let text = match decoded {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(source = %cfg.name, file = %name, "not HL7 text: {e}; taken as a file");
            return vec![Inbound::File {
                name: name.to_string(),
                contents: bytes,
            }];
        }
    };
    let messages = interlink_sdk::hl7::split_messages(&text);
    if messages.is_empty() {
        return vec![Inbound::File {
            name: name.to_string(),
            contents: bytes,
        }];
    }
    messages
        .into_iter()
        .map(|m| Inbound::Hl7(Hl7Item::new(m.to_string(), None, Some(name.to_string()))))
        .collect()
}

fn dispose(after: &After, path: &Path, name: &str) -> Result<()> {
    match after {
        After::Keep => Ok(()),
        After::Delete => std::fs::remove_file(path).context("journaled, but cannot delete"),
        After::Move(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("journaled, but cannot create {}", dir.display()))?;
            let mut target = dir.join(name);
            if target.exists() {
                target = dir.join(format!("{name}.{}", crate::journal::now_ms()));
            }
            std::fs::rename(path, &target)
                .with_context(|| format!("journaled, but cannot move to {}", target.display()))
        }
    }
}
