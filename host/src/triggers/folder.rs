//! Drop folders (`[[folder]]`): files matching a pattern are taken once they
//! have stopped changing, journaled (an HL7 file as one event per message, any
//! other file as one file event) together with a ledger entry, and only then
//! moved, deleted or kept. The ledger (name, size, mtime, SHA-256) means a
//! file is never processed twice: not when it is kept, and not when the host
//! died between the journal commit and the move. A file that starts like HL7
//! but is not goes to `error_dir`, or stays (logged once) until it changes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::files::{self, Journaled};
use crate::config::{After, FolderConfig};
use crate::intake::Intake;
use crate::journal::Reader;

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
    let mut passed = HashSet::new();
    tracing::info!(source = %cfg.name, "watching {} for {}", cfg.dir.display(), cfg.pattern);
    loop {
        let young = match scan(&cfg, &pattern, &intake, &reader, &mut passed).await {
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

/// A file as seen in the folder: path, size, mtime.
type Seen = (PathBuf, u64, SystemTime);

/// Takes every settled file; returns whether some file was too young.
/// `passed` holds the files dealt with that stay where they are (kept, or
/// left because they are broken), so they are not looked at again.
async fn scan(
    cfg: &FolderConfig,
    pattern: &glob::Pattern,
    intake: &Intake,
    reader: &Mutex<Reader>,
    passed: &mut HashSet<Seen>,
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
        let seen = (path.clone(), size, mtime);
        if passed.contains(&seen) {
            continue;
        }
        if SystemTime::now().duration_since(mtime).unwrap_or_default() < settle {
            young = true;
            continue;
        }
        match take(cfg, intake, reader, &path, &name).await {
            Ok(Taken::Disposed) => {}
            Ok(Taken::Stays) => {
                passed.insert(seen);
            }
            Err(e) => {
                tracing::error!(source = %cfg.name, file = %name, "not taken, will retry: {e:#}")
            }
        }
    }
    Ok(young)
}

/// What became of a file that was dealt with.
enum Taken {
    /// Deleted or moved away.
    Disposed,
    /// Still in the folder: kept, or broken and left.
    Stays,
}

/// Journals one file (unless the ledger has it) and then disposes of it.
async fn take(
    cfg: &FolderConfig,
    intake: &Intake,
    reader: &Mutex<Reader>,
    path: &Path,
    name: &str,
) -> Result<Taken> {
    let bytes = std::fs::read(path).context("cannot read")?;
    let mtime_ms = mtime_ms(std::fs::metadata(path)?.modified()?);
    let file = files::TakenFile {
        source: &cfg.name,
        name,
        bytes,
        mtime_ms,
    };
    match files::journal(intake, reader, file, cfg.encoding).await? {
        Journaled::Now => {}
        Journaled::Before => {
            tracing::info!(source = %cfg.name, file = %name, "already journaled; finishing its disposal")
        }
        Journaled::NotHl7(why) => {
            return match &cfg.error_dir {
                Some(dir) => {
                    tracing::error!(source = %cfg.name, file = %name, "not HL7: {why}; moved to {}", dir.display());
                    move_into(dir, path, name)?;
                    Ok(Taken::Disposed)
                }
                None => {
                    tracing::error!(source = %cfg.name, file = %name, "not HL7: {why}; left until it changes");
                    Ok(Taken::Stays)
                }
            };
        }
    }
    match &cfg.after {
        After::Keep => return Ok(Taken::Stays),
        After::Delete => std::fs::remove_file(path).context("journaled, but cannot delete")?,
        After::Move(dir) => move_into(dir, path, name).context("journaled, but")?,
    }
    Ok(Taken::Disposed)
}

/// Moves `path` into `dir`, never over a file already there.
fn move_into(dir: &Path, path: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut target = dir.join(name);
    if target.exists() {
        target = dir.join(format!("{name}.{}", crate::journal::now_ms()));
    }
    std::fs::rename(path, &target).with_context(|| format!("cannot move to {}", target.display()))
}
