//! Property tests of the HL7 codec: escaping round-trips for any text and
//! any delimiters, parsed messages encode back to their input (modulo the
//! documented normalisations), a value set at a path reads back, and
//! messages generated from an HL7 grammar (random delimiters, segments,
//! repetitions, components, escapes), intact or corrupted, go through
//! parse, `get`, `set` and `encode` without a panic.

use std::cell::Cell;

use interlink_sdk::hl7::{Delimiters, Message, escape, unescape};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseResult, TestRunner};

/// Five or six distinct delimiter characters, as MSH-1/MSH-2 would declare.
fn delimiters() -> impl Strategy<Value = Delimiters> {
    let pool: Vec<char> = "|^~\\&#$*@!%+:;/".chars().collect();
    (
        proptest::sample::subsequence(pool, 6).prop_shuffle(),
        any::<bool>(),
    )
        .prop_map(|(chars, trunc)| {
            let n = if trunc { 6 } else { 5 };
            let header: String =
                format!("MSH{}{}", chars[0], chars[1..n].iter().collect::<String>());
            Delimiters::from_msh(format!("{header}{}", chars[0]).as_bytes())
                .unwrap()
                .0
        })
}

/// What `Message::encode` is documented to return for accepted input.
fn normalise(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split(['\r', '\n'])
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}\r"))
        .collect()
}

fn leaf_path() -> impl Strategy<Value = String> {
    leaf_path_in(&["PID", "OBX", "ZZZ"])
}

