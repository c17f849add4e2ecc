//! Host-side bindings generated from `wit/`, the single source of truth for
//! the bot contract.

wasmtime::component::bindgen!({
    world: "bot",
    path: "../wit",
    imports: { default: trappable },
});

pub use self::interlink::bot::host::Level;
pub use self::interlink::bot::types::{
    DestinationInfo, File, Hl7Filter, Hl7Message, Outbound, Subscription, Tick,
};
