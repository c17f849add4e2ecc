//! The compile cache: bots compiled to native code, kept on disk so that a
//! restart or a redeploy does not compile them again. Loading an entry runs
//! native code outside the sandbox, so the cache must be trusted: its
//! directory must belong to the host's user and be writable by nobody else
//! (it is created 0700 when missing), and every entry is authenticated.
//!
//! An entry is one file, `<wasm sha256>-<engine compatibility hash>.cwasm`:
//! a 32-byte HMAC-SHA256 tag followed by the bytes of
//! `Component::serialize`. The tag covers the file name and those bytes and
//! is keyed with a random 32-byte key kept beside the journal (`cache.key`,
//! mode 0600, made on first start; refused if group or others can read it).
//! An entry written without the key, altered, or another bot's entry copied
//! under this name does not verify: it is ignored with a warning naming the
//! file, and the bot is compiled again (which rewrites the entry). The tag
//! is checked on the bytes in memory that are then deserialized, so the
//! file cannot change in between.

use std::fs::{DirBuilder, Metadata, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Length of the key and of each entry's tag.
const KEY_LEN: usize = 32;

/// A checked cache directory and the key that authenticates its entries.
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

impl CompileCache {
    /// Opens the cache in `dir` (created 0700 when missing) with the key in
    /// `key_file` (created when missing). Refuses a directory or key file
    /// another user owns, a directory group or others may write, and a key
    /// group or others may read.
    pub fn open(dir: &Path, key_file: &Path) -> Result<Self> {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| {
                    format!("cannot create compile cache directory {}", dir.display())
                })?;
        }
        let what = format!("compile cache directory {}", dir.display());
        let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {what}"))?;
        if !meta.is_dir() {
            bail!("{what} is not a directory");
        }
        check_owner(&meta, &what)?;
        if meta.mode() & 0o022 != 0 {
            bail!(
                "{what} is writable by group or others (mode {:03o}); it holds native code the \
                 host runs, so only its owner may write it (chmod 700)",
                meta.mode() & 0o777
            );
        }
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key: load_or_create_key(key_file)?,
        })
    }

    /// The component stored as `name`, if there is an entry and it verifies.
    pub fn get(&self, engine: &Engine, name: &str) -> Option<Component> {
        let path = self.dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read compile cache entry {}: {e}", path.display());
                return None;
            }
        };
        let verified = bytes
            .split_at_checked(KEY_LEN)
            .filter(|(tag, code)| self.mac(name, code).verify_slice(tag).is_ok());
        let Some((_, code)) = verified else {
            tracing::warn!(
                "compile cache entry {} failed authentication (not written by this host, or \
                 altered); ignoring it and compiling the bot again",
                path.display()
            );
            return None;
        };
        // SAFETY: the tag proves this host wrote these bytes, from
        // `Component::serialize` of an engine with the same compatibility
        // hash (it is in the authenticated name).
        match unsafe { Component::deserialize(engine, code) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("ignoring compile cache entry {}: {e:#}", path.display());
                None
            }
        }
    }

    /// Stores `component` as `name`, tagged, replacing any entry atomically.
    pub fn put(&self, name: &str, component: &Component) -> Result<()> {
        let code = component.serialize()?;
        let tag = self.mac(name, &code).finalize().into_bytes();
        let path = self.dir.join(name);
        // A temporary name of this write's own: two loads of one bot at
        // once (start-up racing a hot reload) never interleave their bytes.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&tag)?;
        file.write_all(&code)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The MAC over an entry's name and code, ready to finalize or verify.
    fn mac(&self, name: &str, code: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(code);
        mac
    }
}

/// Reads the key in `path`, or makes a new random one there (mode 0600).
fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    let what = format!("compile cache key {}", path.display());
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let mut key = [0u8; KEY_LEN];
            getrandom::fill(&mut key).map_err(|e| anyhow!("cannot make {what}: {e}"))?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {what}"))?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {what}")),
    }
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what}"))?;
    check_owner(&meta, &what)?;
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{what} is readable or writable by group or others (mode {:03o}); whoever reads it \
             can forge compiled bots, so make it private to its owner (chmod 600)",
            meta.mode() & 0o777
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {what}"))?;
    bytes.try_into().map_err(|_| {
        anyhow!("{what} is not {KEY_LEN} bytes long; delete it and the host makes a new one")
    })
}

/// Refuses `what` unless the user running the host owns it.
fn check_owner(meta: &Metadata, what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "{what} is owned by uid {}, not by the user running the host (uid {me})",
            meta.uid()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn makes_a_private_directory_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, key) = (tmp.path().join("cache"), tmp.path().join("cache.key"));
        let first = CompileCache::open(&dir, &key).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        // The key is kept across starts.
        let second = CompileCache::open(&dir, &key).unwrap();
        assert_eq!(first.key, second.key);
        assert_ne!(first.key, [0; KEY_LEN]);
    }

    #[test]
    fn refuses_a_shared_directory_or_a_readable_key() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, key) = (tmp.path().join("cache"), tmp.path().join("cache.key"));
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o777);
        let err = CompileCache::open(&dir, &key).err().unwrap().to_string();
        assert!(
            err.contains(&format!("compile cache directory {}", dir.display()))
                && err.contains("writable by group or others (mode 777)"),
            "{err}"
        );
        chmod(&dir, 0o700);
        CompileCache::open(&dir, &key).unwrap();
        chmod(&key, 0o644);
        let err = CompileCache::open(&dir, &key).err().unwrap().to_string();
        assert!(
            err.contains(&format!("compile cache key {}", key.display()))
                && err.contains("mode 644"),
            "{err}"
        );
    }

    #[test]
    fn tags_bind_the_code_and_the_name() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&tmp.path().join("c"), &tmp.path().join("k")).unwrap();
        let tag = cache.mac("a.cwasm", b"code").finalize().into_bytes();
        assert!(cache.mac("a.cwasm", b"code").verify_slice(&tag).is_ok());
        assert!(cache.mac("a.cwasm", b"codf").verify_slice(&tag).is_err());
        assert!(cache.mac("b.cwasm", b"code").verify_slice(&tag).is_err());
    }
}