/// A path into one of `segments`, down to a random level.
fn leaf_path_in(segments: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(segments),
        1usize..3,
        1usize..12,
        1usize..4,
        prop::option::of((1usize..5, prop::option::of(1usize..4))),
    )
        .prop_map(|(seg, occ, field, rep, deeper)| {
            let mut p = format!("{seg}[{occ}]-{field}[{rep}]");
            if let Some((c, s)) = deeper {
                p.push_str(&format!(".{c}"));
                if let Some(s) = s {
                    p.push_str(&format!(".{s}"));
                }
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn escape_then_unescape_is_identity(text in any::<String>(), d in delimiters()) {
        let escaped = escape(&text, &d);
        let back = unescape(&escaped, &d).into_owned();
        prop_assert_eq!(back, text);
    }

    #[test]
    fn escaped_text_holds_no_bare_delimiters(text in any::<String>(), d in delimiters()) {
        let e = escape(&text, &d);
        let bare = [d.field, d.component, d.repetition, d.subcomponent, b'\r', b'\n'];
        prop_assert!(!e.bytes().any(|b| bare.contains(&b) || Some(b) == d.truncation));
    }

    #[test]
    fn accepted_messages_encode_back_to_their_input(
        body in "[A-Z0-9|^~\\\\&\r\n \"é#]{0,300}",
        bom in any::<bool>(),
    ) {
        let text = format!("{}MSH|^~\\&|{body}", if bom { "\u{feff}" } else { "" });
        if let Ok(m) = Message::parse(&text) {
            prop_assert_eq!(m.encode(), normalise(&text));
            prop_assert_eq!(Message::parse(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn a_value_set_at_a_path_reads_back(
        sets in prop::collection::vec((leaf_path(), any::<String>()), 1..12),
    ) {
        let mut m = Message::parse("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1\r").unwrap();
        for (path, value) in &sets {
            m.set(path, value).unwrap();
            prop_assert_eq!(m.get(path).unwrap(), value.as_str(), "{}", path);
        }
        prop_assert_eq!(Message::parse(&m.encode()).unwrap(), m);
    }
}

/// One piece of a leaf value in a generated message; escapes are rendered
/// with the message's escape character.
#[derive(Debug, Clone)]
enum Atom {
    Text(String),
    /// `\F\`, `\X0D0A\`, `\.br\`, … (`name` between two escape characters).
    Escape(&'static str),
    /// An escape character with no closing one.
    Unterminated(&'static str),
    /// The truncation character (as a literal when none is declared).
    Truncation,
}

/// field → repetitions → components → subcomponents → atoms.
type Field = Vec<Vec<Vec<Vec<Atom>>>>;

fn atom() -> impl Strategy<Value = Atom> {
    let escapes = vec![
        "F", "S", "T", "R", "E", "X0D0A", "XZZ", "H", "N", ".br", ".sp2", "C2842", "Zcustom", "",
    ];
    prop_oneof![
        6 => "[A-Za-z0-9 .\\-éü中\"]{0,8}".prop_map(Atom::Text),
        2 => prop::sample::select(escapes.clone()).prop_map(Atom::Escape),
        1 => prop::sample::select(escapes).prop_map(Atom::Unterminated),
        1 => Just(Atom::Truncation),
    ]
}

fn field() -> impl Strategy<Value = Field> {
    let sub = prop::collection::vec(atom(), 0..3);
    let comp = prop::collection::vec(sub, 1..3);
    let rep = prop::collection::vec(comp, 1..4);
    prop::collection::vec(rep, 1..3)
}

/// A segment: its name (usually a known one, sometimes odd) and fields.
fn segment() -> impl Strategy<Value = (String, Vec<Field>)> {
    let name = prop_oneof![
        5 => prop::sample::select(vec!["PID", "OBX", "NTE", "ZZZ", "EVN", "MSH"]).prop_map(String::from),
        1 => "[A-Z0-9]{1,4}",
    ];
    (name, prop::collection::vec(field(), 0..10))
}

/// A message from the grammar: its text, and its segments' names and
/// fields (MSH's from MSH-3 on) for choosing paths that exist.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
    segments: Vec<(String, Vec<Field>)>,
}

/// A message from the grammar, rendered with random delimiters and segment
/// terminators (`\r`, `\n`, `\r\n`), sometimes behind a BOM.
fn generated_message() -> impl Strategy<Value = Generated> {
    let pool: Vec<char> = "|^~\\&#$*@!%+:;/".chars().collect();
    let terminator = prop::sample::select(vec!["\r", "\n", "\r\n"]);
    (
        proptest::sample::subsequence(pool, 6).prop_shuffle(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(field(), 0..14),
        prop::collection::vec((segment(), terminator.clone()), 0..6),
        terminator,
    )
        .prop_map(|(chars, truncation, bom, msh, segments, msh_end)| {
            let d = &chars[..if truncation { 6 } else { 5 }];
            let mut text = String::from(if bom { "\u{feff}" } else { "" });
            text.push_str("MSH");
            text.extend(d);
            for f in &msh {
                text.push(d[0]);
                render_field(f, d, &mut text);
            }
            text.push_str(msh_end);
            for ((name, fields), end) in &segments {
                text.push_str(name);
                for f in fields {
                    text.push(d[0]);
                    render_field(f, d, &mut text);
                }
                text.push_str(end);
            }
            let segments = std::iter::once(("MSH".to_string(), msh))
                .chain(segments.into_iter().map(|(s, _)| s))
                .collect();
            Generated { text, segments }
        })
}

/// Picks an element of a generated message, down to `depth` levels below
/// the field (0: the repetition, 1: a component, 2: a subcomponent).
#[derive(Debug, Clone)]
struct Pick {
    segment: prop::sample::Index,
    field: prop::sample::Index,
    repetition: prop::sample::Index,
    component: prop::sample::Index,
    subcomponent: prop::sample::Index,
    depth: u8,
}

fn pick() -> impl Strategy<Value = Pick> {
    (any::<[prop::sample::Index; 5]>(), 0u8..3).prop_map(|(i, depth)| Pick {
        segment: i[0],
        field: i[1],
        repetition: i[2],
        component: i[3],
        subcomponent: i[4],
        depth,
    })
}

/// The path of the element `pick` chooses in `m`, if it names one
/// (segments whose name is not three letters or digits, later MSH segments
/// and field-less segments are not picked).
fn existing_path(m: &Generated, pick: &Pick) -> Option<String> {
    let index = pick.segment.index(m.segments.len());
    let (name, fields) = &m.segments[index];
    let id = name.get(..3)?;
    if fields.is_empty() || (id == "MSH" && index > 0) {
        return None;
    }
    // Segments are found by their first three characters.
    let occurrence = m.segments[..=index]
        .iter()
        .filter(|(n, _)| n.starts_with(id))
        .count();
    let f = pick.field.index(fields.len());
    let number = if index == 0 { f + 3 } else { f + 1 };
    let reps = &fields[f];
    let r = pick.repetition.index(reps.len());
    let mut path = format!("{id}[{occurrence}]-{number}[{}]", r + 1);
    if pick.depth > 0 {
        let c = pick.component.index(reps[r].len());
        path.push_str(&format!(".{}", c + 1));
        if pick.depth > 1 {
            let s = pick.subcomponent.index(reps[r][c].len());
            path.push_str(&format!(".{}", s + 1));
        }
    }
    Some(path)
}

/// Writes `field` with delimiters `d` (field, component, repetition,
/// escape, subcomponent, and maybe truncation, as in MSH-1/MSH-2).
fn render_field(field: &Field, d: &[char], out: &mut String) {
    let (component, repetition, esc, subcomponent) = (d[1], d[2], d[3], d[4]);
    for (r, rep) in field.iter().enumerate() {
        if r > 0 {
            out.push(repetition);
        }
        for (c, comp) in rep.iter().enumerate() {
            if c > 0 {
                out.push(component);
            }
            for (s, sub) in comp.iter().enumerate() {
                if s > 0 {
                    out.push(subcomponent);
                }
                for atom in sub {
                    match atom {
                        Atom::Text(t) => out.push_str(t),
                        Atom::Escape(name) => {
                            out.push(esc);
                            out.push_str(name);
                            out.push(esc);
                        }
                        Atom::Unterminated(name) => {
                            out.push(esc);
                            out.push_str(name);
                        }
                        Atom::Truncation => out.push(d.get(5).copied().unwrap_or('#')),
                    }
                }
            }
        }
    }
}

/// How a generated message is damaged before parsing.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// Arbitrary text inserted at a position.
    Insert(prop::sample::Index, String),
    /// Cut off at a position.
    Truncate(prop::sample::Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        2 => (any::<prop::sample::Index>(), any::<String>()).prop_map(|(i, s)| Damage::Insert(i, s)),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
    ]
}

/// The nearest char boundary at or before `index`'s position in `text`.
fn boundary(text: &str, index: &prop::sample::Index) -> usize {
    let mut at = index.index(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// How far the cases of [`generated_messages_go_through_parse_get_set_encode`] got.
#[derive(Default)]
struct Reached {
    cases: Cell<usize>,
    parsed: Cell<usize>,
    found: Cell<usize>,
    set: Cell<usize>,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

/// One case: an intact generated message must parse and encode back to its
/// input; any message that parses answers `get`, and a value `set` at a
/// path reads back and survives `encode` and a second parse.
fn parse_get_set_encode(
    text: &str,
    damage: &Damage,
    path: &str,
    value: &str,
    reached: &Reached,
) -> TestCaseResult {
    bump(&reached.cases);
    let text = match damage {
        Damage::None => text.to_string(),
        Damage::Insert(i, s) => {
            let at = boundary(text, i);
            format!("{}{s}{}", &text[..at], &text[at..])
        }
        Damage::Truncate(i) => text[..boundary(text, i)].to_string(),
    };
    let parsed = Message::parse(&text);
    if matches!(damage, Damage::None) {
        prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed.err());
    }
    let Ok(mut m) = parsed else {
        return Ok(());
    };
    bump(&reached.parsed);
    if matches!(damage, Damage::None) {
        prop_assert_eq!(m.encode(), normalise(&text));
    }
    if m.get(path).is_some() {
        bump(&reached.found);
    }
    let _ = m.get_raw(path);
    let _ = m.plain_text(path);
    // `set` refuses MSH-1 and MSH-2 (they hold the delimiters), and only them.
    let field = path.split_once('-').and_then(|(_, f)| f.split('[').next());
    let delimiter_field = path.starts_with("MSH") && matches!(field, Some("1" | "2"));
    match m.set(path, value) {
        Ok(()) => {
            bump(&reached.set);
            let back = m.get(path);
            prop_assert_eq!(back.as_deref(), Some(value), "{}", path);
            prop_assert_eq!(Message::parse(&m.encode()).unwrap(), m);
        }
        Err(e) => prop_assert!(delimiter_field, "set {} failed: {}", path, e),
    }
    Ok(())
}

#[test]
fn generated_messages_go_through_parse_get_set_encode() {
    // Mostly a path to an element the message has, else any path.
    let anywhere = leaf_path_in(&["MSH", "PID", "OBX", "NTE", "ZZZ", "EVN"]);
    let strategy = (
        generated_message(),
        damage(),
        prop::option::weighted(0.75, pick()),
        anywhere,
        any::<String>(),
    );
    let reached = Reached::default();
    let mut runner = TestRunner::new(ProptestConfig::with_cases(2000));
    runner
        .run(&strategy, |(m, damage, pick, anywhere, value)| {
            let path = pick.and_then(|p| existing_path(&m, &p)).unwrap_or(anywhere);
            parse_get_set_encode(&m.text, &damage, &path, &value, &reached)
        })
        .unwrap();
    let (cases, parsed) = (reached.cases.get(), reached.parsed.get());
    let (found, set) = (reached.found.get(), reached.set.get());
    eprintln!("{cases} cases: {parsed} parsed, {found} paths found, {set} values set");
    // Most cases must get past parsing into get/set/encode, or this
    // property tests nothing.
    assert!(parsed * 10 >= cases * 7, "{parsed} of {cases} parsed");
    assert!(found * 10 >= cases * 5, "{found} of {cases} paths found");
    assert!(set * 10 >= cases * 6, "{set} of {cases} values set");
}
