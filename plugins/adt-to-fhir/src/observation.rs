//! ORU^R01 → a FHIR R4 transaction `Bundle` with one `Observation` per
//! OBX, each a conditional update on its identifier (the order's filler
//! number, OBR-3, else placer number, OBR-2, else MSH-10; then OBX-1), so
//! a result sent again replaces the first rather than adding a second.

use interlink_sdk::hl7::Message;
use interlink_sdk::host;
use serde_json::{Value, json};

use crate::fhir::{Id, date_time, repetitions, text};
use crate::settings::Settings;

/// The transaction Bundle for `msg`, about `patient`; `None` when it has
/// no OBX.
pub fn bundle(msg: &Message, settings: &Settings, patient: &Id) -> Option<Value> {
    // Which OBR each OBX follows, counted from 1, and its position.
    let (mut obr, mut obx) = (0, 0);
    let mut entries = Vec::new();
    for segment in msg.segments() {
        match segment.id {
            "OBR" => obr += 1,
            "OBX" => {
                obx += 1;
                let order = format!("OBR[{}]", obr.max(1));
                let at = Observation {
                    msg,
                    obx: format!("OBX[{obx}]"),
                    order,
                    settings,
                };
                let id = Id {
                    system: settings.observation_system.clone(),
                    value: at.identifier(obx),
                };
                let Some(resource) = at.resource(&id, patient) else {
                    host::warn(&format!("OBX {obx} has no code (OBX-3): left out"));
                    continue;
                };
                entries.push(json!({
                    "resource": resource,
                    "request": {"method": "PUT", "url": id.search("Observation")},
                }));
            }
            _ => {}
        }
    }
    (!entries.is_empty()).then(|| {
        json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": entries,
        })
    })
}

/// One OBX and the OBR it belongs to.
struct Observation<'a> {
    msg: &'a Message,
    obx: String,
    order: String,
    settings: &'a Settings,
}

impl Observation<'_> {
    fn field(&self, n: &str) -> Option<String> {
        text(self.msg, &format!("{}-{n}", self.obx))
    }

    /// `<order number>-<OBX-1, else the OBX's position>`.
    fn identifier(&self, position: usize) -> String {
        let order = text(self.msg, &format!("{}-3.1", self.order))
            .or_else(|| text(self.msg, &format!("{}-2.1", self.order)))
            .unwrap_or_else(|| self.msg.control_id().into_owned());
        let set_id = self.field("1").unwrap_or_else(|| position.to_string());
        format!("{order}-{set_id}")
    }

    /// The Observation; `None` without a code (FHIR requires one).
    fn resource(&self, id: &Id, patient: &Id) -> Option<Value> {
        let mut obs = json!({
            "resourceType": "Observation",
            "identifier": [id.to_json()],
            "status": status(self.field("11").as_deref().unwrap_or("")),
            "code": coded(self.msg, &format!("{}-3", self.obx))?,
            "subject": patient.reference("Patient"),
        });
        let effective = self
            .field("14.1")
            .or_else(|| text(self.msg, &format!("{}-7.1", self.order)))
            .and_then(|t| date_time(&t, self.settings));
        if let Some(t) = effective {
            obs["effectiveDateTime"] = json!(t);
        }
        if let Some((key, value)) = self.value() {
            obs[key] = value;
        }
        if let Some(range) = self.reference_range() {
            obs["referenceRange"] = json!([range]);
        }
        if let Some(flag) = self.field("8") {
            obs["interpretation"] = json!([{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                "code": flag,
            }]}]);
        }
        Some(obs)
    }

    /// OBX-5 by its type (OBX-2): `NM` a `valueQuantity` with the units
    /// of OBX-6 (a comparator such as `<5` kept), `CE`/`CWE` a
    /// `valueCodeableConcept`, `ST`/`TX`/`FT` (and anything else) a
    /// `valueString`, repetitions as lines.
    fn value(&self) -> Option<(&'static str, Value)> {
        let kind = self.field("2").unwrap_or_default();
        let obx5 = format!("{}-5", self.obx);
        match kind.as_str() {
            "NM" => {
                let raw = self.field("5")?;
                match self.quantity(&raw) {
                    Some(q) => Some(("valueQuantity", q)),
                    None => Some(("valueString", json!(raw))),
                }
            }
            "CE" | "CWE" => Some(("valueCodeableConcept", coded(self.msg, &obx5)?)),
            _ => {
                let lines: Vec<String> = (1..=repetitions(self.msg, &obx5))
                    .map(|r| {
                        self.msg
                            .plain_text(&format!("{obx5}[{r}]"))
                            .unwrap_or_default()
                    })
                    .collect();
                let text = lines.join("\n");
                (!text.trim().is_empty()).then(|| ("valueString", json!(text)))
            }
        }
    }

    /// A number with an optional comparator, and OBX-6's units (UCUM when
    /// OBX-6.3 says so).
    fn quantity(&self, raw: &str) -> Option<Value> {
        let (comparator, number) = split_comparator(raw);
        let mut q = json!({"value": number_value(number)?});
        if let Some(c) = comparator {
            q["comparator"] = json!(c);
        }
        if let Some(unit) = self.field("6.1") {
            q["unit"] = json!(self.field("6.2").unwrap_or_else(|| unit.clone()));
            if self.field("6.3").as_deref() == Some("UCUM") {
                q["system"] = json!("http://unitsofmeasure.org");
                q["code"] = json!(unit);
            }
        }
        Some(q)
    }

    /// OBX-7 as a range: `3.5-5.0` low and high, `<5` high only, `>60` low
    /// only, anything else as text.
    fn reference_range(&self) -> Option<Value> {
        let raw = self.field("7")?;
        let unit = self.field("6.1");
        let bound = |n: &str| {
            let mut q = json!({"value": number_value(n.trim())?});
            if let Some(u) = &unit {
                q["unit"] = json!(u);
            }
            Some(q)
        };
        let range = match split_comparator(&raw) {
            (Some("<" | "<="), n) => bound(n).map(|h| json!({"high": h})),
            (Some(">" | ">="), n) => bound(n).map(|l| json!({"low": l})),
            _ => raw
                .split_once('-')
                .and_then(|(lo, hi)| Some(json!({"low": bound(lo)?, "high": bound(hi)?}))),
        };
        Some(range.unwrap_or_else(|| json!({"text": raw})))
    }
}

