//! Host-side bindings generated from `wit/`, the single source of truth for
//! the bot contract. Exports are called asynchronously (the bot runs on a
//! fiber, so a bot waiting in WASI can be abandoned at its time limit);
//! the `host` imports stay synchronous.

wasmtime::component::bindgen!({
    world: "bot",
    path: "../wit",
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::interlink::bot::host::Level;
pub use self::interlink::bot::types::{
    DestinationInfo, File, Hl7Filter, Hl7Message, Outbound, Subscription, Tick,
};
