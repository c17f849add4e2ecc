//! Acknowledgements: original mode (AA/AE/AR) and enhanced mode (CA/CE/CR
//! accept acknowledgements, with MSH-15/MSH-16 saying when one is wanted),
//! with an ERR segment on negative ones.

use super::{Message, MessageBuilder};

/// MSA-1 acknowledgement codes, original (A*) and enhanced (C*) mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    AA,
    AE,
    AR,
    CA,
    CE,
    CR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    pub fn parse(s: &str) -> Option<AckCode> {
        Some(match s {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }

    /// AA and CA; everything else asks the sender to act.
    pub fn is_positive(self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }

    /// The enhanced-mode (commit) code with the same meaning.
    pub fn to_commit(self) -> AckCode {
        match self {
            AckCode::AA | AckCode::CA => AckCode::CA,
            AckCode::AE | AckCode::CE => AckCode::CE,
            AckCode::AR | AckCode::CR => AckCode::CR,
        }
    }
}

/// MSH-15 / MSH-16 (HL7 table 0155): when the sender wants an ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCondition {
    /// `AL`
    Always,
    /// `NE`
    Never,
    /// `ER`: only on error.
    ErrorOnly,
    /// `SU`: only on success.
    SuccessOnly,
}

impl AckCondition {
    pub fn parse(s: &str) -> Option<AckCondition> {
        Some(match s.trim() {
            "AL" => AckCondition::Always,
            "NE" => AckCondition::Never,
            "ER" => AckCondition::ErrorOnly,
            "SU" => AckCondition::SuccessOnly,
            _ => return None,
        })
    }

    /// Whether an ACK with `code` is to be sent.
    pub fn wants(self, code: AckCode) -> bool {
        match self {
            AckCondition::Always => true,
            AckCondition::Never => false,
            AckCondition::ErrorOnly => !code.is_positive(),
            AckCondition::SuccessOnly => code.is_positive(),
        }
    }
}

/// The acknowledgement protocol a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// MSH-15 and MSH-16 empty: one application ACK (AA/AE/AR).
    Original,
    /// Enhanced mode: an accept ACK (CA/CE/CR) when `accept` wants it, and
    /// an application ACK when `application` wants it.
    Enhanced {
        accept: AckCondition,
        application: AckCondition,
    },
}

impl AckMode {
    /// Reads MSH-15 and MSH-16. An empty one in enhanced mode means
    /// `Always` (HL7's default); an unknown value counts as empty.
    pub fn of(msg: &Message) -> AckMode {
        let read = |p| msg.get_raw(p).and_then(AckCondition::parse);
        let (accept, application) = (read("MSH-15"), read("MSH-16"));
        if accept.is_none() && application.is_none() {
            return AckMode::Original;
        }
        AckMode::Enhanced {
            accept: accept.unwrap_or(AckCondition::Always),
            application: application.unwrap_or(AckCondition::Always),
        }
    }
}

/// ERR-4 severity (HL7 table 0516).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    Information,
    Fatal,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
            Severity::Fatal => "F",
        }
    }
}

/// What goes in the ERR segment of a negative ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// HL7 table 0357 code, e.g. 100 segment sequence error, 101 required
    /// field missing, 200 unsupported message type, 203 unsupported version,
    /// 207 application internal error.
    pub code: u16,
    pub severity: Severity,
    /// ERR-8, the user message.
    pub text: String,
    /// ERR-2 error location, e.g. `PID^1^3` (encoded text).
    pub location: Option<String>,
}

impl AckError {
    /// An error with severity `E`.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        AckError {
            code,
            severity: Severity::Error,
            text: text.into(),
            location: None,
        }
    }

    /// The table 0357 name of the code.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            0 => "Message accepted",
            100 => "Segment sequence error",
            101 => "Required field missing",
            102 => "Data type error",
            103 => "Table value not found",
            104 => "Value too long",
            200 => "Unsupported message type",
            201 => "Unsupported event code",
            202 => "Unsupported processing id",
            203 => "Unsupported version id",
            204 => "Unknown key identifier",
            205 => "Duplicate key identifier",
            206 => "Application record locked",
            _ => "Application internal error",
        }
    }
}