/// HL7 table 0085 (observation result status) → FHIR `observation-status`.
fn status(code: &str) -> &'static str {
    match code {
        "F" => "final",
        "C" => "corrected",
        "A" => "amended",
        "P" | "R" | "S" => "preliminary",
        "I" | "O" => "registered",
        "X" => "cancelled",
        "D" | "W" => "entered-in-error",
        _ => "unknown",
    }
}

/// A CE/CWE field as a `CodeableConcept`: identifier (1), text (2) and
/// coding system (3; `LN` is LOINC, `SCT` SNOMED CT, others under
/// `urn:interlink:code-system:`), the alternate code (4-6) as a second
/// coding; `None` when it has neither a code nor a text.
fn coded(msg: &Message, field: &str) -> Option<Value> {
    let part = |c: u8| text(msg, &format!("{field}.{c}"));
    let mut codings = Vec::new();
    for first in [1u8, 4] {
        let Some(code) = part(first) else { continue };
        let mut coding = json!({"code": code});
        if let Some(system) = part(first + 2) {
            coding["system"] = json!(code_system(&system));
        }
        if let Some(display) = part(first + 1) {
            coding["display"] = json!(display);
        }
        codings.push(coding);
    }
    let mut concept = json!({});
    if !codings.is_empty() {
        concept["coding"] = json!(codings);
    }
    if let Some(t) = part(2) {
        concept["text"] = json!(t);
    }
    concept
        .as_object()
        .is_some_and(|c| !c.is_empty())
        .then_some(concept)
}

/// An HL7 coding system name (table 0396) as a FHIR system URI.
fn code_system(name: &str) -> String {
    match name {
        "LN" => "http://loinc.org".into(),
        "SCT" | "SNM" => "http://snomed.info/sct".into(),
        "UCUM" => "http://unitsofmeasure.org".into(),
        other => format!("urn:interlink:code-system:{other}"),
    }
}

/// `<5` → (`<`, `5`).
fn split_comparator(raw: &str) -> (Option<&str>, &str) {
    for c in ["<=", ">=", "<", ">"] {
        if let Some(rest) = raw.strip_prefix(c) {
            return (Some(c), rest.trim());
        }
    }
    (None, raw.trim())
}

/// A decimal as a JSON number: an integer stays one (`140`, not `140.0`).
fn number_value(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(json!(i));
    }
    let f: f64 = text.parse().ok()?;
    f.is_finite().then(|| json!(f))
}
