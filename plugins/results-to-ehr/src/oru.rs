//! Builds the ORU^R01 one EHR gets for an exam, with the SDK's HL7 model:
//! `MessageBuilder` for the MSH, `Message::set` for every other field (it
//! escapes `|^~\&` in the values), `Timestamp::in_zone` for local times.
//!
//! ```text
//! MSH|^~\&|INTERLINK||||20261124034500-0600||ORU^R01^ORU_R01|RTE000000001|P|2.5.1
//! PID|1||MRN777||LOVELACE^ADA^K||19701210|F
//! PV1|1|U|||||||||||||||||V123
//! OBR|1|BF000000000042|BF000000000042|US-LUNG^Lung ultrasound|||20261124031500-0600|...|F|...
//! OBX|1|TX|US-LUNG^Lung ultrasound|1|Findings...||||||F
//! ```
//!
//! MSH-4 and MSH-6 are left empty: the host writes the destination's
//! `sending_facility`/`receiving_facility` on delivery.

use interlink_sdk::hl7::{self, Message, MessageBuilder, Timestamp};

use crate::exam::Exam;
use crate::settings::{Ehr, ReportFormat, Settings};

/// What differs between two ORUs of the same exam.
pub struct Addressing<'a> {
    pub ehr: &'a Ehr,
    /// OBR-25 and OBX-11: `P`, `F` or `C`.
    pub result_status: &'a str,
    /// MSH-10.
    pub control_id: &'a str,
    /// MSH-7.
    pub now_ms: u64,
}

/// The ORU^R01 for `exam` as `to` gets it.
pub fn build(exam: &Exam, settings: &Settings, to: &Addressing) -> Result<String, hl7::Error> {
    let tz = to.ehr.timezone.as_deref();
    let mut msg = MessageBuilder::new("ORU^R01^ORU_R01")
        .sending(&settings.sending_application, "")
        .timestamp(&local_time(to.now_ms, tz)?)
        .control_id(to.control_id)
        .build();

    msg.set("PID-1", "1")?;
    msg.set("PID-3.1", &exam.patient_id)?;
    set_components(&mut msg, "PID-5", &exam.patient_name)?;
    msg.set("PID-7", &exam.birth_date)?;
    msg.set("PID-8", &exam.sex)?;

    msg.set("PV1-1", "1")?;
    // Patient class is required; the exam does not say, so "unknown".
    msg.set("PV1-2", "U")?;
    msg.set("PV1-19", &exam.visit_number)?;

    msg.set("OBR-1", "1")?;
    msg.set("OBR-2", &exam.accession)?;
    msg.set("OBR-3", &exam.accession)?;
    msg.set("OBR-4.1", &settings.procedure_id)?;
    msg.set("OBR-4.2", &settings.procedure_description)?;
    msg.set("OBR-7", &local_time(exam.exam_time_ms, tz)?)?;
    msg.set("OBR-22", &local_time(exam.reported_at_ms, tz)?)?;
    msg.set("OBR-25", to.result_status)?;
    // OBR-32 (principal result interpreter) is an NDL whose first
    // component is a CNN: ID & family & given, so the performer's
    // components go one subcomponent to the right.
    for (i, part) in exam.performer.split('^').enumerate() {
        msg.set(&format!("OBR-32.1.{}", i + 2), part)?;
    }

    let lines: Vec<&str> = exam.report.lines().collect();
    match settings.report_format {
        ReportFormat::Tx => {
            for (i, line) in lines.iter().enumerate() {
                set_obx(&mut msg, settings, to, i + 1, "TX")?;
                msg.set(&format!("OBX[{}]-5", i + 1), line)?;
            }
            if lines.is_empty() {
                set_obx(&mut msg, settings, to, 1, "TX")?;
            }
        }
        ReportFormat::Ft => {
            set_obx(&mut msg, settings, to, 1, "FT")?;
            // Each line escaped on its own, then joined with the FT line
            // break, which must stay an escape sequence: `set_raw`.
            let text: Vec<String> = lines
                .iter()
                .map(|l| hl7::escape(l, msg.delimiters()).into_owned())
                .collect();
            msg.set_raw("OBX[1]-5", &text.join("\\.br\\"))?;
        }
    }
    Ok(msg.encode())
}

/// OBX number `n` without its value: set id, value type, the procedure as
/// the observation, sub-id 1 (all lines are one report), result status.
fn set_obx(
    msg: &mut Message,
    settings: &Settings,
    to: &Addressing,
    n: usize,
    value_type: &str,
) -> Result<(), hl7::Error> {
    let obx = format!("OBX[{n}]");
    msg.set(&format!("{obx}-1"), &n.to_string())?;
    msg.set(&format!("{obx}-2"), value_type)?;
    msg.set(&format!("{obx}-3.1"), &settings.procedure_id)?;
    msg.set(&format!("{obx}-3.2"), &settings.procedure_description)?;
    msg.set(&format!("{obx}-4"), "1")?;
    msg.set(&format!("{obx}-11"), to.result_status)
}

/// Sets `FAMILY^GIVEN^…` as the components of `field`, each escaped.
fn set_components(msg: &mut Message, field: &str, value: &str) -> Result<(), hl7::Error> {
    for (i, part) in value.split('^').enumerate() {
        msg.set(&format!("{field}.{}", i + 1), part)?;
    }
    Ok(())
}

/// `unix_ms` as an HL7 timestamp in the IANA zone `tz` (UTC without one),
/// with its offset: `20261124031500-0600`.
pub fn local_time(unix_ms: u64, tz: Option<&str>) -> Result<String, hl7::Error> {
    Ok(Timestamp::at_ms(unix_ms as i64, tz)?.to_string())
}