/// Builds the ACK for `original`: sender and receiver swapped, version and
/// processing id copied, MSH-9 `ACK^<trigger>^ACK`, MSA-1 `code`, MSA-2 the
/// original's control id, and MSH-10 `control_id`. With `error`, an ERR
/// segment carries ERR-2 (location), ERR-3 (code), ERR-4 (severity) and
/// ERR-8 (text), and for versions before 2.7 MSA-3 repeats the text.
pub fn ack(
    original: &Message,
    code: AckCode,
    error: Option<&AckError>,
    control_id: &str,
) -> Message {
    let get = |p: &str| original.get_raw(p).unwrap_or("").to_string();
    let trigger = original.get_raw("MSH-9.2").unwrap_or("");
    let version = get("MSH-12");
    let mut msg = MessageBuilder::new(&format!("ACK^{trigger}^ACK"))
        .delimiters(*original.delimiters())
        .sending(&get("MSH-5"), &get("MSH-6"))
        .receiving(&get("MSH-3"), &get("MSH-4"))
        .control_id(control_id)
        .processing_id(&get("MSH-11"))
        .version(&version)
        .build();
    let d = original.delimiters();
    let f = d.field as char;
    msg.append_segment(&format!("MSA{f}{}{f}{}", code.as_str(), get("MSH-10")));
    if let Some(e) = error {
        let pre_27 = version
            .split('.')
            .take(2)
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
            < vec![2, 7];
        if pre_27 && !e.text.is_empty() {
            let _ = msg.set("MSA-3", &e.text);
        }
        msg.append_segment("ERR");
        if let Some(loc) = &e.location {
            let _ = msg.set_raw("ERR-2", loc);
        }
        let c = d.component as char;
        let _ = msg.set_raw(
            "ERR-3",
            &format!("{}{c}{}{c}HL70357", e.code, e.code_name()),
        );
        let _ = msg.set("ERR-4", e.severity.as_str());
        if !e.text.is_empty() {
            let _ = msg.set("ERR-8", &e.text);
        }
    }
    msg
}

