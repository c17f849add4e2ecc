//! The state a candidate reads during a shadow run: the live bot's key-value
//! data and sequences as they were at the window's start. That is the
//! journal's current state (read in the run's snapshot) with every batch
//! committed since undone ([`StateBefore`]); the candidate's own writes
//! stay in its session, in memory, and are never committed.

use std::collections::BTreeSet;

use wasmtime::Result;

use crate::journal::shadow::StateBefore;
use crate::runtime::state::{SharedReader, StateSource};

/// The live bot's state at the window's start, read through to the
/// journal snapshot.
pub struct WindowState {
    pub reader: SharedReader,
    pub before: StateBefore,
}

impl StateSource for WindowState {
    fn kv_get(&self, bot: &str, key: &str) -> Result<Option<Vec<u8>>> {
        match self.before.kv.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.reader.kv_get(bot, key),
        }
    }

    fn kv_list(&self, bot: &str, prefix: &str) -> Result<Vec<String>> {
        let mut keys: BTreeSet<String> = self.reader.kv_list(bot, prefix)?.into_iter().collect();
        for (key, value) in &self.before.kv {
            if !key.starts_with(prefix) {
                continue;
            }
            match value {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }

    fn sequence(&self, bot: &str, name: &str) -> Result<u64> {
        match self.before.sequences.get(name) {
            Some(value) => Ok(value.unwrap_or(0)),
            None => self.reader.sequence(bot, name),
        }
    }
}
