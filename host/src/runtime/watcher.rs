//! Hot reload: watches the plugins directory and keeps the live bots in step
//! with its `.wasm` files. A new file is loaded, a replaced one upgrades its
//! bot (events in flight finish on the old code), a deleted one unloads it.
//! Changes are debounced, and a file that fails to load is looked at again
//! after a pause: if it changed meanwhile it was a copy in progress and is
//! retried, not reported; a file that stays broken is reported once, by name
//! and reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tokio::time::Instant;

use super::Runtime;

/// Quiet time after the last change to a file before it is loaded.
const DEBOUNCE: Duration = Duration::from_millis(40);
/// Wait before retrying a file that failed to load: if it is unchanged
/// after this long it is reported, otherwise it was still being written.
const SETTLE: Duration = Duration::from_millis(500);

fn is_wasm(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wasm")
}

/// The `.wasm` files in `dir`, by name.
pub fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list plugins directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_wasm(p) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Loads what is in the plugins directory now, then follows its changes in
/// a background task until the process ends.
pub async fn start(rt: Arc<Runtime>) -> Result<()> {
    let config = rt.config();
    let dir = &config.plugins.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create plugins directory {}", dir.display()))?;
    // Absolute, so that paths from the listing and from notifications agree.
    let dir = dir.canonicalize()?;
    let (tx, changes) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let watcher = crate::fswatch::watch_dir(&dir, move |p| {
        if is_wasm(&p) {
            let _ = tx.send(p);
        }
    })?;

    let mut loader = Loader {
        rt,
        suspect: HashMap::new(),
        reported: HashMap::new(),
    };
    let mut due = HashMap::new();
    for file in wasm_files(&dir)? {
        if loader.sync(&file).await == Sync::Changing {
            due.insert(file, Instant::now() + SETTLE);
        }
    }
    crate::status::registry().set_bots_loaded();
    tracing::info!("watching {} for bots", dir.display());
    tokio::spawn(async move {
        follow(loader, changes, due).await;
        drop(watcher);
    });
    Ok(())
}

/// Loads files once they have been quiet for a while; `due` maps each file
/// to when to look at it next.
async fn follow(
    mut loader: Loader,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    mut due: HashMap<PathBuf, Instant>,
) {
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            changed = changes.recv() => match changed {
                Some(p) => { due.insert(p, Instant::now() + DEBOUNCE); }
                None => return,
            },
            _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => {
                let now = Instant::now();
                let ready: Vec<PathBuf> =
                    due.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
                for p in ready {
                    due.remove(&p);
                    if loader.sync(&p).await == Sync::Changing {
                        due.insert(p, Instant::now() + SETTLE);
                    }
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Sync {
    Done,
    /// The file changed while it was being loaded: look again later.
    Changing,
}

struct Loader {
    rt: Arc<Runtime>,
    /// Files that failed once, with their (size, mtime) then; reported if
    /// they fail again unchanged.
    suspect: HashMap<PathBuf, (u64, SystemTime)>,
    /// Files whose failure was reported, with the (size, mtime) reported.
    reported: HashMap<PathBuf, (u64, SystemTime)>,
}

fn stamp(p: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.len(), m.modified().ok()?))
}

impl Loader {
    /// Brings the live bots in line with `file` as it is now.
    async fn sync(&mut self, file: &Path) -> Sync {
        let Some(before) = stamp(file) else {
            self.suspect.remove(file);
            self.reported.remove(file);
            self.rt.uninstall(file);
            return Sync::Done;
        };
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (rt, path) = (self.rt.clone(), file.to_path_buf());
        let result = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).with_context(|| "cannot read the file".to_string())?;
            rt.install(&path, rt.engine().load(&bytes)?)
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("loader crashed: {e}")));
        let Err(e) = result else {
            self.suspect.remove(file);
            self.reported.remove(file);
            return Sync::Done;
        };
        if stamp(file) != Some(before)
            || self.suspect.insert(file.to_path_buf(), before) != Some(before)
        {
            return Sync::Changing;
        }
        if self.reported.get(file) != Some(&before) {
            self.reported.insert(file.to_path_buf(), before);
            let keeping = self
                .rt
                .bot_for_file(file)
                .map(|b| format!("; bot {b:?} keeps running its previous version"))
                .unwrap_or_default();
            tracing::error!(file = %name, "bot rejected: {e:#}{keeping}");
        }
        Sync::Done
    }
}
