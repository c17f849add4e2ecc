//! Filesystem notifications shared by the plugin watcher and the drop
//! folders: a directory watcher that reports only events that can change
//! what a file holds (not the reads the host itself makes).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Whether an event can mean new content, a new file or a removed one.
fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// Watches `dir` (not recursively) and calls `on_change` with each path
/// whose content may have changed. Keep the returned watcher alive.
pub fn watch_dir(
    dir: &Path,
    on_change: impl Fn(PathBuf) + Send + 'static,
) -> Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && is_change(&event.kind)
        {
            event.paths.into_iter().for_each(&on_change);
        }
    })?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    Ok(watcher)
}
