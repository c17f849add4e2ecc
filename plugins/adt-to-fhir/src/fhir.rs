//! What every resource needs: reading HL7 values (escapes decoded, `""`
//! told apart from empty), FHIR dates and instants, identifiers and the
//! references and conditional URLs made from them, the last resource of
//! each kind sent (kept so that a sparse message changes only what it
//! says), and the outbound request for the `http` destination.

use interlink_sdk::hl7::{Message, Precision, Timestamp};
use interlink_sdk::{Outbound, host};
use serde_json::{Value, json};

use crate::settings::Settings;

/// Media type of FHIR resources in JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// What an HL7 field says about a FHIR element: leave it as the receiver
/// has it (empty), delete it (`""`), or set it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Keep,
    Clear,
    Set(Value),
}

impl Change {
    /// `path`'s change: `""` clears it; an empty or absent field keeps it;
    /// otherwise `make` turns the field into a value (`None`: nothing
    /// usable in it, so kept).
    pub fn of(msg: &Message, path: &str, make: impl FnOnce() -> Option<Value>) -> Change {
        if msg.is_null(path) {
            Change::Clear
        } else if text(msg, path).is_none() {
            Change::Keep
        } else {
            make().map_or(Change::Keep, Change::Set)
        }
    }

    /// Applies the change to `resource[key]`.
    pub fn apply(self, resource: &mut Value, key: &str) {
        match self {
            Change::Keep => {}
            Change::Clear => {
                resource.as_object_mut().map(|o| o.remove(key));
            }
            Change::Set(v) => resource[key] = v,
        }
    }
}

/// The value at `path`, escapes decoded, `None` when empty, absent or the
/// HL7 null `""`.
pub fn text(msg: &Message, path: &str) -> Option<String> {
    msg.value(path).filter(|v| v != "\"\"")
}

/// The key-value key of the last `kind` (`patient`, `encounter`) sent
/// for `id`.
fn sent_key(kind: &str, id: &Id) -> String {
    format!("{kind}/{}|{}", id.system, id.value)
}

/// The last `kind` resource sent for `id` (key-value
/// `<kind>/<system>|<value>`), or `{}` before the first.
pub fn last_sent(kind: &str, id: &Id) -> Value {
    host::kv::get(&sent_key(kind, id))
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_else(|| json!({}))
}

/// Keeps `resource` as the last `kind` sent for `id`.
pub fn remember(kind: &str, id: &Id, resource: &Value) {
    host::kv::set(&sent_key(kind, id), resource.to_string());
}

/// How many repetitions `field` (e.g. `PID-5`) has, empty ones included.
pub fn repetitions(msg: &Message, field: &str) -> usize {
    (1..)
        .take_while(|r| msg.get_raw(&format!("{field}[{r}]")).is_some())
        .count()
}

/// An HL7 date (PID-7) as a FHIR `date`: `1980-01-31`, `1980-01` or
/// `1980`, as precise as it was given.
pub fn date(value: &str) -> Option<String> {
    let ts: Timestamp = value.parse().ok()?;
    Some(match ts.precision {
        Precision::Year => format!("{:04}", ts.year),
        Precision::Month => format!("{:04}-{:02}", ts.year, ts.month),
        _ => format!("{:04}-{:02}-{:02}", ts.year, ts.month, ts.day),
    })
}

/// An HL7 time as a FHIR `dateTime`: a date when no hour was given, else
/// to the second with its UTC offset (FHIR requires one), read in
/// `settings.timezone` when the time has none (by the SDK's rule for DST
/// changes: a skipped time moves forward, a repeated one is the earlier).
pub fn date_time(value: &str, settings: &Settings) -> Option<String> {
    let ts: Timestamp = value.parse().ok()?;
    if ts.precision <= Precision::Day {
        return date(value);
    }
    let with_offset = match ts.offset_minutes {
        Some(_) => ts,
        None => {
            let tz = settings.timezone.as_str();
            Timestamp::at_ms(ts.instant_ms(tz).ok()?, Some(tz)).ok()?
        }
    };
    Some(with_offset.to_rfc3339())
}

/// A business identifier: a system and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    pub system: String,
    pub value: String,
}

impl Id {
    /// The identifier of a CX field repetition (`PID-3[1]`): value from
    /// component 1, system from the assigning authority (component 4.1) by
    /// [`Settings::system_for`].
    pub fn of_cx(msg: &Message, cx: &str, settings: &Settings) -> Result<Option<Id>, String> {
        let Some(value) = text(msg, &format!("{cx}.1")) else {
            return Ok(None);
        };
        let authority = text(msg, &format!("{cx}.4.1")).unwrap_or_default();
        let system = settings.system_for(&authority)?;
        Ok(Some(Id { system, value }))
    }

    /// As a FHIR `Identifier`.
    pub fn to_json(&self) -> Value {
        json!({"system": self.system, "value": self.value})
    }

    /// `Type?identifier=system|value`, the search a conditional update
    /// names (the host percent-encodes it; `\`, `|`, `,` and `$` in the
    /// value are escaped as FHIR search requires).
    pub fn search(&self, resource_type: &str) -> String {
        let mut value = String::with_capacity(self.value.len());
        for c in self.value.chars() {
            if matches!(c, '\\' | '|' | ',' | '$') {
                value.push('\\');
            }
            value.push(c);
        }
        format!("{resource_type}?identifier={}|{value}", self.system)
    }

    /// A logical reference to the `resource_type` with this identifier.
    pub fn reference(&self, resource_type: &str) -> Value {
        json!({"type": resource_type, "identifier": self.to_json()})
    }
}

/// The patient the message is about: PID-3's first repetition with a
/// value. Every resource names it.
pub fn patient_id(msg: &Message, settings: &Settings) -> Result<Id, String> {
    for r in 1..=repetitions(msg, "PID-3") {
        if let Some(id) = Id::of_cx(msg, &format!("PID-3[{r}]"), settings)? {
            return Ok(id);
        }
    }
    Err("no patient identifier (PID-3.1 is empty)".into())
}

/// A request for the FHIR server carrying `resource`: `method` to `path`
/// below the destination's URL, with the ordering header when set.
pub fn request(
    settings: &Settings,
    method: &str,
    path: Option<&str>,
    resource: &Value,
    patient: &Id,
) -> Outbound {
    let mut out = Outbound::bytes(&settings.destination, resource.to_string())
        .content_type(FHIR_JSON)
        .method(method)
        .header("Accept", FHIR_JSON);
    if let Some(path) = path {
        out = out.path(path);
    }
    if let Some(header) = &settings.ordering_header {
        out = out.header(header, &header_safe(&patient.value));
    }
    out
}

/// `value` as a header value: bytes other than visible ASCII
/// percent-encoded.
fn header_safe(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'!'..=b'~' if b != b'%' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
