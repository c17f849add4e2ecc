//! Drop folders (`[[folder]]`): files matching a pattern are taken once they
//! have stopped changing, journaled (an HL7 file as one event per message, any
//! other file as one file event) together with a ledger entry, and only then
//! moved, deleted or kept. The ledger (name, size, mtime, SHA-256) means a
//! file is never processed twice: not when it is kept, and not when the host
//! died between the journal commit and the move. A file that starts like HL7
//! but is not, or that is over `max_file_mb` (never read), goes to
//! `error_dir`, or stays (logged once) until it changes.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::files::{self, Prepared, TakenFile};
use crate::blocking;
use crate::config::{After, FolderConfig};
use crate::intake::Intake;
use crate::journal::Reader;
use crate::phi;

/// Watches one folder until the process ends.
pub async fn run(cfg: FolderConfig, intake: Intake) -> Result<()> {
    std::fs::create_dir_all(&cfg.dir)
        .with_context(|| format!("folder {:?}: cannot create {}", cfg.name, cfg.dir.display()))?;
    let pattern = glob::Pattern::new(&cfg.pattern)?;
    let (tx, mut wake) = tokio::sync::mpsc::channel::<()>(1);
    let _watcher = crate::fswatch::watch_dir(&cfg.dir, move |_| {
        let _ = tx.try_send(());
    })?;
    let status = crate::status::registry().folder(&cfg.name);
    let folder = Folder {
        status: status.clone(),
        reader: Arc::new(Mutex::new(intake.journal().reader()?)),
        cfg: Arc::new(cfg),
        pattern,
        intake,
    };
    let mut passed = HashSet::new();
    let cfg = &folder.cfg;
    tracing::info!(source = %cfg.name, "watching {} for {}", cfg.dir.display(), cfg.pattern);
    loop {
        let scanned = folder.scan(&mut passed).await;
        crate::telemetry::folder_scan(&cfg.name, scanned.is_ok());
        let young = match scanned {
            Ok(young) => {
                status.polled(None);
                young
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::error!(source = %cfg.name, "scan failed: {text}");
                status.polled(Some(text));
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

/// One watched folder. Its file-system and ledger work runs on tokio's
/// blocking pool ([`blocking::run`]).
struct Folder {
    cfg: Arc<FolderConfig>,
    pattern: glob::Pattern,
    intake: Intake,
    reader: Arc<Mutex<Reader>>,
    /// Its live counts, for the admin API.
    status: Arc<crate::status::PollStatus>,
}

/// What became of a file that was dealt with.
enum Taken {
    /// Deleted or moved away.
    Disposed,
    /// Still in the folder: kept, or refused and left.
    Stays,
    /// It changed while it was read: looked at again at the next scan.
    Changed,
}

impl Folder {
    /// Takes every settled file; returns whether some file was too young.
    /// `passed` holds the files dealt with that stay where they are (kept,
    /// or left because they are broken or too large), so they are not
    /// looked at (or complained about) again until they change.
    async fn scan(&self, passed: &mut HashSet<Seen>) -> Result<bool> {
        let (cfg, pattern) = (self.cfg.clone(), self.pattern.clone());
        let files = blocking::run(move || list(&cfg, &pattern)).await?;
        let mut young = false;
        let settle = Duration::from_millis(self.cfg.settle_ms);
        for (mtime, name, size) in files {
            let path = self.cfg.dir.join(&name);
            let seen = (path.clone(), size, mtime);
            if passed.contains(&seen) {
                continue;
            }
            if SystemTime::now().duration_since(mtime).unwrap_or_default() < settle {
                young = true;
                continue;
            }
            match self.take(path, name.clone(), size).await {
                Ok(Taken::Disposed | Taken::Changed) => {}
                Ok(Taken::Stays) => {
                    passed.insert(seen);
                }
                Err(e) => {
                    tracing::error!(source = %self.cfg.name, file = %phi::file(&name), "not taken, will retry: {e:#}")
                }
            }
        }
        Ok(young)
    }

    /// Journals one file (unless the ledger has it) and then disposes of it.
    /// A file over `max_file_mb` (by its size on disk) is never read.
    async fn take(&self, path: PathBuf, name: String, size: u64) -> Result<Taken> {
        let max = self.cfg.max_file_mb * 1024 * 1024;
        if size > max {
            let why = format!(
                "{size} bytes is over max_file_mb = {}",
                self.cfg.max_file_mb
            );
            return self.refuse(path, &name, &why).await;
        }
        let (cfg, reader) = (self.cfg.clone(), self.reader.clone());
        let (p, n) = (path.clone(), name.clone());
        let prepared = blocking::run(move || {
            let Some(bytes) = read_at_most(&p, max)? else {
                return Ok(None);
            };
            let mtime_ms = mtime_ms(std::fs::metadata(&p)?.modified()?);
            let file = TakenFile {
                source: &cfg.name,
                name: &n,
                bytes,
                mtime_ms,
            };
            files::prepare(&reader, file, cfg.encoding).map(Some)
        })
        .await?;
        match prepared {
            None => return Ok(Taken::Changed),
            Some(Prepared::New(ready)) => {
                files::submit(&self.intake, ready).await?;
                self.status.taken(1);
            }
            Some(Prepared::Before) => {
                tracing::info!(source = %self.cfg.name, file = %phi::file(&name), "already journaled; finishing its disposal")
            }
            Some(Prepared::NotHl7(why)) => {
                return self.refuse(path, &name, &format!("not HL7: {why}")).await;
            }
        }
        let cfg = self.cfg.clone();
        blocking::run(move || {
            match &cfg.after {
                After::Keep => return Ok(Taken::Stays),
                After::Delete => {
                    std::fs::remove_file(&path).context("journaled, but cannot delete it")?
                }
                After::Move(dir) => move_into(dir, &path, &name).context("journaled, but")?,
            }
            Ok(Taken::Disposed)
        })
        .await
    }

    /// Deals with a file that is not taken: into `error_dir`, or left
    /// until it changes. Logged once either way.
    async fn refuse(&self, path: PathBuf, name: &str, why: &str) -> Result<Taken> {
        let source = &self.cfg.name;
        let file = phi::file(name);
        match self.cfg.error_dir.clone() {
            Some(dir) => {
                tracing::error!(%source, %file, "{why}; moved to {}", dir.display());
                let name = name.to_string();
                blocking::run(move || move_into(&dir, &path, &name)).await?;
                Ok(Taken::Disposed)
            }
            None => {
                tracing::error!(%source, %file, "{why}; left until it changes");
                Ok(Taken::Stays)
            }
        }
    }
}

/// The matching files in the folder as (mtime, name, size), oldest first.
fn list(cfg: &FolderConfig, pattern: &glob::Pattern) -> Result<Vec<(SystemTime, String, u64)>> {
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
    Ok(files)
}

/// The file's bytes, or `None` if it has grown past `max` since it was
/// listed (then it is refused at the next scan, unread).
fn read_at_most(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .context("cannot read")?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .context("cannot read")?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Moves `path` into `dir`, never over a file already there.
fn move_into(dir: &Path, path: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut target = dir.join(name);
    if target.exists() {
        target = dir.join(format!("{name}.{}", crate::journal::now_ms()));
    }
    std::fs::rename(path, &target).with_context(|| format!("cannot move into {}", dir.display()))
}
