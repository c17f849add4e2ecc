//! The worklist over HTTP (queries: read-only, answered at once).
//!
//! - `GET /worklist?patient_id=&name=&location=&date=` → `{"items": [...]}`
//! - `GET /worklist/{accession}` → one item, or 404
//!
//! The item's JSON ([`Item`]) is the bot's public interface: modalities and
//! the DICOM worklist read it, so fields are only ever added.

use interlink_sdk::hl7::Timestamp;
use interlink_sdk::prelude::*;
use interlink_sdk::query::percent_decode;
use serde::Serialize;

use crate::encounter::Encounter;
use crate::settings::Settings;
use crate::store;

/// One worklist entry. Text fields are empty when the feed did not give
/// them.
#[derive(Serialize)]
pub struct Item {
    /// PID-3.1.
    pub patient_id: String,
    /// PID-5 as `FAMILY^GIVEN^MIDDLE` (HL7 XPN, DICOM PN).
    pub patient_name: String,
    /// PID-7 as `YYYYMMDD`.
    pub birth_date: String,
    /// PID-8: `F`, `M`, `O`, `U`, ...
    pub sex: String,
    /// PV1-19.
    pub visit_number: String,
    /// PV1-3 as `POINT_OF_CARE^ROOM^BED`.
    pub location: String,
    /// PV1-7 as `FAMILY^GIVEN`.
    pub attending_doctor: String,
    pub accession_number: String,
    pub procedure_id: String,
    pub procedure_description: String,
    /// The admit time (PV1-44), else when the encounter opened, in the
    /// `timezone` setting: `2026-11-24T03:00:00-06:00`.
    pub scheduled_time: String,
}

/// The answer to a list query, in scheduled time order.
#[derive(Serialize)]
struct Items {
    items: Vec<Item>,
}

/// The filters of a list query; all must match.
#[derive(Default)]
struct Filters {
    /// Exact PID-3.1.
    patient_id: Option<String>,
    /// Start of the name, any case.
    name: Option<String>,
    /// The location or its first components: `ER` matches `ER^12^B`.
    location: Option<String>,
    /// The scheduled day in `timezone` (`YYYY-MM-DD`).
    date: Option<(i32, u32, u32)>,
}

/// Answers a request to `/worklist…`.
pub fn answer(req: &HttpRequest, settings: &Settings) -> HttpResponse {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return error(405, "the worklist is read-only: use GET").header("allow", "GET, HEAD");
    }
    let now = host::now_ms() as i64;
    let route = req.route();
    if route == "/worklist" || route == "/worklist/" {
        return match Filters::parse(req.query().unwrap_or_default()) {
            Ok(filters) => list(&filters, settings, now),
            Err(why) => error(400, &why),
        };
    }
    let accession = route.strip_prefix("/worklist/").unwrap_or_default();
    let found = match percent_decode(accession) {
        Some(number) if !number.contains('/') => store::by_accession(&number),
        _ => None,
    };
    match found.filter(|e| e.on_worklist(now, settings.max_open_ms)) {
        Some(e) => json(200, &item(&e, settings)),
        None => error(404, "no open encounter has this accession number"),
    }
}

fn list(filters: &Filters, settings: &Settings, now: i64) -> HttpResponse {
    let candidates: Vec<Encounter> = match &filters.patient_id {
        Some(id) => store::of_patient(id),
        None => store::all().collect(),
    };
    let mut open: Vec<(i64, Item)> = candidates
        .iter()
        .filter(|e| e.on_worklist(now, settings.max_open_ms))
        .map(|e| (e.scheduled_ms(), item(e, settings)))
        .filter(|(_, item)| filters.matches(item))
        .collect();
    open.sort_by(|a, b| (a.0, &a.1.visit_number).cmp(&(b.0, &b.1.visit_number)));
    let items = open.into_iter().map(|(_, item)| item).collect();
    json(200, &Items { items })
}

/// The worklist entry for an open encounter.
pub fn item(e: &Encounter, settings: &Settings) -> Item {
    let scheduled = Timestamp::at_ms(e.scheduled_ms(), Some(&settings.timezone))
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    Item {
        patient_id: e.patient_id.clone(),
        patient_name: e.patient_name.clone(),
        birth_date: e.birth_date.clone(),
        sex: e.sex.clone(),
        visit_number: e.visit_number.clone(),
        location: e.location.clone(),
        attending_doctor: e.attending_doctor.clone(),
        accession_number: e
            .accession
            .as_ref()
            .map(|a| a.number.clone())
            .unwrap_or_default(),
        procedure_id: settings.procedure_id.clone(),
        procedure_description: settings.procedure_description.clone(),
        scheduled_time: scheduled,
    }
}

impl Filters {
    /// Reads the query string; an unknown filter or a bad value is an error
    /// naming it. An empty value matches everything (as in DICOM).
    fn parse(query: &str) -> Result<Filters, String> {
        let mut filters = Filters::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(raw)
                .ok_or_else(|| format!("filter {name}: the value is not valid percent-encoding"))?;
            if value.is_empty() {
                continue;
            }
            match name {
                "patient_id" => filters.patient_id = Some(value),
                "name" => filters.name = Some(value.to_lowercase()),
                "location" => filters.location = Some(value),
                "date" => {
                    filters.date = Some(parse_date(&value).ok_or_else(|| {
                        format!("filter date: {value:?} is not a date (YYYY-MM-DD)")
                    })?)
                }
                other => {
                    return Err(format!(
                        "unknown filter {other:?} (filters: patient_id, name, location, date)"
                    ));
                }
            }
        }
        Ok(filters)
    }

    fn matches(&self, item: &Item) -> bool {
        let location = |want: &String| {
            item.location == *want
                || item
                    .location
                    .strip_prefix(want.as_str())
                    .is_some_and(|rest| rest.starts_with('^'))
        };
        self.patient_id
            .as_ref()
            .is_none_or(|id| item.patient_id == *id)
            && self
                .name
                .as_ref()
                .is_none_or(|n| item.patient_name.to_lowercase().starts_with(n))
            && self.location.as_ref().is_none_or(location)
            && self.date.is_none_or(|(y, m, d)| {
                item.scheduled_time.get(..10) == Some(&format!("{y:04}-{m:02}-{d:02}"))
            })
    }
}

fn parse_date(text: &str) -> Option<(i32, u32, u32)> {
    let compact = text.replace('-', "");
    let valid = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    let ts: hl7::Timestamp = compact.parse().ok().filter(|_| valid)?;
    Some((ts.year, ts.month, ts.day))
}

fn json(status: u16, body: &impl Serialize) -> HttpResponse {
    HttpResponse::json(status, serde_json::to_string(body).expect("JSON"))
}

fn error(status: u16, message: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message }))
}
