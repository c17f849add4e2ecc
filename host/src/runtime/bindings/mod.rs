//! Host-side bindings generated from `wit/`, the single source of truth for
//! the bot contract, and the only module that touches generated code.
//! Exports are called asynchronously (the bot runs on a fiber, so a bot
//! waiting in WASI can be abandoned at its time limit); the `host` imports
//! stay synchronous.
//!
//! The host links every released contract version: the current one
//! (`wit/bot.wit`), whose types the rest of the host uses, and the older
//! ones (`wit/archive/`), adapted to it in their own modules ([`v0_1`]).
//! [`Prepared`] and [`Exports`] are a bot of any version.

mod v0_1;

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::state::BotState;

mod current {
    wasmtime::component::bindgen!({
        world: "bot",
        path: "../wit",
        imports: { default: trappable },
        exports: { default: async },
    });
}

pub use current::interlink::bot::host::Level;
pub use current::interlink::bot::types::{
    BotError, DestinationInfo, Event, File, Hl7Filter, Hl7Message, HttpRequest, HttpResponse,
    Manifest, Outbound, Payload, Reply, Subscription, Tick,
};
pub use current::interlink::bot::{host, types};

/// The contract version a bot was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    /// The newest version, which new bots are built against.
    pub const CURRENT: Contract = Contract::V0_2;

    /// The WIT package, e.g. `interlink:bot@0.2.0`.
    pub fn package(self) -> &'static str {
        match self {
            Contract::V0_1 => "interlink:bot@0.1.0",
            Contract::V0_2 => "interlink:bot@0.2.0",
        }
    }
}

impl From<Level> for tracing::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        }
    }
}

/// Offers bots the `host` interface of every contract version.
pub fn add_to_linker(linker: &mut Linker<BotState>) -> wasmtime::Result<()> {
    current::Bot::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_1::Bot::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// A linked bot of some contract version, ready to instantiate.
#[derive(Clone)]
pub enum Prepared {
    V0_1(v0_1::BotPre<BotState>),
    V0_2(current::BotPre<BotState>),
}

impl Prepared {
    /// Finds the contract version whose exports the bot has.
    pub fn new(pre: InstancePre<BotState>) -> anyhow::Result<Self> {
        match current::BotPre::new(pre.clone()) {
            Ok(pre) => Ok(Prepared::V0_2(pre)),
            Err(current) => match v0_1::BotPre::new(pre) {
                Ok(pre) => Ok(Prepared::V0_1(pre)),
                Err(_) => anyhow::bail!(
                    "does not export the `bot` world of {} (or of an older version this host \
                     links): {current:#}",
                    Contract::CURRENT.package()
                ),
            },
        }
    }

    pub fn contract(&self) -> Contract {
        match self {
            Prepared::V0_1(_) => Contract::V0_1,
            Prepared::V0_2(_) => Contract::V0_2,
        }
    }

    pub async fn instantiate(&self, store: &mut Store<BotState>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Prepared::V0_1(pre) => Exports::V0_1(pre.instantiate_async(store).await?),
            Prepared::V0_2(pre) => Exports::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// An instance's exports, in the current contract's types.
pub enum Exports {
    V0_1(v0_1::Bot),
    V0_2(current::Bot),
}

impl Exports {
    pub async fn manifest(&self, store: &mut Store<BotState>) -> wasmtime::Result<Manifest> {
        match self {
            Exports::V0_1(bot) => Ok(bot.call_manifest(store).await?.into()),
            Exports::V0_2(bot) => bot.call_manifest(store).await,
        }
    }

    /// `check-settings`; bots of 0.1.0, which have none, accept any.
    pub async fn check_settings(
        &self,
        store: &mut Store<BotState>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Exports::V0_1(_) => Ok(Ok(())),
            Exports::V0_2(bot) => bot.call_check_settings(store).await,
        }
    }

    pub async fn handle(
        &self,
        store: &mut Store<BotState>,
        event: &Event,
    ) -> wasmtime::Result<Result<Reply, BotError>> {
        match self {
            Exports::V0_1(bot) => Ok(bot
                .call_handle(store, &event.clone().into())
                .await?
                .map(Into::into)
                .map_err(Into::into)),
            Exports::V0_2(bot) => bot.call_handle(store, event).await,
        }
    }
}
