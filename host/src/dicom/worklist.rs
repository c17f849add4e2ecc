//! Modality Worklist matching (DICOM PS3.4 annex K): a C-FIND identifier's
//! matching keys, the cheap prefilters the worklist bot understands, the
//! exact DICOM matching of the bot's items in the host (wildcards `*`/`?`,
//! date and time ranges, modality, station AE title), and each matching
//! item as the response identifier, with the keys the query asked for.

use chrono::DateTime;
use chrono_tz::Tz;
use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Deserialize;

use crate::config::{DicomCharset, DicomConfig};
use crate::wildcard;

/// A worklist item as the bot's HTTP worklist gives it (fields it leaves
/// out are empty).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Item {
    pub patient_id: String,
    /// `FAMILY^GIVEN^MIDDLE`, a DICOM PN.
    pub patient_name: String,
    /// `YYYYMMDD`.
    pub birth_date: String,
    pub sex: String,
    pub visit_number: String,
    pub location: String,
    pub attending_doctor: String,
    pub accession_number: String,
    pub procedure_id: String,
    pub procedure_description: String,
    /// RFC 3339.
    pub scheduled_time: String,
}

/// The bot's answer: `{"items": [...]}`.
pub fn parse_items(body: &[u8]) -> Result<Vec<Item>, String> {
    #[derive(Deserialize)]
    struct Worklist {
        items: Vec<Item>,
    }
    serde_json::from_slice::<Worklist>(body)
        .map(|w| w.items)
        .map_err(|e| format!("the worklist bot's answer is not a worklist: {e}"))
}

/// What the SCP's configuration adds to every item.
#[derive(Debug, Clone)]
pub struct Site {
    pub modality: String,
    pub station_ae: Option<String>,
    pub timezone: Tz,
    pub charset: DicomCharset,
}

impl Site {
    pub fn new(cfg: &DicomConfig) -> Self {
        Site {
            modality: cfg.modality.clone(),
            station_ae: cfg.station_ae.clone(),
            timezone: cfg.timezone.parse().unwrap_or(Tz::UTC),
            charset: cfg.charset,
        }
    }

    /// An item's scheduled start as DICOM date and time in the site's
    /// zone (both empty when it has none), worked out once per item for
    /// [`Query::matches`] and [`Query::answer`].
    pub fn start(&self, item: &Item) -> Start {
        let Ok(at) = DateTime::parse_from_rfc3339(&item.scheduled_time) else {
            return Start::default();
        };
        let local = at.with_timezone(&self.timezone);
        Start {
            date: local.format("%Y%m%d").to_string(),
            time: local.format("%H%M%S").to_string(),
        }
    }

    /// The value an item (starting at `start`) has for `tag` (top level,
    /// or in the scheduled procedure step), with its VR; `None` for a key
    /// we do not fill.
    fn value(&self, item: &Item, start: &Start, tag: Tag) -> Option<(VR, String)> {
        let text = |vr, s: &str| Some((vr, s.to_string()));
        match tag {
            tags::PATIENT_NAME => text(VR::PN, &item.patient_name),
            tags::PATIENT_ID => text(VR::LO, &item.patient_id),
            tags::PATIENT_BIRTH_DATE => text(VR::DA, &item.birth_date),
            tags::PATIENT_SEX => text(VR::CS, &item.sex),
            tags::ACCESSION_NUMBER => text(VR::SH, &item.accession_number),
            tags::REQUESTED_PROCEDURE_ID => text(VR::SH, &item.procedure_id),
            tags::REQUESTED_PROCEDURE_DESCRIPTION => text(VR::LO, &item.procedure_description),
            tags::STUDY_INSTANCE_UID => text(VR::UI, &study_uid(&item.accession_number)),
            tags::ADMISSION_ID => text(VR::LO, &item.visit_number),
            tags::CURRENT_PATIENT_LOCATION => text(VR::LO, &item.location),
            tags::REFERRING_PHYSICIAN_NAME => text(VR::PN, &item.attending_doctor),
            tags::MODALITY => text(VR::CS, &self.modality),
            tags::SCHEDULED_STATION_AE_TITLE => {
                text(VR::AE, self.station_ae.as_deref().unwrap_or(""))
            }
            tags::SCHEDULED_PROCEDURE_STEP_START_DATE => text(VR::DA, &start.date),
            tags::SCHEDULED_PROCEDURE_STEP_START_TIME => text(VR::TM, &start.time),
            tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION => text(VR::LO, &item.procedure_description),
            tags::SCHEDULED_PROCEDURE_STEP_ID => text(VR::SH, &item.accession_number),
            tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME => text(VR::PN, &item.attending_doctor),
            _ => None,
        }
    }
}

