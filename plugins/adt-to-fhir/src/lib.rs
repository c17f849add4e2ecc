//! adt-to-fhir: the most common job of a modern interface engine, HL7 v2
//! in and FHIR out. ADT^A01/A04/A08 become a FHIR R4 `Patient` (a
//! conditional update on the patient's identifier) and, when PV1 names the
//! visit, an `Encounter`; A03 finishes the Encounter; ORU^R01 becomes a
//! transaction `Bundle` of `Observation`s. Everything goes to one `http`
//! destination, the FHIR server's base URL, which the host delivers to
//! durably (retries, `Retry-After`, dead letters, an idempotency key).
//!
//! Modules: [`settings`] (checked at load and reload), [`fhir`] (values,
//! dates, identifiers, the request), [`patient`], [`encounter`],
//! [`observation`].

pub mod encounter;
pub mod fhir;
pub mod observation;
pub mod patient;
pub mod settings;

use interlink_sdk::prelude::*;

use encounter::Event as Visit;
use settings::Settings;

struct AdtToFhir;

impl Bot for AdtToFhir {
    fn manifest() -> Manifest {
        Manifest::new("adt-to-fhir", env!("CARGO_PKG_VERSION"))
            .description("Sends ADT as FHIR Patient and Encounter, ORU^R01 as Observations")
            .subscribe(Subscription::hl7([
                "ADT^A01", "ADT^A03", "ADT^A04", "ADT^A08", "ORU^R01",
            ]))
    }

    fn check_settings() -> Result<(), String> {
        Settings::load().map(|_| ())
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        let Event::Hl7(input) = event else {
            return Ok(Reply::default());
        };
        // check_settings passed before the host let this event through.
        let settings = Settings::load().map_err(BotError::fatal)?;
        let msg = Message::parse(&input.raw)?;
        let kind = msg.get("MSH-9.1").unwrap_or_default().into_owned();
        let trigger = msg.get("MSH-9.2").unwrap_or_default().into_owned();
        let sent = match (kind.as_str(), trigger.as_str()) {
            ("ADT", "A01") => adt(&msg, &settings, Visit::Admit),
            ("ADT", "A04") => adt(&msg, &settings, Visit::Register),
            ("ADT", "A08") => adt(&msg, &settings, Visit::Update),
            ("ADT", "A03") => adt(&msg, &settings, Visit::Discharge),
            ("ORU", "R01") => oru(&msg, &settings),
            _ => Ok(Vec::new()),
        }
        .map_err(BotError::fatal)?;
        // Types and control ids only: no patient data in the log.
        let names: Vec<&str> = sent.iter().map(|(name, _)| *name).collect();
        host::info(&format!(
            "{kind}^{trigger} {}: {}",
            msg.control_id(),
            if names.is_empty() {
                "nothing to send".to_string()
            } else {
                names.join(", ")
            }
        ));
        Ok(sent
            .into_iter()
            .fold(Reply::default(), |reply, (_, out)| reply.push(out)))
    }
}

export_bot!(AdtToFhir);

/// What an ADT event sends: the Patient (not for a discharge) and, when
/// PV1-19 names the visit, the Encounter; each as enabled by `resources`.
fn adt(
    msg: &Message,
    settings: &Settings,
    visit: Visit,
) -> Result<Vec<(&'static str, Outbound)>, String> {
    let patient = fhir::patient_id(msg, settings)?;
    let mut sent = Vec::new();
    if settings.resources.patient && visit != Visit::Discharge {
        let resource = patient::build(msg, settings, &patient)?;
        let path = patient.search("Patient");
        sent.push((
            "Patient",
            fhir::request(settings, "PUT", Some(&path), &resource, &patient),
        ));
    }
    if settings.resources.encounter
        && let Some(id) = encounter::visit_id(msg, settings)
    {
        let resource = encounter::build(msg, settings, visit, &id, &patient);
        let path = id.search("Encounter");
        sent.push((
            "Encounter",
            fhir::request(settings, "PUT", Some(&path), &resource, &patient),
        ));
    }
    Ok(sent)
}

/// What an ORU sends: one transaction Bundle of its Observations, posted
/// to the server's base URL.
fn oru(msg: &Message, settings: &Settings) -> Result<Vec<(&'static str, Outbound)>, String> {
    if !settings.resources.observation {
        return Ok(Vec::new());
    }
    let patient = fhir::patient_id(msg, settings)?;
    Ok(observation::bundle(msg, settings, &patient)
        .map(|bundle| {
            (
                "Bundle",
                fhir::request(settings, "POST", None, &bundle, &patient),
            )
        })
        .into_iter()
        .collect())
}
