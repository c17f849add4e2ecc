//! Guest side of the WIT contract: generated bindings, the [`Bot`] trait,
//! the [`export_bot!`] macro, safe wrappers over the host interface and
//! builders that make the contract's records pleasant to use.

#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "bot",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_bot_world",
        default_bindings_module: "::interlink_sdk::bindings",
        runtime_path: "::interlink_sdk::__wit_bindgen::rt",
        generate_all,
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use bindings::interlink::bot::host::Level;
pub use bindings::interlink::bot::types::{
    BotError, BytesPayload, DestinationInfo, Event, File, Hl7Filter, Hl7Message, HttpOptions,
    HttpRequest, HttpResponse, Manifest, Outbound, Payload, Reply, Subscription, Tick,
};

use bindings::interlink::bot::host as raw;

/// What every bot implements. See the crate documentation for an example.
pub trait Bot {
    /// Who the bot is and which events it wants; called once at load.
    fn manifest() -> Manifest;
    /// Checks the bot's settings when the host loads it and whenever its
    /// configuration changes; an error names the setting (see
    /// [`host::setting`]). Until a configuration passes, the host holds the
    /// bot's events. The default accepts any settings.
    fn check_settings() -> Result<(), String> {
        Ok(())
    }
    /// Handles one event on a fresh instance.
    fn handle(event: Event) -> Result<Reply, BotError>;
}

/// Exports a type implementing [`Bot`] as the component's `manifest` and
/// `handle` functions.
#[macro_export]
macro_rules! export_bot {
    ($bot:ty) => {
        #[doc(hidden)]
        pub struct __InterlinkExport;

        impl $crate::bindings::Guest for __InterlinkExport {
            fn manifest() -> $crate::Manifest {
                <$bot as $crate::Bot>::manifest()
            }
            fn check_settings() -> ::core::result::Result<(), ::std::string::String> {
                <$bot as $crate::Bot>::check_settings()
            }
            fn handle(event: $crate::Event) -> ::core::result::Result<$crate::Reply, $crate::BotError> {
                <$bot as $crate::Bot>::handle(event)
            }
        }

        $crate::bindings::__export_bot_world!(__InterlinkExport with_types_in $crate::bindings);
    };
}

/// Everything a bot usually needs, in one import.
pub mod prelude {
    pub use crate::hl7::{self, Message};
    pub use crate::{
        Bot, BotError, Event, Hl7Message, HttpRequest, HttpResponse, Level, Manifest, Outbound,
        Reply, Subscription, export_bot, host,
    };
}

/// Safe wrappers over the host interface.
pub mod host {
    use super::{DestinationInfo, Level, raw};

    /// Writes a line to the host log at `level`, tagged with the bot's name.
    pub fn log(level: Level, message: &str) {
        raw::log(level, message)
    }

    /// Logs at info level.
    pub fn info(message: &str) {
        raw::log(Level::Info, message)
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        raw::log(Level::Warn, message)
    }

    /// A setting from the bot's `[bots.NAME] settings` table.
    pub fn config(key: &str) -> Option<String> {
        raw::config(key)
    }

    /// The setting `key` parsed as a `T`, or `default` when it is not set.
    /// The error names the setting, for [`crate::Bot::check_settings`]:
    /// `setting accession_digits: "twelve" is not valid (invalid digit
    /// found in string)`.
    pub fn setting<T>(key: &str, default: T) -> Result<T, String>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match raw::config(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| format!("setting {key}: {v:?} is not valid ({e})")),
        }
    }

    /// The setting `key`, which must be set and not blank.
    pub fn required_setting(key: &str) -> Result<String, String> {
        raw::config(key)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("setting {key} is required"))
    }

    /// A destination this bot may send to.
    pub fn destination(name: &str) -> Option<DestinationInfo> {
        raw::destination(name)
    }

    /// The next value of the durable counter `name`, starting at 1.
    pub fn next_sequence(name: &str) -> u64 {
        raw::next_sequence(name)
    }

    /// The host's wall clock in milliseconds since the Unix epoch.
    pub fn now_ms() -> u64 {
        raw::now_ms()
    }

    /// The bot's durable key-value store, committed with the event.
    pub mod kv {
        use super::raw;

        pub fn get(key: &str) -> Option<Vec<u8>> {
            raw::kv_get(key)
        }

        /// The value as UTF-8 text; `None` if absent or not text.
        pub fn get_string(key: &str) -> Option<String> {
            raw::kv_get(key).and_then(|v| String::from_utf8(v).ok())
        }

        pub fn set(key: &str, value: impl AsRef<[u8]>) {
            raw::kv_set(key, value.as_ref())
        }

        pub fn delete(key: &str) {
            raw::kv_delete(key)
        }

        /// Keys starting with `prefix`, in byte order.
        pub fn list(prefix: &str) -> Vec<String> {
            raw::kv_list(prefix)
        }
    }
}

