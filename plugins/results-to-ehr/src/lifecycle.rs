//! Which status may follow which: a report only moves forward
//! (attestation requested → final → corrected), and a client retrying a
//! post it already made does not send the ORUs twice.

use crate::exam::{Exam, Status};

/// What a posted exam is, next to the one stored for its accession number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// New, or a change: store it and send it.
    Change,
    /// The same status and content as the stored exam: a retry; nothing is
    /// sent again.
    Repeat,
}

/// Checks that `exam` may follow `previous` and gives it its
/// `finalized_ms` (kept from the first final result, or the time it was
/// reported if it is that one). The error is for the caller (a 409).
pub fn follow(previous: Option<&Exam>, exam: &mut Exam) -> Result<Step, String> {
    use Status::{AttestationRequested, Corrected, Final};
    let before = previous.map(|p| p.status);
    match (before, exam.status) {
        (Some(was @ (Final | Corrected)), AttestationRequested) => {
            return Err(format!(
                "status: the exam is already {}; it cannot go back to attestation-requested",
                was.as_str()
            ));
        }
        (Some(Corrected), Final) => {
            return Err(
                "status: the exam is already corrected; post status corrected to change it".into(),
            );
        }
        (None | Some(AttestationRequested), Corrected) => {
            return Err("status: no final result to correct".into());
        }
        _ => {}
    }
    if let Some(previous) = previous.filter(|p| p.status == exam.status && p.same_content(exam)) {
        exam.reported_at_ms = previous.reported_at_ms;
        exam.finalized_ms = previous.finalized_ms;
        return Ok(Step::Repeat);
    }
    if before == Some(Final) && exam.status == Final {
        return Err("status: post status corrected to change a final result".into());
    }
    exam.finalized_ms = match exam.status {
        AttestationRequested => None,
        Final | Corrected => previous
            .and_then(|p| p.finalized_ms)
            .or(Some(exam.reported_at_ms)),
    };
    Ok(Step::Change)
}
