//! The wasmtime engine bots run on: how it is configured (pooling allocator
//! with an on-demand fallback, epoch interruption driven by a ticker thread,
//! async calls on pooled fiber stacks), the linker that offers bots `host`
//! and a locked-down asynchronous WASI, and compiling
//! a `.wasm` into a live [`LoadedBot`], with an authenticated on-disk cache
//! of compiled code ([`CompileCache`]).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{self, Contract, Prepared};
use super::bot::LoadedBot;
use super::cache::CompileCache;
use super::state::BotState;

/// How often the epoch advances; the granularity of the time limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Native stack of one call's fiber: wasm frames (wasmtime's default
/// `max_wasm_stack`, 512 KiB) plus the host functions the bot calls.
const ASYNC_STACK: usize = 2 << 20;
/// Instances the pool holds, and fiber stacks (one per call under way):
/// each bot's worker runs one instance at a time, the loader one while it
/// checks a bot, and HTTP queries at most [`super::http::MAX_QUERIES`]
/// together. Past that an instantiation fails, and a worker's run with it
/// (retried later).
pub const POOL_INSTANCES: u32 = 128;

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
    linker: Arc<Linker<BotState>>,
    limits: Limits,
    cache: Option<Arc<CompileCache>>,
    pooled: bool,
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.parallel_compilation(true);
    config.async_stack_size(ASYNC_STACK);
    // Pooled fiber stacks are reused without zeroing (wasmtime's default;
    // compiled wasm never reads a stack slot it did not write). Zeroing
    // them (`async_stack_zeroing` with a 64 KiB `async_stack_keep_resident`)
    // measured +6.6 us per warm call (bench in the dev profile).
    config
}

impl BotEngine {
    /// An engine enforcing `limits`, keeping compiled bots in `cache`.
    pub fn new(limits: Limits, cache: Option<CompileCache>) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_INSTANCES)
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
            .table_keep_resident(1 << 16)
            .total_stacks(POOL_INSTANCES);
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
        // Asynchronous WASI: a bot blocked in `poll` (a sleep) suspends its
        // fiber, so the call's timeout can abandon it (see `bot.rs`).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::add_to_linker(&mut linker)?;
        Ok(BotEngine {
            engine,
            linker: linker.into(),
            limits,
            cache: cache.map(Arc::new),
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
    /// it for its manifest.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedBot> {
        let hash = hex::encode(Sha256::digest(bytes));
        let component = self.compile(bytes, &hash)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            anyhow::anyhow!(
                "is not an Interlink bot: it needs {e:#} (the host offers the `host` interface \
                 of {} and older, and WASI without files, sockets or environment)",
                Contract::CURRENT.package()
            )
        })?;
        LoadedBot::new(self.clone(), Prepared::new(pre)?)
    }

    fn compile(&self, bytes: &[u8], hash: &str) -> Result<Component> {
        let entry = self.cache_entry_name(hash);
        if let Some(cache) = &self.cache
            && let Some(component) = cache.get(&self.engine, &entry)
        {
            return Ok(component);
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            anyhow::anyhow!("is not a valid WebAssembly component: {}", e.root_cause())
        })?;
        if let Some(cache) = &self.cache
            && let Err(e) = cache.put(&entry, &component)
        {
            tracing::warn!("cannot write compile cache entry {entry}: {e:#}");
        }
        Ok(component)
    }

    /// The cache entry of the `.wasm` with SHA-256 `hash`, for this engine.
    fn cache_entry_name(&self, hash: &str) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{hash}-{:016x}.cwasm", h.finish())
    }
}