impl Manifest {
    /// A manifest with no description and no subscriptions.
    pub fn new(name: &str, version: &str) -> Self {
        Manifest {
            name: name.to_string(),
            version: version.to_string(),
            description: String::new(),
            subscribe: Vec::new(),
        }
    }

    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_string();
        self
    }

    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.subscribe.push(subscription);
        self
    }
}

impl Subscription {
    /// HL7 messages from any source whose MSH-9 matches one of `types`
    /// (`ADT^A04`, `ADT^A0*`, `*`).
    pub fn hl7<S: Into<String>>(types: impl IntoIterator<Item = S>) -> Self {
        Subscription::Hl7(Hl7Filter {
            source: None,
            message_types: types.into_iter().map(Into::into).collect(),
        })
    }

    /// HL7 messages from the named source whose MSH-9 matches one of `types`.
    pub fn hl7_from<S: Into<String>>(source: &str, types: impl IntoIterator<Item = S>) -> Self {
        Subscription::Hl7(Hl7Filter {
            source: Some(source.to_string()),
            message_types: types.into_iter().map(Into::into).collect(),
        })
    }

    /// HTTP requests below `prefix`, a path under the bot's mount point
    /// `/bots/<bot-name>`: `Subscription::http("/worklist")` gets
    /// `/bots/<bot-name>/worklist`, `/worklist/7` and `/worklist?date=…`,
    /// not `/worklists`.
    ///
    /// `GET` and `HEAD` are queries: answered at once and not journaled;
    /// key-value reads work, writes, sequences and outbound messages are
    /// refused. Other methods are commands: journaled, then handled like
    /// any event (their writes and messages are committed before the
    /// caller gets the answer).
    ///
    /// ```ignore
    /// use interlink_sdk::prelude::*;
    ///
    /// struct Worklist;
    ///
    /// impl Bot for Worklist {
    ///     fn manifest() -> Manifest {
    ///         Manifest::new("worklist", "0.1.0").subscribe(Subscription::http("/items"))
    ///     }
    ///
    ///     fn handle(event: Event) -> Result<Reply, BotError> {
    ///         let Event::Http(req) = event else { return Ok(Reply::default()) };
    ///         let key = req.route().trim_start_matches("/items/");
    ///         let answer = match (req.method.as_str(), host::kv::get(key)) {
    ///             ("GET", Some(value)) => HttpResponse::new(200).body(value),
    ///             ("GET", None) => HttpResponse::json(404, r#"{"error":"no such item"}"#),
    ///             (_, _) => {
    ///                 host::kv::set(key, &req.body);
    ///                 HttpResponse::new(201)
    ///             }
    ///         };
    ///         Ok(Reply::default().http(answer))
    ///     }
    /// }
    ///
    /// export_bot!(Worklist);
    /// ```
    pub fn http(prefix: &str) -> Self {
        Subscription::Http(prefix.to_string())
    }
}

impl HttpRequest {
    /// The path without its query string.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.path.split_once('?').map(|(_, q)| q)
    }

    /// The first header called `name` (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl HttpResponse {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response: `json` as the body, `Content-Type:
    /// application/json`.
    pub fn json(status: u16, json: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(json.into())
    }

    /// A plain-text response (UTF-8).
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

// The type is generated, so the impl cannot be derived.
#[allow(clippy::derivable_impls)]
impl Default for Reply {
    fn default() -> Self {
        Reply {
            ack: None,
            send: Vec::new(),
            http: None,
        }
    }
}