/// An item's scheduled start in the site's zone: DICOM DA and TM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Start {
    pub date: String,
    pub time: String,
}

/// The Study Instance UID of an accession number: `2.25.` and the decimal
/// of the first 128 bits of its SHA-256, the same for every query.
pub fn study_uid(accession: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(accession.as_bytes());
    let first: [u8; 16] = hash[..16].try_into().expect("32-byte hash");
    format!("2.25.{}", u128::from_be_bytes(first))
}

/// The keys of the scheduled procedure step returned when a query asks for
/// the sequence without naming any.
const STEP_KEYS: [Tag; 7] = [
    tags::MODALITY,
    tags::SCHEDULED_STATION_AE_TITLE,
    tags::SCHEDULED_PROCEDURE_STEP_START_DATE,
    tags::SCHEDULED_PROCEDURE_STEP_START_TIME,
    tags::SCHEDULED_PROCEDURE_STEP_DESCRIPTION,
    tags::SCHEDULED_PROCEDURE_STEP_ID,
    tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME,
];

/// A C-FIND identifier: its matching keys, and itself for the return keys.
#[derive(Debug, Clone)]
pub struct Query {
    patient_id: Key,
    patient_name: Key,
    accession: Key,
    modality: Key,
    station_ae: Key,
    date: String,
    time: String,
    identifier: InMemDicomObject,
}

/// A single value or wildcard matching key (`*`, `?`), read once per
/// query: an empty key (or `*`) matches all.
#[derive(Debug, Clone)]
struct Key {
    /// As the query gives it.
    text: String,
    /// Its characters, uppercased when case does not matter.
    pattern: Vec<char>,
    ignore_case: bool,
}

impl Key {
    fn new(text: String, ignore_case: bool) -> Key {
        let pattern = match ignore_case {
            true => text.chars().flat_map(char::to_uppercase).collect(),
            false => text.chars().collect(),
        };
        Key {
            text,
            pattern,
            ignore_case,
        }
    }

    /// Whether `value` matches, without allocating: uppercased char by
    /// char (as `str::to_uppercase` does) when case does not matter.
    fn matches(&self, value: &str) -> bool {
        let eq = |a: char, b: char| a == b;
        match (self.pattern.is_empty(), self.ignore_case) {
            (true, _) => true,
            (false, true) => wildcard::matches(
                &self.pattern,
                value.chars().flat_map(char::to_uppercase),
                eq,
            ),
            (false, false) => wildcard::matches(&self.pattern, value.chars(), eq),
        }
    }
}

