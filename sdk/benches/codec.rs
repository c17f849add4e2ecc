//! HL7 codec benchmark; prints numbers, asserts nothing.
//!
//! `cargo bench -p interlink-sdk --bench codec`
//!
//! A mix of ADT^A01, ORU^R01 (25 OBX) and SIU^S12 messages written for this
//! benchmark, run through this crate and, in the same run, through the
//! `hl7-parser` crate as a reference:
//! - parse-and-index: parse a message so its values can be located;
//! - parse-and-read-10: parse, then read ten values (ours decoded, the
//!   reference's raw, which favours the reference);
//! - encode: parse, set MSH-10, write the message out (the reference: build
//!   from the parsed message and render).

use std::hint::black_box;
use std::time::{Duration, Instant};

const PATHS: [&str; 10] = [
    "MSH-3", "MSH-7", "MSH-9.1", "MSH-9.2", "MSH-10", "MSH-12", "PID-3.1", "PID-5.1", "PID-5.2",
    "PID-7",
];
const QUERIES: [&str; 10] = [
    "MSH.3", "MSH.7", "MSH.9.1", "MSH.9.2", "MSH.10", "MSH.12", "PID.3.1", "PID.5.1", "PID.5.2",
    "PID.7",
];

fn adt(i: usize) -> String {
    format!(
        "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|INTERLINK|BF|20260101120000-0600||ADT^A01^ADT_A01|MSG{i:06}|P|2.5.1\r\
         EVN|A01|20260101120000-0600||ADM^Admit^HL70062|1234^WELBY^MARCUS^J^^DR\r\
         PID|1||{i:08}^^^GHH^MR~999-99-{i:04}^^^USSSA^SS||O'BRIEN^MAUREEN^ANN^^MRS||19620320|F|||1200 N ELM STREET^^GREENSBORO^NC^27401-1020^USA^H||(555)555-2004^PRN^PH|(555)555-2005^WPN^PH||S||PATID{i}^2^M10^ADT1^AN^A|444-33-3333\r\
         NK1|1|O'BRIEN^JOHN^L|SPO^Spouse^HL70063||(555)555-3003\r\
         PV1|1|I|2000^2012^01^GHH||||004777^LEBAUER^SIDNEY^J^^DR|||SUR||||ADM|A0|||||||||||||||||||||||||20260101115000\r\
         AL1|1|DA|1605^Penicillin^L|SV|Hives\r\
         DG1|1|I10|R07.9^Chest pain, unspecified^I10||20260101|A\r"
    )
}

fn oru(i: usize) -> String {
    let mut s = format!(
        "MSH|^~\\&|LAB|GHH LAB|INTERLINK|BF|20260101130000||ORU^R01^ORU_R01|LAB{i:06}|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
         PID|1||{i:08}^^^GHH^MR||ZHANG^WEI^^^MR||19791202|M\r\
         ORC|RE|PLC{i}|FIL{i}||CM\r\
         OBR|1|PLC{i}|FIL{i}|24323-8^Comprehensive metabolic panel^LN|||20260101120500|||||||20260101121000||1234^WELBY^MARCUS||||||20260101125900|||F\r"
    );
    for k in 1..=25 {
        s.push_str(&format!(
            "OBX|{k}|NM|{}-{k}^Analyte {k}\\S\\sub^LN||{}.{k}|mmol/L^millimole per liter^UCUM|3.5-5.1|N|||F|||20260101125900\r",
            2000 + k,
            k % 9
        ));
    }
    s.push_str("NTE|1|L|Specimen slightly hemolyzed.\\.br\\Repeat if clinically indicated.\r");
    s
}

fn siu(i: usize) -> String {
    format!(
        "MSH|^~\\&|SCHED|CLINIC|INTERLINK|BF|20260102080000||SIU^S12^SIU_S12|SCH{i:06}|P|2.5.1\r\
         SCH|APT{i}|APT{i}F|||||ROUTINE^Routine^HL70276|FOLLOWUP|30|MIN|^^30^20260110093000^20260110100000|||||1234^WELBY^MARCUS||||1234^WELBY^MARCUS|||||Booked\r\
         PID|1||{i:08}^^^GHH^MR||GARCIA^LUIS^A||19880714|M|||55 OAK AVE^^DURHAM^NC^27701\r\
         PV1|1|O|CLINIC^^^BF\r\
         RGS|1|A\r\
         AIS|1|A|93000^ECG^CPT|20260110093000|0|MIN|30|MIN\r\
         AIP|1|A|1234^WELBY^MARCUS|CARDIO\r\
         AIL|1|A|ROOM3^^^BF|EXAM\r"
    )
}

struct Run {
    label: &'static str,
    ours: Duration,
    reference: Option<Duration>,
}

fn time(messages: &[String], rounds: usize, mut f: impl FnMut(&str)) -> Duration {
    for m in messages.iter().take(50) {
        f(m);
    }
    let start = Instant::now();
    for _ in 0..rounds {
        for m in messages {
            f(m);
        }
    }
    start.elapsed() / rounds as u32
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut messages = Vec::new();
    for i in 0..300 {
        messages.push(match i % 3 {
            0 => adt(i),
            1 => oru(i),
            _ => siu(i),
        });
    }
    let bytes: usize = messages.iter().map(String::len).sum();
    let rounds = 100;
    use interlink_sdk::hl7::Message;

    let runs = [
        Run {
            label: "parse-and-index",
            ours: time(&messages, rounds, |m| {
                black_box(Message::parse(m).unwrap());
            }),
            reference: Some(time(&messages, rounds, |m| {
                black_box(hl7_parser::Message::parse(m).unwrap());
            })),
        },
        Run {
            label: "parse-and-read-10",
            ours: time(&messages, rounds, |m| {
                let msg = Message::parse(m).unwrap();
                for p in PATHS {
                    black_box(msg.get(p));
                }
            }),
            reference: Some(time(&messages, rounds, |m| {
                let msg = hl7_parser::Message::parse(m).unwrap();
                for q in QUERIES {
                    black_box(msg.query(q).map(|r| r.raw_value()));
                }
            })),
        },
        Run {
            label: "parse-set-encode",
            ours: time(&messages, rounds, |m| {
                let mut msg = Message::parse(m).unwrap();
                msg.set("MSH-10", "NEW1").unwrap();
                black_box(msg.encode());
            }),
            reference: Some(time(&messages, rounds, |m| {
                let msg = hl7_parser::Message::parse(m).unwrap();
                let builder = hl7_parser::builder::MessageBuilder::from(&msg);
                black_box(builder.to_string());
            })),
        },
    ];

    let n = messages.len() as f64;
    println!(
        "{} messages (ADT^A01, ORU^R01 with 25 OBX, SIU^S12), {bytes} bytes, {rounds} rounds",
        messages.len()
    );
    println!(
        "{:<20} {:>12} {:>14} {:>12} {:>14} {:>9}",
        "", "ours MB/s", "ours msg/s", "ref MB/s", "ref msg/s", "speed-up"
    );
    for r in &runs {
        let mbs = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
        let mps = |d: Duration| n / d.as_secs_f64();
        let (rm, rp, x) = match r.reference {
            Some(d) => (
                format!("{:.0}", mbs(d)),
                format!("{:.0}", mps(d)),
                format!("{:.1}x", d.as_secs_f64() / r.ours.as_secs_f64()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<20} {:>12.0} {:>14.0} {:>12} {:>14} {:>9}",
            r.label,
            mbs(r.ours),
            mps(r.ours),
            rm,
            rp,
            x
        );
    }
}
