//! The wasmtime engine bots run on: how it is configured (pooling allocator
//! with an on-demand fallback, epoch interruption driven by a ticker thread),
//! the linker that offers bots `host` and a locked-down WASI, and compiling
//! a `.wasm` into a live [`LoadedBot`], with an on-disk cache of compiled
//! code.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{Bot, BotPre};
use super::bot::LoadedBot;
use super::state::BotState;

/// How often the epoch advances; the granularity of the time limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Per-instance limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
}

impl Limits {
    pub fn new(memory_mb: u32, timeout_ms: u64) -> Self {
        Limits {
            memory_bytes: memory_mb as usize * 1024 * 1024,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// The epoch deadline, in ticks, for one call.
    pub fn deadline_ticks(&self) -> u64 {
        (self.timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
    }
}

/// Compiles and links bots. One per process; cheap to clone.
#[derive(Clone)]
pub struct BotEngine {
    engine: Engine,
    linker: std::sync::Arc<Linker<BotState>>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    pooled: bool,
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.parallel_compilation(true);
    config
}

impl BotEngine {
    /// An engine enforcing `limits`, caching compiled bots in `cache_dir`.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(128)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(512)
            .max_core_instances_per_component(32)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_memory_size(limits.memory_bytes)
            // Reset the first 4 MiB of a reused slot (a Rust bot's 1 MiB
            // stack, data and early heap) with memset instead of madvise:
            // no TLB shootdowns, no page faults on the next instance. This
            // takes a warm invocation from ~30 us to ~18 us.
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(1 << 16);
        let mut pooled_config = base_config();
        pooled_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let (engine, pooled) = match Engine::new(&pooled_config) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand allocation");
                (Engine::new(&base_config())?, false)
            }
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        let mut linker = Linker::<BotState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Bot::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        Ok(BotEngine {
            engine,
            linker: linker.into(),
            limits,
            cache_dir,
            pooled,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// Compiles (or loads from the cache), links and checks a bot, and asks
    /// it for its manifest. `origin` names the file in errors and logs.
    pub fn load(&self, bytes: &[u8], origin: &str) -> Result<LoadedBot> {
        let hash = hex::encode(Sha256::digest(bytes));
        let component = self.compile(bytes, &hash)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            anyhow::anyhow!("is not an Interlink bot: it needs {e:#} (the host offers interlink:bot/host@0.1.0 and WASI without files, sockets or environment)")
        })?;
        let pre = BotPre::new(pre).map_err(|e| {
            anyhow::anyhow!("does not export the interlink:bot@0.1.0 `bot` world: {e:#}")
        })?;
        LoadedBot::new(self.clone(), pre, hash, origin)
    }

    fn compile(&self, bytes: &[u8], hash: &str) -> Result<Component> {
        let cached = self.cache_path(hash);
        if let Some(path) = cached.as_ref().filter(|p| p.exists()) {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the name), in
            // a cache directory only this host writes.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!("ignoring compile cache entry {}: {e:#}", path.display()),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            anyhow::anyhow!("is not a valid WebAssembly component: {}", e.root_cause())
        })?;
        if let Some(path) = cached
            && let Err(e) = write_cache(&path, &component)
        {
            tracing::warn!("cannot write compile cache {}: {e:#}", path.display());
        }
        Ok(component)
    }

    fn cache_path(&self, hash: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{hash}-{:016x}.cwasm", h.finish())))
    }
}

fn write_cache(path: &std::path::Path, component: &Component) -> Result<()> {
    let dir = path.parent().context("cache path has no directory")?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