/// A string value, without padding; empty when absent or not text.
fn string(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// The first item of the Scheduled Procedure Step Sequence, if any.
fn step(obj: &InMemDicomObject) -> Option<&InMemDicomObject> {
    obj.get(tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE)?
        .items()?
        .first()
}

impl Query {
    pub fn new(identifier: InMemDicomObject) -> Self {
        let in_step = |tag| {
            step(&identifier)
                .map(|s| string(s, tag))
                .unwrap_or_default()
        };
        Query {
            patient_id: Key::new(string(&identifier, tags::PATIENT_ID), false),
            patient_name: Key::new(string(&identifier, tags::PATIENT_NAME), true),
            accession: Key::new(string(&identifier, tags::ACCESSION_NUMBER), false),
            modality: Key::new(in_step(tags::MODALITY), false),
            station_ae: Key::new(in_step(tags::SCHEDULED_STATION_AE_TITLE), false),
            date: in_step(tags::SCHEDULED_PROCEDURE_STEP_START_DATE),
            time: in_step(tags::SCHEDULED_PROCEDURE_STEP_START_TIME),
            identifier,
        }
    }

    /// The query string of the bot request: the filters the worklist bot
    /// applies cheaply and that can only narrow what [`Query::matches`]
    /// keeps (the patient id when it has no wildcard, the family name's
    /// literal start). Dates are not passed: the bot reads them in its own
    /// time zone, the modality in its.
    pub fn prefilter(&self) -> String {
        let mut params = Vec::new();
        let patient_id = &self.patient_id.text;
        if !patient_id.is_empty() && !has_wildcard(patient_id) {
            params.push(format!("patient_id={}", percent(patient_id)));
        }
        let literal = self
            .patient_name
            .text
            .split(['*', '?'])
            .next()
            .unwrap_or("");
        let family = literal.split('^').next().unwrap_or("");
        if !family.is_empty() {
            params.push(format!("name={}", percent(family)));
        }
        params.join("&")
    }

    /// Whether an item, starting at `start` ([`Site::start`]), matches
    /// every matching key.
    pub fn matches(&self, item: &Item, start: &Start, site: &Site) -> bool {
        self.patient_id.matches(&item.patient_id)
            && self.patient_name.matches(&item.patient_name)
            && self.accession.matches(&item.accession_number)
            && self.modality.matches(&site.modality)
            && site
                .station_ae
                .as_deref()
                .is_none_or(|ae| self.station_ae.matches(ae))
            && in_range(&self.date, &start.date, 8)
            && in_range(&self.time, &start.time, 6)
    }

    /// The response identifier for a matching item starting at `start`:
    /// every key the query has, filled when we know it (empty otherwise),
    /// with SpecificCharacterSet.
    pub fn answer(&self, item: &Item, start: &Start, site: &Site) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        out.put(DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            PrimitiveValue::from(site.charset.term()),
        ));
        for element in self.identifier.iter() {
            let tag = element.tag();
            if tag == tags::SPECIFIC_CHARACTER_SET || tag.group() == 0x0002 {
                continue;
            }
            if tag == tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE {
                let keys: Vec<(Tag, VR)> = match step(&self.identifier) {
                    Some(s) if s.iter().next().is_some() => {
                        s.iter().map(|e| (e.tag(), e.vr())).collect()
                    }
                    _ => STEP_KEYS.iter().map(|t| (*t, VR::UN)).collect(),
                };
                let mut step = InMemDicomObject::new_empty();
                for (tag, vr) in keys {
                    step.put(filled(site, item, start, tag, vr));
                }
                out.put(DataElement::new(
                    tag,
                    VR::SQ,
                    DataSetSequence::from(vec![step]),
                ));
                continue;
            }
            out.put(filled(site, item, start, tag, element.vr()));
        }
        out
    }
}

