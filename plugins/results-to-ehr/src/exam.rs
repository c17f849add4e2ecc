//! The exam a modality posts, read from JSON field by field so that every
//! error names the field (`status: must be final, attestation-requested or
//! corrected`), and stored in KV (without its file) for later resends.

use base64::Engine;
use interlink_sdk::file_name::check_file_name;
use interlink_sdk::hl7::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where the report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Signed off: a final result (`F`).
    Final,
    /// Written, waiting for the attending to attest: a preliminary result
    /// (`P`) for the EHRs that take those.
    AttestationRequested,
    /// Changed after it was final (`C`).
    Corrected,
}

impl Status {
    fn parse(text: &str) -> Option<Status> {
        Some(match text {
            "final" => Status::Final,
            "attestation-requested" => Status::AttestationRequested,
            "corrected" => Status::Corrected,
            _ => return None,
        })
    }

    /// OBR-25/OBX-11 for an EHR that does or does not take preliminary
    /// results; `None`: this EHR gets nothing for this status.
    pub fn result_status(self, preliminary: bool) -> Option<&'static str> {
        match self {
            Status::Final => Some("F"),
            Status::Corrected => Some("C"),
            Status::AttestationRequested if preliminary => Some("P"),
            Status::AttestationRequested => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Final => "final",
            Status::AttestationRequested => "attestation-requested",
            Status::Corrected => "corrected",
        }
    }
}

/// An exam as the bot keeps it: what the ORU is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exam {
    pub accession: String,
    pub patient_id: String,
    /// `FAMILY^GIVEN^MIDDLE`: components of PID-5.
    pub patient_name: String,
    /// `YYYYMMDD` (any HL7 date).
    pub birth_date: String,
    pub sex: String,
    pub visit_number: String,
    /// When the exam was done, in milliseconds since the Unix epoch.
    pub exam_time_ms: u64,
    pub status: Status,
    /// `FAMILY^GIVEN`: the physician who read the exam.
    pub performer: String,
    pub report: String,
    /// When this status was reported to the bot (OBR-22).
    pub reported_at_ms: u64,
    /// When the exam first became final (the time of that command); `None`
    /// while it waits for attestation.
    #[serde(default)]
    pub finalized_ms: Option<u64>,
}

impl Exam {
    /// Whether `other` says the same as this exam (the stamps aside).
    pub fn same_content(&self, other: &Exam) -> bool {
        let unstamped = |e: &Exam| Exam {
            reported_at_ms: 0,
            finalized_ms: None,
            ..e.clone()
        };
        unstamped(self) == unstamped(other)
    }
}

/// A posted exam: the exam and the file to push to the PACS, if any.
pub struct Posted {
    pub exam: Exam,
    pub payload: Option<Payload>,
}

/// The exam's file, as the PACS gets it.
pub struct Payload {
    pub data: Vec<u8>,
    /// The file name: `payload_name`, by default `<accession>.dcm`.
    pub name: String,
    /// `payload_content_type`, by default `application/dicom`.
    pub content_type: String,
}

const REQUIRED: [&str; 10] = [
    "accession",
    "patient_id",
    "patient_name",
    "birth_date",
    "sex",
    "visit_number",
    "exam_time",
    "status",
    "performer",
    "report",
];
const OPTIONAL: [&str; 3] = ["payload_base64", "payload_name", "payload_content_type"];
const SEXES: [&str; 6] = ["F", "M", "O", "U", "A", "N"];
/// The report goes into every ORU, so it is kept well below the host's
/// limits on what one event may send.
const MAX_REPORT_BYTES: usize = 512 * 1024;
/// The host's limit on one KV value: the stored exam must fit in it.
const MAX_STORED_BYTES: usize = 1024 * 1024;

