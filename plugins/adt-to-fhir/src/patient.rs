//! PID → a FHIR R4 `Patient`, sent as a conditional update (`PUT
//! Patient?identifier=system|value`), which replaces the whole resource.
//! So that an A08 carrying only what changed does not wipe the rest, the
//! bot keeps the last Patient it sent (key-value `patient/<system>|<value>`)
//! and changes only what the message says: an empty field keeps the
//! element, `""` deletes it, a value replaces it.

use interlink_sdk::hl7::Message;
use serde_json::{Value, json};

use crate::fhir::{Change, Id, date, last_sent, remember, repetitions, text};
use crate::settings::Settings;

/// What the last Patient sent is kept under.
const KIND: &str = "patient";

/// The Patient for `msg`, about `id`, merged with the last one sent; it is
/// kept as the new last one.
pub fn build(msg: &Message, settings: &Settings, id: &Id) -> Result<Value, String> {
    let mut patient = last_sent(KIND, id);
    patient["resourceType"] = json!("Patient");
    patient["identifier"] = Value::Array(identifiers(msg, settings)?);
    patient["active"] = json!(true);
    Change::of(msg, "PID-5", || list(msg, "PID-5", name)).apply(&mut patient, "name");
    Change::of(msg, "PID-7", || {
        text(msg, "PID-7.1").and_then(|t| date(&t)).map(Value::from)
    })
    .apply(&mut patient, "birthDate");
    Change::of(msg, "PID-8", || Some(json!(gender(&text(msg, "PID-8")?))))
        .apply(&mut patient, "gender");
    Change::of(msg, "PID-11", || list(msg, "PID-11", address)).apply(&mut patient, "address");
    Change::of(msg, "PID-13", || list(msg, "PID-13", telecom)).apply(&mut patient, "telecom");
    remember(KIND, id, &patient);
    Ok(patient)
}

/// Every PID-3 repetition with a value, with its type (CX-5) as a v2-0203
/// code.
fn identifiers(msg: &Message, settings: &Settings) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for r in 1..=repetitions(msg, "PID-3") {
        let cx = format!("PID-3[{r}]");
        let Some(id) = Id::of_cx(msg, &cx, settings)? else {
            continue;
        };
        let mut identifier = id.to_json();
        if let Some(code) = text(msg, &format!("{cx}.5")) {
            identifier["type"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": code,
            }]});
        }
        out.push(identifier);
    }
    Ok(out)
}

/// The non-empty repetitions of `field`, each made by `one` (`None`: an
/// empty repetition, skipped); `None` when none is left.
fn list(msg: &Message, field: &str, one: fn(&Message, &str) -> Option<Value>) -> Option<Value> {
    let items: Vec<Value> = (1..=repetitions(msg, field))
        .filter_map(|r| one(msg, &format!("{field}[{r}]")))
        .collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

/// An XPN repetition as a `HumanName`: family (1.1), given names (2, 3),
/// suffix (4), prefix (5), use from the name type (7).
fn name(msg: &Message, xpn: &str) -> Option<Value> {
    let part = |c: &str| text(msg, &format!("{xpn}.{c}"));
    let mut name = json!({});
    if let Some(use_) = part("7").and_then(|t| name_use(&t)) {
        name["use"] = json!(use_);
    }
    if let Some(family) = part("1.1") {
        name["family"] = json!(family);
    }
    let given: Vec<String> = [part("2"), part("3")].into_iter().flatten().collect();
    if !given.is_empty() {
        name["given"] = json!(given);
    }
    for (key, component) in [("suffix", "4"), ("prefix", "5")] {
        if let Some(v) = part(component) {
            name[key] = json!([v]);
        }
    }
    (name.as_object()?.keys().any(|k| k != "use")).then_some(name)
}

/// HL7 table 0200 (name type) → FHIR `name-use`.
fn name_use(code: &str) -> Option<&'static str> {
    Some(match code {
        "L" | "C" => "official",
        "D" | "A" => "usual",
        "M" => "maiden",
        "N" => "nickname",
        "B" => "old",
        "S" => "anonymous",
        "T" => "temp",
        _ => return None,
    })
}

/// HL7 table 0001 (administrative sex) → FHIR `administrative-gender`.
pub fn gender(code: &str) -> &'static str {
    match code {
        "M" => "male",
        "F" => "female",
        "O" | "A" => "other",
        _ => "unknown",
    }
}

/// An XAD repetition as an `Address`: lines (1.1 street, 2 other
/// designation), city (3), state (4), postal code (5), country (6), use
/// or type from the address type (7).
fn address(msg: &Message, xad: &str) -> Option<Value> {
    let part = |c: &str| text(msg, &format!("{xad}.{c}"));
    let mut address = json!({});
    match part("7").as_deref() {
        Some("H") => address["use"] = json!("home"),
        Some("B" | "O") => address["use"] = json!("work"),
        Some("C") => address["use"] = json!("temp"),
        Some("M") => address["type"] = json!("postal"),
        _ => {}
    }
    let lines: Vec<String> = [part("1.1"), part("2")].into_iter().flatten().collect();
    if !lines.is_empty() {
        address["line"] = json!(lines);
    }
    for (key, component) in [
        ("city", "3"),
        ("state", "4"),
        ("postalCode", "5"),
        ("country", "6"),
    ] {
        if let Some(v) = part(component) {
            address[key] = json!(v);
        }
    }
    let usable = address
        .as_object()?
        .keys()
        .any(|k| k != "use" && k != "type");
    usable.then_some(address)
}

/// An XTN repetition as a `ContactPoint`: the e-mail address (4) for
/// `Internet`/`NET`, else the number as written (1) or area code and
/// local number (6, 7); system from the equipment type (3), use from the
/// use code (2).
fn telecom(msg: &Message, xtn: &str) -> Option<Value> {
    let part = |c: &str| text(msg, &format!("{xtn}.{c}"));
    let (use_code, equipment) = (part("2"), part("3"));
    let email = equipment.as_deref() == Some("Internet") || use_code.as_deref() == Some("NET");
    let value = if email {
        part("4")?
    } else {
        match (part("1"), part("6"), part("7")) {
            (Some(number), _, _) => number,
            (None, Some(area), Some(local)) => format!("({area}) {local}"),
            (None, None, Some(local)) => local,
            _ => return None,
        }
    };
    let system = match equipment.as_deref() {
        _ if email => "email",
        Some("FX") => "fax",
        Some("BP") => "pager",
        _ => "phone",
    };
    let mut contact = json!({"system": system, "value": value});
    let use_ = match (use_code.as_deref(), equipment.as_deref()) {
        (_, Some("CP")) => Some("mobile"),
        (Some("PRN" | "ORN"), _) => Some("home"),
        (Some("WPN"), _) => Some("work"),
        (Some("VHN"), _) => Some("temp"),
        _ => None,
    };
    if let Some(u) = use_ {
        contact["use"] = json!(u);
    }
    Some(contact)
}
