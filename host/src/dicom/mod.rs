//! DICOM: the protocol pieces the worklist SCP
//! ([`crate::triggers::dicom`]) and the C-STORE destination
//! ([`crate::delivery`]) share. Associations and PDUs are `dicom-ul`'s;
//! data sets `dicom-object`'s; the DIMSE command sets ([`command`]), the
//! assembly of messages from P-DATA fragments ([`message`]) and the
//! worklist matching ([`worklist`]) are ours.

pub mod command;
pub mod message;
pub mod worklist;

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

/// Verification SOP class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// Modality Worklist Information Model – FIND.
pub const MODALITY_WORKLIST_FIND: &str = "1.2.840.10008.5.1.4.31";
/// Implicit VR little endian (the default transfer syntax).
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR little endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Reads a data set in the transfer syntax `ts` (a UID): implicit or
/// explicit VR little endian, whose element lengths are checked against
/// the bytes there are first (the parser would otherwise allocate what a
/// peer declares).
pub fn read_data_set(bytes: &[u8], ts: &str) -> Result<InMemDicomObject, String> {
    let ts = ts.trim_end_matches('\0');
    let explicit = match ts {
        IMPLICIT_VR_LE => false,
        EXPLICIT_VR_LE => true,
        _ => return Err(format!("transfer syntax {ts} is not supported")),
    };
    check_lengths(bytes, explicit, 0)?;
    let syntax = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| format!("transfer syntax {ts} is not supported"))?;
    InMemDicomObject::read_dataset_with_ts(bytes, syntax)
        .map_err(|e| format!("unreadable data set: {e}"))
}

/// Deepest nesting of sequences read.
const MAX_DEPTH: usize = 16;

/// Checks that every element (and sequence item) of a little-endian data
/// set declares no more bytes than follow it, walking into sequence values,
/// and that sequences nest at most [`MAX_DEPTH`] deep whether their lengths
/// are defined (walked into) or not (counted until their delimiters): the
/// parser reads nested sequences by recursion, on a worker's stack.
fn check_lengths(mut bytes: &[u8], explicit: bool, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
    }
    const UNDEFINED: usize = 0xFFFF_FFFF;
    // Undefined-length sequences and items open at this point of the walk.
    let mut open: usize = 0;
    while !bytes.is_empty() {
        let header = bytes
            .get(..8)
            .ok_or("data set ends inside an element header")?;
        let u16_at = |i: usize| usize::from(u16::from_le_bytes([header[i], header[i + 1]]));
        let u32_at =
            |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let (group, element) = (u16_at(0), u16_at(2));
        let long_vr = |vr: &[u8]| {
            matches!(
                vr,
                b"OB"
                    | b"OD"
                    | b"OF"
                    | b"OL"
                    | b"OV"
                    | b"OW"
                    | b"SQ"
                    | b"SV"
                    | b"UC"
                    | b"UN"
                    | b"UR"
                    | b"UT"
                    | b"UV"
            )
        };
        let short_vr = |vr: &[u8]| {
            matches!(
                vr,
                b"AE"
                    | b"AS"
                    | b"AT"
                    | b"CS"
                    | b"DA"
                    | b"DS"
                    | b"DT"
                    | b"FD"
                    | b"FL"
                    | b"IS"
                    | b"LO"
                    | b"LT"
                    | b"PN"
                    | b"SH"
                    | b"SL"
                    | b"SS"
                    | b"ST"
                    | b"TM"
                    | b"UI"
                    | b"UL"
                    | b"US"
            )
        };
        let (head, len) = if group == 0xFFFE || !explicit {
            (8, u32_at(header, 4))
        } else if long_vr(&header[4..6]) {
            let long = bytes
                .get(..12)
                .ok_or("data set ends inside an element header")?;
            (12, u32_at(long, 8))
        } else if short_vr(&header[4..6]) {
            (8, u16_at(6))
        } else {
            return Err(format!(
                "element ({group:04X},{element:04X}) has no known VR"
            ));
        };
        bytes = &bytes[head..];
        if group == 0xFFFE && matches!(element, 0xE00D | 0xE0DD) {
            // An item or sequence of undefined length ends.
            open = open.saturating_sub(1);
        }
        if len == UNDEFINED {
            // The value (items, or an item's elements) follows inline, up
            // to its delimiter: one level deeper until then.
            open += 1;
            if depth + open > MAX_DEPTH {
                return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
            }
            continue;
        }
        let Some(value) = bytes.get(..len) else {
            return Err(format!(
                "element ({group:04X},{element:04X}) declares {len} bytes; {} follow",
                bytes.len()
            ));
        };
        let is_item = |v: &[u8]| v.len() >= 4 && v[..4] == [0xFE, 0xFF, 0x00, 0xE0];
        if (group == 0xFFFE && element == 0xE000) || is_item(value) {
            check_lengths(value, explicit, depth + 1)?;
        }
        bytes = &bytes[len..];
    }
    Ok(())
}