/// Reads a posted exam; `now_ms` becomes its `reported_at_ms`. The error
/// is for the caller (a 400), naming the field.
pub fn parse(body: &[u8], now_ms: u64) -> Result<Posted, String> {
    let fields: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| format!("the body must be a JSON object with the exam's fields ({e})"))?;
    if let Some(unknown) = fields
        .keys()
        .find(|k| !REQUIRED.contains(&k.as_str()) && !OPTIONAL.contains(&k.as_str()))
    {
        return Err(format!("unknown field {unknown}"));
    }
    let text = |name: &str| -> Result<String, String> {
        match fields.get(name) {
            None => Err(format!("missing field {name}")),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{name}: must be a string")),
        }
    };
    let accession = text("accession")?;
    if !is_accession(&accession) {
        return Err(
            "accession: 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`".into(),
        );
    }
    let patient_id = text("patient_id")?;
    if patient_id.trim().is_empty() {
        return Err("patient_id: must not be empty".into());
    }
    let birth_date = text("birth_date")?;
    if !birth_date.is_empty() && birth_date.parse::<Timestamp>().is_err() {
        return Err("birth_date: must be an HL7 date, YYYYMMDD".into());
    }
    let sex = text("sex")?;
    if !sex.is_empty() && !SEXES.contains(&sex.as_str()) {
        return Err("sex: must be one of F, M, O, U, A, N".into());
    }
    let exam_time = text("exam_time")?;
    let exam_time_ms = chrono::DateTime::parse_from_rfc3339(&exam_time)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .ok_or("exam_time: must be an RFC 3339 time, e.g. 2026-11-24T09:15:00Z")?;
    let status = Status::parse(&text("status")?)
        .ok_or("status: must be final, attestation-requested or corrected")?;
    let report = text("report")?;
    if report.len() > MAX_REPORT_BYTES {
        return Err(format!("report: at most {MAX_REPORT_BYTES} bytes"));
    }
    let optional = |name: &str| -> Result<Option<String>, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{name}: must be a string")),
        }
    };
    let data = optional("payload_base64")?
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("payload_base64: not valid base64 ({e})"))
        })
        .transpose()?;
    let name = optional("payload_name")?;
    let content_type = optional("payload_content_type")?;
    let payload = match data {
        None => {
            if let Some(field) = [
                ("payload_name", &name),
                ("payload_content_type", &content_type),
            ]
            .iter()
            .find_map(|(field, value)| value.is_some().then_some(field))
            {
                return Err(format!("{field}: goes with payload_base64"));
            }
            None
        }
        Some(_) if status == Status::AttestationRequested => {
            return Err("payload_base64: send the file with the final result".into());
        }
        Some(data) => {
            let name = name.unwrap_or_else(|| format!("{accession}.dcm"));
            check_file_name(&name).map_err(|why| format!("payload_name: {why}"))?;
            let content_type = content_type.unwrap_or_else(|| "application/dicom".into());
            if content_type.is_empty() || content_type.chars().any(char::is_control) {
                return Err("payload_content_type: a media type like application/pdf".into());
            }
            Some(Payload {
                data,
                name,
                content_type,
            })
        }
    };
    Ok(Posted {
        exam: Exam {
            accession,
            patient_id,
            patient_name: text("patient_name")?,
            birth_date,
            sex,
            visit_number: text("visit_number")?,
            exam_time_ms,
            status,
            performer: text("performer")?,
            report,
            reported_at_ms: now_ms,
            finalized_ms: None,
        },
        payload,
    })
}

/// Accession numbers become KV keys and file names (`<accession>.dcm`),
/// so they are kept to characters that are safe in both.
pub fn is_accession(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && !text.starts_with('.')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The KV key the exam is kept under.
pub fn key(accession: &str) -> String {
    format!("exam/{accession}")
}

/// The stored exam with this accession number.
pub fn load(accession: &str) -> Option<Exam> {
    let json = interlink_sdk::host::kv::get(&key(accession))?;
    serde_json::from_slice(&json).ok()
}

/// The exam as it is stored, or why it cannot be (for the caller, a 400:
/// over the KV value limit, naming the biggest field).
pub fn encode(exam: &Exam) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(exam).expect("an exam serialises");
    if json.len() <= MAX_STORED_BYTES {
        return Ok(json);
    }
    let fields = serde_json::to_value(exam).expect("an exam serialises");
    let (biggest, size) = fields
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), value.to_string().len()))
        .max_by_key(|(_, size)| *size)
        .unwrap_or_default();
    Err(format!(
        "{biggest}: too big to keep ({size} bytes); the stored exam would be {} bytes, over the {MAX_STORED_BYTES}-byte limit",
        json.len()
    ))
}

/// Stores the exam, as [`encode`]d (its latest status replaces the
/// previous one).
pub fn store(accession: &str, json: Vec<u8>) {
    interlink_sdk::host::kv::set(&key(accession), json);
}