/// A return key's element: the item's value, or empty (a sequence we do
/// not fill is an empty sequence).
fn filled(
    site: &Site,
    item: &Item,
    start: &Start,
    tag: Tag,
    vr: VR,
) -> DataElement<InMemDicomObject> {
    match site.value(item, start, tag) {
        Some((vr, value)) => {
            let value = match site.charset {
                DicomCharset::Utf8 => value,
                DicomCharset::Latin1 => value
                    .chars()
                    .map(|c| if (c as u32) < 0x100 { c } else { '?' })
                    .collect(),
            };
            DataElement::new(tag, vr, PrimitiveValue::from(value))
        }
        None if vr == VR::SQ => {
            DataElement::new(tag, vr, DataSetSequence::<InMemDicomObject>::empty())
        }
        None => {
            let vr = if vr == VR::UN { VR::LO } else { vr };
            DataElement::new(tag, vr, PrimitiveValue::Empty)
        }
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Range matching of a DA (`width` 8) or TM (`width` 6) key: `A`, `A-`,
/// `-B`, `A-B`; an empty key matches all, an item without a value only
/// that. Times compare on their digits (`12:00` is `1200`), an upper bound
/// covering what it leaves out (`-12` is up to 12:59:59).
fn in_range(key: &str, value: &str, width: usize) -> bool {
    if key.is_empty() {
        return true;
    }
    if value.is_empty() {
        return false;
    }
    let digits = |s: &str, fill: char| {
        let mut d: String = s
            .split('.')
            .next()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_digit)
            .take(width)
            .collect();
        while d.len() < width {
            d.push(fill);
        }
        d
    };
    let value = digits(value, '0');
    let (low, high) = match key.split_once('-') {
        Some((low, high)) => (low, high),
        None => (key, key),
    };
    (low.is_empty() || value >= digits(low, '0')) && (high.is_empty() || value <= digits(high, '9'))
}

/// Percent-encodes a query string value (all but unreserved characters).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, name: &str, accession: &str, at: &str) -> Item {
        Item {
            patient_id: id.into(),
            patient_name: name.into(),
            accession_number: accession.into(),
            scheduled_time: at.into(),
            birth_date: "19701210".into(),
            ..Item::default()
        }
    }

    fn site(station_ae: Option<&str>) -> Site {
        Site {
            modality: "US".into(),
            station_ae: station_ae.map(Into::into),
            timezone: "America/Chicago".parse().unwrap(),
            charset: DicomCharset::Utf8,
        }
    }

    /// Single value or wildcard matching, as a query's key.
    fn single(key: &str, value: &str, ignore_case: bool) -> bool {
        Key::new(key.to_string(), ignore_case).matches(value)
    }

    fn query(top: &[(Tag, VR, &str)], in_step: &[(Tag, VR, &str)]) -> Query {
        let mut obj = InMemDicomObject::new_empty();
        for (tag, vr, v) in top {
            obj.put(DataElement::new(*tag, *vr, PrimitiveValue::from(*v)));
        }
        let mut s = InMemDicomObject::new_empty();
        for (tag, vr, v) in in_step {
            s.put(DataElement::new(*tag, *vr, PrimitiveValue::from(*v)));
        }
        obj.put(DataElement::new(
            tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![s]),
        ));
        Query::new(obj)
    }

    #[test]
    fn wildcards_and_single_values() {
        assert!(single("LOVE*", "LOVELACE^ADA", true));
        assert!(single("love*", "LOVELACE^ADA", true));
        assert!(single("*ADA*", "LOVELACE^ADA^K", true));
        assert!(single("L?VELACE^ADA", "LOVELACE^ADA", true));
        assert!(!single("L?VELACE", "LOVELACE^ADA", true));
        assert!(single("*", "", false));
        assert!(single("", "anything", false));
        assert!(!single("MRN1", "mrn1", false));
        assert!(single("**a*?", "xxab", false));
        assert!(!single("a*b*c", "acb", false));
    }

    #[test]
    fn date_and_time_ranges() {
        assert!(in_range("20261124", "20261124", 8));
        assert!(in_range("20261101-20261130", "20261124", 8));
        assert!(in_range("-20261124", "20261124", 8));
        assert!(in_range("20261125-", "20261126", 8));
        assert!(!in_range("20261125-", "20261124", 8));
        assert!(!in_range("20261124", "", 8));
        assert!(in_range("", "", 8));
        assert!(in_range("0800-12", "125959", 6));
        assert!(!in_range("0800-12", "130000", 6));
        assert!(in_range("08:00-09:30", "093000", 6));
    }

    #[test]
    fn items_match_in_the_site_zone() {
        let s = site(None);
        let ada = item(
            "MRN777",
            "LOVELACE^ADA^K",
            "BF1",
            "2026-11-24T02:55:00-06:00",
        );
        let late = item("MRN778", "HOPPER^GRACE", "BF2", "2026-11-25T03:30:00Z");
        let q = |step: &[(Tag, VR, &str)]| query(&[], step);
        let date = tags::SCHEDULED_PROCEDURE_STEP_START_DATE;
        // 03:30 UTC on the 25th is 21:30 on the 24th in Chicago.
        let on_24th = q(&[(date, VR::DA, "20261124")]);
        assert!(
            on_24th.matches(&ada, &s.start(&ada), &s)
                && on_24th.matches(&late, &s.start(&late), &s)
        );
        assert!(!q(&[(date, VR::DA, "20261125-")]).matches(&late, &s.start(&late), &s));
        assert!(q(&[(tags::MODALITY, VR::CS, "US")]).matches(&ada, &s.start(&ada), &s));
        assert!(!q(&[(tags::MODALITY, VR::CS, "CT")]).matches(&ada, &s.start(&ada), &s));
        let station = |ae| q(&[(tags::SCHEDULED_STATION_AE_TITLE, VR::AE, ae)]);
        assert!(
            station("US01").matches(&ada, &s.start(&ada), &s),
            "no station_ae: any"
        );
        let us01 = site(Some("US01"));
        assert!(station("US01").matches(&ada, &us01.start(&ada), &us01));
        assert!(!station("US02").matches(&ada, &us01.start(&ada), &us01));
        let by_name = query(&[(tags::PATIENT_NAME, VR::PN, "hop*")], &[]);
        assert!(
            by_name.matches(&late, &s.start(&late), &s)
                && !by_name.matches(&ada, &s.start(&ada), &s)
        );
    }

    #[test]
    fn prefilters_only_narrow() {
        let q = query(
            &[
                (tags::PATIENT_ID, VR::LO, "MRN 7&"),
                (tags::PATIENT_NAME, VR::PN, "LOVELACE^A*"),
            ],
            &[],
        );
        assert_eq!(q.prefilter(), "patient_id=MRN%207%26&name=LOVELACE");
        let q = query(
            &[
                (tags::PATIENT_ID, VR::LO, "MRN*"),
                (tags::PATIENT_NAME, VR::PN, "*ADA"),
            ],
            &[],
        );
        assert_eq!(q.prefilter(), "");
    }

    #[test]
    fn answers_fill_the_requested_keys() {
        let s = site(Some("US01"));
        let ada = item("MRN777", "LOVELACE^ADA^K", "BF1", "2026-11-24T08:55:00Z");
        let q = query(
            &[
                (tags::PATIENT_NAME, VR::PN, ""),
                (tags::PATIENT_BIRTH_DATE, VR::DA, ""),
                (tags::STUDY_INSTANCE_UID, VR::UI, ""),
                (tags::PATIENT_WEIGHT, VR::DS, ""),
            ],
            &[
                (tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, ""),
                (tags::SCHEDULED_PROCEDURE_STEP_START_TIME, VR::TM, ""),
                (tags::SCHEDULED_STATION_AE_TITLE, VR::AE, ""),
            ],
        );
        let a = q.answer(&ada, &s.start(&ada), &s);
        assert_eq!(string(&a, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
        assert_eq!(string(&a, tags::PATIENT_NAME), "LOVELACE^ADA^K");
        assert_eq!(string(&a, tags::PATIENT_BIRTH_DATE), "19701210");
        assert_eq!(string(&a, tags::STUDY_INSTANCE_UID), study_uid("BF1"));
        assert_eq!(string(&a, tags::PATIENT_WEIGHT), "");
        assert!(a.get(tags::PATIENT_ID).is_none(), "not asked for");
        let st = step(&a).unwrap();
        assert_eq!(
            string(st, tags::SCHEDULED_PROCEDURE_STEP_START_DATE),
            "20261124"
        );
        assert_eq!(
            string(st, tags::SCHEDULED_PROCEDURE_STEP_START_TIME),
            "025500"
        );
        assert_eq!(string(st, tags::SCHEDULED_STATION_AE_TITLE), "US01");
    }

    #[test]
    fn study_uids_are_stable_valid_uids() {
        let uid = study_uid("BF000000000001");
        assert_eq!(uid, study_uid("BF000000000001"));
        assert_ne!(uid, study_uid("BF000000000002"));
        assert!(uid.len() <= 64 && uid.starts_with("2.25."));
        assert!(!uid["2.25.".len()..].starts_with('0'));
    }

    #[test]
    fn worklists_parse() {
        let items = parse_items(br#"{"items": [{"patient_id": "M1", "extra": 1}]}"#).unwrap();
        assert_eq!(items[0].patient_id, "M1");
        assert!(parse_items(b"[]").is_err());
    }
}
