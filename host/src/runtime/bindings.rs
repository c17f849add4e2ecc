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
pub use self::interlink::bot::types::{
    DestinationInfo, File, Hl7Filter, Hl7Message, HttpRequest, HttpResponse, Outbound,
    Subscription, Tick,
};