/// An error with its causes, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Writes a data set in the transfer syntax `ts` (a UID).
pub fn write_data_set(obj: &InMemDicomObject, ts: &str) -> Result<Vec<u8>, String> {
    let syntax = TransferSyntaxRegistry
        .get(ts.trim_end_matches('\0'))
        .ok_or_else(|| format!("transfer syntax {ts} is not supported"))?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, syntax)
        .map_err(|e| format!("cannot write the data set: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! A corpus test of everything that reads a peer's bytes: PDUs, command
    //! sets, message assembly and identifiers, fed valid inputs cut at
    //! every length and then mutated with a seeded generator. Nothing may
    //! panic; everything either reads or is an error.

    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, read_pdu, write_pdu};

    #[test]
    fn deeply_nested_sequences_are_refused_before_parsing() {
        // (0040,0100) SQ of undefined length holding an item of undefined
        // length, 10,000 levels deep, then every delimiter: ~200 KB, which
        // a recursive parser would overflow its stack on.
        let sq = [
            0x40, 0x00, 0x00, 0x01, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let item = [0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
        let item_end = [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0];
        let sq_end = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        let nested = |levels: usize| {
            let mut bytes = Vec::new();
            for _ in 0..levels {
                bytes.extend(sq);
                bytes.extend(item);
            }
            for _ in 0..levels {
                bytes.extend(item_end);
                bytes.extend(sq_end);
            }
            bytes
        };
        let deep = read_data_set(&nested(10_000), EXPLICIT_VR_LE).unwrap_err();
        assert!(deep.contains("nested deeper"), "{deep}");
        // A few levels, and many siblings one after the other, are fine.
        assert!(check_lengths(&nested(3), true, 0).is_ok());
        let siblings = nested(1).repeat(1_000);
        assert!(check_lengths(&siblings, true, 0).is_ok());
    }

    fn identifier() -> Vec<u8> {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from("LOVE*"),
        ));
        let mut step = InMemDicomObject::new_empty();
        step.put(DataElement::new(
            tags::SCHEDULED_PROCEDURE_STEP_START_DATE,
            VR::DA,
            PrimitiveValue::from("20261101-20261130"),
        ));
        obj.put(DataElement::new(
            tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![step]),
        ));
        write_data_set(&obj, EXPLICIT_VR_LE).unwrap()
    }

    fn corpus() -> Vec<Vec<u8>> {
        let find = command::request(command::C_FIND_RQ, 1, MODALITY_WORKLIST_FIND, true);
        let id = identifier();
        let pdu = Pdu::PData {
            data: vec![
                PDataValue {
                    presentation_context_id: 1,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: find.clone(),
                },
                PDataValue {
                    presentation_context_id: 1,
                    value_type: PDataValueType::Data,
                    is_last: true,
                    data: id.clone(),
                },
            ],
        };
        let mut wire = Vec::new();
        write_pdu(&mut wire, &pdu).unwrap();
        let mut implicit = Vec::new();
        let obj = read_data_set(&id, EXPLICIT_VR_LE).unwrap();
        implicit.extend(write_data_set(&obj, IMPLICIT_VR_LE).unwrap());
        vec![wire, find, id, implicit]
    }

    /// Reads `bytes` every way a peer's bytes are read.
    fn read_all_ways(bytes: &[u8]) {
        let _ = read_pdu(bytes, 16_384, true);
        let _ = command::parse(bytes);
        let _ = read_data_set(bytes, IMPLICIT_VR_LE);
        let _ = read_data_set(bytes, EXPLICIT_VR_LE);
        if let Ok(obj) = read_data_set(bytes, EXPLICIT_VR_LE) {
            let _ = worklist::Query::new(obj).prefilter();
        }
        let mut assembler = message::Assembler::new(4096);
        for (i, chunk) in bytes.chunks(7).enumerate() {
            let _ = assembler.push(PDataValue {
                presentation_context_id: 1,
                value_type: if i == 0 {
                    PDataValueType::Command
                } else {
                    PDataValueType::Data
                },
                is_last: i % 2 == 0,
                data: chunk.to_vec(),
            });
        }
    }

    #[test]
    fn the_corpus_reads() {
        let corpus = corpus();
        assert!(matches!(
            read_pdu(&corpus[0][..], 16_384, true),
            Ok(Some(Pdu::PData { .. }))
        ));
        assert!(command::parse(&corpus[1]).is_ok());
        assert!(read_data_set(&corpus[2], EXPLICIT_VR_LE).is_ok());
        assert!(read_data_set(&corpus[3], IMPLICIT_VR_LE).is_ok());
    }

    #[test]
    fn declared_lengths_beyond_the_data_are_refused() {
        // (0010,0010) PN declaring 0xFFF0 bytes, explicit and implicit.
        let explicit = [0x10, 0, 0x10, 0, b'P', b'N', 0xF0, 0xFF, b'A', b'B'];
        let e = read_data_set(&explicit, EXPLICIT_VR_LE).unwrap_err();
        assert!(e.contains("declares 65520 bytes; 2 follow"), "{e}");
        let implicit = [0x10, 0, 0x10, 0, 0xF0, 0xFF, 0xFF, 0x7F, b'A', b'B'];
        assert!(read_data_set(&implicit, IMPLICIT_VR_LE).is_err());
        assert!(read_data_set(&[], "1.2.840.10008.1.2.4.50").is_err());
    }

    #[test]
    fn truncated_inputs_never_panic() {
        for input in corpus() {
            for cut in 0..input.len() {
                read_all_ways(&input[..cut]);
            }
        }
    }

    #[test]
    fn mutated_and_garbage_inputs_never_panic() {
        // xorshift: reproducible without a dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let corpus = corpus();
        for round in 0..5_000 {
            let mut input = corpus[round % corpus.len()].clone();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % input.len().max(1);
                match next() % 4 {
                    0 if !input.is_empty() => input[at] = next() as u8,
                    1 if !input.is_empty() => input[at] ^= 0x80,
                    2 => input.insert(at.min(input.len()), next() as u8),
                    _ => input.truncate(at),
                }
            }
            read_all_ways(&input);
        }
        for len in 0..512 {
            let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            read_all_ways(&garbage);
        }
    }
}