impl Outbound {
    /// An HL7 message for `destination`.
    pub fn hl7(destination: &str, message: impl Into<String>) -> Self {
        Outbound {
            destination: destination.to_string(),
            payload: Payload::Hl7(message.into()),
            not_before_ms: None,
        }
    }

    /// Bytes for a folder or SFTP `destination` (a CSV, a JSON or a DICOM
    /// file; name the file with [`Outbound::named`]), or the body of a
    /// request to an `http` destination (see [`Outbound::method`],
    /// [`Outbound::path`] and [`Outbound::header`]).
    pub fn bytes(destination: &str, data: impl Into<Vec<u8>>) -> Self {
        Outbound {
            destination: destination.to_string(),
            payload: Payload::Bytes(BytesPayload {
                data: data.into(),
                name: None,
                content_type: None,
                http: None,
            }),
            not_before_ms: None,
        }
    }

    /// The file name of a bytes payload (ignored for HL7, whose files the
    /// host names).
    pub fn named(mut self, name: &str) -> Self {
        if let Payload::Bytes(b) = &mut self.payload {
            b.name = Some(name.to_string());
        }
        self
    }

    /// The media type of a bytes payload (ignored for HL7).
    pub fn content_type(mut self, media_type: &str) -> Self {
        if let Payload::Bytes(b) = &mut self.payload {
            b.content_type = Some(media_type.to_string());
        }
        self
    }

    /// The HTTP method of a bytes payload for an `http` destination, e.g.
    /// `PUT` (the destination's `method` otherwise; ignored for HL7).
    pub fn method(mut self, method: &str) -> Self {
        if let Some(h) = self.http_options() {
            h.method = Some(method.to_string());
        }
        self
    }

    /// The path below an `http` destination's url, which may carry a query,
    /// e.g. `Patient?identifier=http://hospital.org/mrn|123` (ignored for
    /// HL7).
    pub fn path(mut self, path: &str) -> Self {
        if let Some(h) = self.http_options() {
            h.path = Some(path.to_string());
        }
        self
    }

    /// Adds a request header for an `http` destination (ignored for HL7).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Some(h) = self.http_options() {
            h.headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// A bytes payload's HTTP options, made empty when it has none.
    fn http_options(&mut self) -> Option<&mut HttpOptions> {
        match &mut self.payload {
            Payload::Bytes(b) => Some(b.http.get_or_insert_with(|| HttpOptions {
                method: None,
                path: None,
                headers: Vec::new(),
            })),
            Payload::Hl7(_) => None,
        }
    }

    /// Not delivered before `at_ms` (milliseconds since the Unix epoch):
    /// the message waits in the durable outbox.
    pub fn not_before_ms(mut self, at_ms: u64) -> Self {
        self.not_before_ms = Some(at_ms);
        self
    }
}

impl Reply {
    /// Adds an HL7 message for the host to deliver to `destination`.
    pub fn send(self, destination: &str, message: impl Into<String>) -> Self {
        self.push(Outbound::hl7(destination, message))
    }

    /// Adds a message built with [`Outbound`]: bytes, a delay.
    pub fn push(mut self, outbound: Outbound) -> Self {
        self.send.push(outbound);
        self
    }

    /// Sets the answer to an `http` event (without one the caller gets 204).
    pub fn http(mut self, response: HttpResponse) -> Self {
        self.http = Some(response);
        self
    }

    /// Sets the application ACK returned to the sender.
    pub fn ack(mut self, ack: impl Into<String>) -> Self {
        self.ack = Some(ack.into());
        self
    }
}

impl BotError {
    /// A failure that retrying will not fix: the event goes to the failed list.
    pub fn fatal(message: impl Into<String>) -> Self {
        BotError {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure worth retrying later.
    pub fn retry(message: impl Into<String>) -> Self {
        BotError {
            message: message.into(),
            retryable: true,
        }
    }
}

impl From<crate::hl7::Error> for BotError {
    fn from(e: crate::hl7::Error) -> Self {
        BotError::fatal(e.to_string())
    }
}
