//! What folder and SFTP destinations share: a message becomes the file
//! `<outbox id>.<extension>` (or the name a bot gave its bytes), written
//! under a dot-prefixed temporary name,
//! synced, and renamed into place. A reader never sees half a message, and
//! a redelivery after a crash replaces the same file instead of adding a
//! second one. [`Storage`] is the little the two differ in.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::journal::{OutboxRow, Payload};

/// Where files are written: a local directory tree or an SFTP server.
pub trait Storage {
    type File: Write;
    /// Creates (or truncates) `path`.
    fn create(&self, path: &Path) -> Result<Self::File>;
    /// Makes what was written to `file` durable, as far as the storage can.
    fn sync(&self, file: &mut Self::File) -> Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists, durably.
    fn replace(&self, from: &Path, to: &Path) -> Result<()>;
}

/// The name of the file carrying outbox message `id`.
pub fn file_name(id: i64, extension: &str) -> String {
    format!("{id:010}.{extension}")
}

/// The name of the file carrying `row`: the bot's name for its bytes, else
/// [`file_name`].
pub fn name_of(row: &OutboxRow, extension: &str) -> String {
    match &row.payload {
        Payload::Bytes {
            name: Some(name), ..
        } => name.clone(),
        _ => file_name(row.id, extension),
    }
}

/// Writes `bytes` as `dir/name` through a temporary file in `dir`.
pub fn write<S: Storage>(storage: &S, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = storage
        .create(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    storage
        .sync(&mut file)
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(file);
    storage.replace(&tmp, &dir.join(name))
}

/// The local file system.
pub struct Local;

impl Storage for Local {
    type File = std::fs::File;

    fn create(&self, path: &Path) -> Result<std::fs::File> {
        Ok(std::fs::File::create(path)?)
    }

    fn sync(&self, file: &mut std::fs::File) -> Result<()> {
        Ok(file.sync_all()?)
    }

    /// The rename, then an fsync of the directory, so the new name
    /// survives a power loss once the message is marked sent.
    fn replace(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to)
            .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))?;
        let dir = to.parent().context("a file without a directory")?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_through_a_temporary_file_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let name = file_name(42, "hl7");
        assert_eq!(name, "0000000042.hl7");
        write(&Local, dir.path(), &name, b"first").unwrap();
        write(&Local, dir.path(), &name, b"second").unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [name.as_str()]);
        assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), b"second");
    }
}