/// A negative ACK for input that could not be parsed. Whatever can be read
/// from a first segment that looks like `MSH|^~\&|…` (sender, receiver,
/// MSH-9, MSH-10, version) is used as [`ack`] would; the rest is left empty.
pub fn reject(raw: &str, code: AckCode, error: &AckError, control_id: &str) -> Message {
    let first = raw
        .trim_start_matches('\u{feff}')
        .split(['\r', '\n'])
        .next()
        .unwrap_or("");
    let fields: Vec<&str> = match first.strip_prefix("MSH|") {
        Some(rest) => rest.split('|').collect(),
        None => Vec::new(),
    };
    // fields[0] is MSH-2, so MSH-n is fields[n - 2]. Values are escaped,
    // so nothing read here can break the ACK's structure.
    let d = super::Delimiters::default();
    let msh = |n: usize| super::escape(fields.get(n - 2).copied().unwrap_or(""), &d).into_owned();
    let salvaged = MessageBuilder::new(&msh(9).replace("\\S\\", "^"))
        .sending(&msh(3), &msh(4))
        .receiving(&msh(5), &msh(6))
        .control_id(&msh(10))
        .version(&msh(12))
        .build();
    ack(&salvaged, code, Some(error), control_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(extra: &str) -> Message {
        Message::parse(&format!(
            "MSH|^~\\&|SND|SFAC|RCV|RFAC|20260101||ADT^A04^ADT_A01|C1|P|2.5.1{extra}\rPID|1\r"
        ))
        .unwrap()
    }

    #[test]
    fn acks_swap_parties_and_reference_the_original() {
        let a = ack(&original(""), AckCode::AA, None, "A1");
        assert_eq!(a.get("MSH-3").unwrap(), "RCV");
        assert_eq!(a.get("MSH-4").unwrap(), "RFAC");
        assert_eq!(a.get("MSH-5").unwrap(), "SND");
        assert_eq!(a.get("MSH-6").unwrap(), "SFAC");
        assert_eq!(a.get("MSH-9").unwrap(), "ACK^A04^ACK");
        assert_eq!(a.get("MSH-10").unwrap(), "A1");
        assert_eq!(a.get("MSH-11").unwrap(), "P");
        assert_eq!(a.get("MSH-12").unwrap(), "2.5.1");
        let segs: Vec<&str> = a.segments().map(|s| s.text).collect();
        assert_eq!(segs[1], "MSA|AA|C1");
        assert_eq!(segs.len(), 2);
    }

    #[test]
    fn negative_acks_carry_an_err_segment() {
        let mut e = AckError::new(207, "bad | thing");
        e.location = Some("PID^1^3".into());
        let n = ack(&original(""), AckCode::AE, Some(&e), "A2");
        let segs: Vec<&str> = n.segments().map(|s| s.text).collect();
        assert_eq!(segs[1], "MSA|AE|C1|bad \\F\\ thing");
        assert_eq!(
            segs[2],
            "ERR||PID^1^3|207^Application internal error^HL70357|E||||bad \\F\\ thing"
        );
        assert_eq!(n.get("ERR-8").unwrap(), "bad | thing");
        // From 2.7 on, MSA-3 is gone.
        let v27 = Message::parse("MSH|^~\\&|S|F|R|G|1||ORU^R01|C9|P|2.7\r").unwrap();
        let n = ack(&v27, AckCode::AR, Some(&AckError::new(203, "no")), "A3");
        assert_eq!(n.segments().nth(1).unwrap().text, "MSA|AR|C9");
    }

    #[test]
    fn rejects_unparseable_input_with_what_can_be_read() {
        let e = AckError::new(100, "bad delimiters");
        let r = reject(
            "MSH|^^|SND|SF|RCV|RF|2026||ADT^A01|C7|P|2.5\rPID",
            AckCode::AR,
            &e,
            "N1",
        );
        assert_eq!(r.get("MSH-3").unwrap(), "RCV");
        assert_eq!(r.get("MSH-5").unwrap(), "SND");
        assert_eq!(r.get("MSH-9").unwrap(), "ACK^A01^ACK");
        assert_eq!(r.get("MSA-1").unwrap(), "AR");
        assert_eq!(r.get("MSA-2").unwrap(), "C7");
        assert_eq!(r.get("ERR-3.1").unwrap(), "100");
        let r = reject("\u{0}garbage", AckCode::AR, &e, "N2");
        assert_eq!(r.get("MSA-2").unwrap(), "");
        assert_eq!(r.get("ERR-8").unwrap(), "bad delimiters");
    }

    #[test]
    fn reads_enhanced_mode_from_msh15_and_msh16() {
        assert_eq!(AckMode::of(&original("")), AckMode::Original);
        let m = original("|||AL|NE");
        assert_eq!(
            AckMode::of(&m),
            AckMode::Enhanced {
                accept: AckCondition::Always,
                application: AckCondition::Never
            }
        );
        let m = original("|||ER");
        let AckMode::Enhanced {
            accept,
            application,
        } = AckMode::of(&m)
        else {
            panic!()
        };
        assert!(!accept.wants(AckCode::CA) && accept.wants(AckCode::CE));
        assert_eq!(application, AckCondition::Always);
        assert!(AckCondition::SuccessOnly.wants(AckCode::AA));
        assert_eq!(AckCode::AE.to_commit(), AckCode::CE);
    }
}
