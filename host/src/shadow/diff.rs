//! The HL7-aware diff of two messages: segments paired by name and
//! occurrence, then every leaf (field repetition, component, subcomponent)
//! compared by its decoded value, each difference named by its path
//! (`PID-5.2`, `OBX[3]-5`, `PID-3[2].1`) with the old and the new value.
//! Paths matching an [`IgnorePath`] (by default MSH-7 and MSH-10, which
//! differ on every run) are left out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use interlink_sdk::hl7::Message;
use serde::Serialize;

/// One difference: where, and the value before (the live bot's) and after
/// (the candidate's); `None` where that side has nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Paths left out of the diff unless asked otherwise: the message time and
/// the control id, which a bot typically makes anew on every run.
pub const DEFAULT_IGNORED: [&str; 2] = ["MSH-7", "MSH-10"];

/// A path whose differences are ignored: `SEG`, `SEG-F`, `SEG-F.C`,
/// `SEG-F.C.S`, each level optionally with an index (`OBX[2]-5[1].1`). A
/// level without an index covers every occurrence or repetition: `OBX-5`
/// ignores field 5 of every OBX, `ZPR` the whole of every ZPR segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnorePath {
    text: String,
    segment: String,
    occurrence: Option<usize>,
    field: Option<usize>,
    repetition: Option<usize>,
    component: Option<usize>,
    subcomponent: Option<usize>,
}

impl FromStr for IgnorePath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an HL7 path like PID-5.2, OBX-5, OBX[2]-5[1].1 or ZPR");
        let number = |t: &str| t.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad);
        let indexed = |t: &str| -> Result<(String, Option<usize>), String> {
            match t.split_once('[') {
                None => Ok((t.to_string(), None)),
                Some((name, rest)) => {
                    let n = rest.strip_suffix(']').ok_or_else(bad)?;
                    Ok((name.to_string(), Some(number(n)?)))
                }
            }
        };
        let (segment, rest) = match s.split_once('-') {
            Some((seg, rest)) => (seg, Some(rest)),
            None => (s, None),
        };
        let (segment, occurrence) = indexed(segment)?;
        let valid = segment.len() == 3
            && segment
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !valid {
            return Err(bad());
        }
        let mut path = IgnorePath {
            text: s.to_string(),
            segment,
            occurrence,
            field: None,
            repetition: None,
            component: None,
            subcomponent: None,
        };
        if let Some(rest) = rest {
            let mut parts = rest.split('.');
            let (field, repetition) = indexed(parts.next().unwrap_or(""))?;
            path.field = Some(number(&field)?);
            path.repetition = repetition;
            path.component = parts.next().map(number).transpose()?;
            path.subcomponent = parts.next().map(number).transpose()?;
            if parts.next().is_some() {
                return Err(bad());
            }
        }
        Ok(path)
    }
}

impl fmt::Display for IgnorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl IgnorePath {
    /// The default ignore list ([`DEFAULT_IGNORED`]).
    pub fn defaults() -> Vec<IgnorePath> {
        DEFAULT_IGNORED
            .iter()
            .map(|p| p.parse().expect("default ignore paths parse"))
            .collect()
    }

    fn covers(&self, leaf: &Leaf) -> bool {
        let level = |want: Option<usize>, got: usize| want.is_none_or(|w| w == got);
        self.segment == leaf.segment
            && level(self.occurrence, leaf.occurrence)
            && level(self.field, leaf.field)
            && level(self.repetition, leaf.repetition)
            && level(self.component, leaf.component)
            && level(self.subcomponent, leaf.subcomponent)
    }
}

/// Where a value sits. `field` 0 stands for the whole segment (one present
/// on one side only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Leaf {
    segment: String,
    occurrence: usize,
    field: usize,
    repetition: usize,
    component: usize,
    subcomponent: usize,
}

/// A message's values by where they sit, with how many components and
/// subcomponents each place has (to name a path no deeper than needed).
#[derive(Default)]
struct Leaves {
    values: BTreeMap<Leaf, String>,
    /// Where each (segment, occurrence) stands in the message.
    order: BTreeMap<(String, usize), usize>,
    /// Components per (segment, occurrence, field, repetition).
    components: BTreeMap<(String, usize, usize, usize), usize>,
    /// Subcomponents per (segment, occurrence, field, repetition, component).
    subcomponents: BTreeMap<(String, usize, usize, usize, usize), usize>,
}

/// A message's segments' texts by (segment, occurrence).
fn segment_texts(msg: &Message) -> HashMap<(&str, usize), &str> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    msg.segments()
        .map(|seg| {
            let n = seen.entry(seg.id).or_default();
            *n += 1;
            ((seg.id, *n), seg.text)
        })
        .collect()
}

/// The (segment, occurrence) places written alike in `old` and `new`
/// (none when their delimiters differ): nothing differs in them.
fn alike<'m>(old: &'m Message, new: &'m Message) -> HashSet<(&'m str, usize)> {
    if old.delimiters() != new.delimiters() {
        return HashSet::new();
    }
    let new_texts = segment_texts(new);
    segment_texts(old)
        .into_iter()
        .filter(|(place, text)| new_texts.get(place) == Some(text))
        .map(|(place, _)| place)
        .collect()
}

impl Leaves {
    /// The leaves of `msg`, leaving out the segments `same` says are
    /// written the same on the other side (nothing differs in them).
    fn of(msg: &Message, same: &HashSet<(&str, usize)>) -> Leaves {
        let mut leaves = Leaves::default();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (index, seg) in msg.segments().enumerate() {
            let occurrence = {
                let n = seen.entry(seg.id.to_string()).or_default();
                *n += 1;
                *n
            };
            let id = seg.id.to_string();
            leaves.order.insert((id.clone(), occurrence), index);
            if same.contains(&(seg.id, occurrence)) {
                continue;
            }
            // The segment itself, so one missing on a side is one change.
            leaves.values.insert(
                Leaf {
                    segment: id.clone(),
                    occurrence,
                    field: 0,
                    repetition: 0,
                    component: 0,
                    subcomponent: 0,
                },
                seg.text.to_string(),
            );
            for (f, field) in seg.tree().into_iter().enumerate() {
                for (r, rep) in field.into_iter().enumerate() {
                    let place = (id.clone(), occurrence, f + 1, r + 1);
                    let count = leaves.components.entry(place).or_default();
                    *count = (*count).max(rep.len());
                    for (c, comp) in rep.into_iter().enumerate() {
                        let place = (id.clone(), occurrence, f + 1, r + 1, c + 1);
                        let count = leaves.subcomponents.entry(place).or_default();
                        *count = (*count).max(comp.len());
                        for (s, value) in comp.into_iter().enumerate() {
                            if value.is_empty() {
                                continue;
                            }
                            let leaf = Leaf {
                                segment: id.clone(),
                                occurrence,
                                field: f + 1,
                                repetition: r + 1,
                                component: c + 1,
                                subcomponent: s + 1,
                            };
                            leaves.values.insert(leaf, value);
                        }
                    }
                }
            }
        }
        leaves
    }
}

/// The differences between `old` and `new`, in message order, without the
/// paths `ignore` covers.
pub fn diff(old: &Message, new: &Message, ignore: &[IgnorePath]) -> Vec<FieldChange> {
    // Segments written alike (with the same delimiters) hold no difference:
    // only the others are taken apart.
    let same = alike(old, new);
    let a = Leaves::of(old, &same);
    let b = Leaves::of(new, &same);
    let mut places: Vec<&Leaf> = a.values.keys().chain(b.values.keys()).collect();
    // Message order: by where the segment stands in the old message (in
    // the new one for a segment the old one lacks).
    let rank = |l: &Leaf| {
        let seg = (l.segment.clone(), l.occurrence);
        match a.order.get(&seg) {
            Some(i) => (*i, 0),
            None => (b.order.get(&seg).copied().unwrap_or(usize::MAX), 1),
        }
    };
    places.sort_by_cached_key(|l| (rank(l), (*l).clone()));
    places.dedup();
    // A segment on one side only is one change; its fields are not listed.
    let lone = |l: &Leaf| {
        let whole = Leaf {
            field: 0,
            repetition: 0,
            component: 0,
            subcomponent: 0,
            ..l.clone()
        };
        a.values.contains_key(&whole) != b.values.contains_key(&whole)
    };
    let mut changes = Vec::new();
    for leaf in places {
        let (x, y) = (a.values.get(leaf), b.values.get(leaf));
        if x == y || ignore.iter().any(|i| i.covers(leaf)) {
            continue;
        }
        if leaf.field == 0 {
            if lone(leaf) {
                changes.push(FieldChange {
                    path: segment_path(leaf),
                    old: x.cloned(),
                    new: y.cloned(),
                });
            }
            continue;
        }
        if lone(leaf) {
            continue;
        }
        changes.push(FieldChange {
            path: leaf_path(leaf, &a, &b),
            old: x.cloned(),
            new: y.cloned(),
        });
    }
    changes
}

fn segment_path(l: &Leaf) -> String {
    match l.occurrence {
        1 => l.segment.clone(),
        n => format!("{}[{n}]", l.segment),
    }
}

/// `SEG[occ]-F[rep].C.S`, each index only where needed: the occurrence and
/// repetition when not the first, the component and subcomponent when the
/// place has more than one on either side.
fn leaf_path(l: &Leaf, a: &Leaves, b: &Leaves) -> String {
    let mut path = format!("{}-{}", segment_path(l), l.field);
    if l.repetition > 1 {
        path.push_str(&format!("[{}]", l.repetition));
    }
    let most = |x: Option<&usize>, y: Option<&usize>| *x.max(y).unwrap_or(&0);
    let place = (l.segment.clone(), l.occurrence, l.field, l.repetition);
    let components = most(a.components.get(&place), b.components.get(&place));
    let place = (
        l.segment.clone(),
        l.occurrence,
        l.field,
        l.repetition,
        l.component,
    );
    let subcomponents = most(a.subcomponents.get(&place), b.subcomponents.get(&place));
    if components > 1 || subcomponents > 1 {
        path.push_str(&format!(".{}", l.component));
    }
    if subcomponents > 1 {
        path.push_str(&format!(".{}", l.subcomponent));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message::parse(text).unwrap()
    }

    const BASE: &str = "MSH|^~\\&|LAB|H|EHR|H|20260101120000||ORU^R01|C1|P|2.5\r\
        PID|1||123^^^H^MR~456^^^X^PI||DOE^JOHN\r\
        OBX|1|NM|GLU||5.1|mmol/L\r\
        OBX|2|NM|NA||140|mmol/L\r";

    fn changes(old: &str, new: &str) -> Vec<(String, Option<String>, Option<String>)> {
        diff(&msg(old), &msg(new), &IgnorePath::defaults())
            .into_iter()
            .map(|c| (c.path, c.old, c.new))
            .collect()
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn the_same_message_has_no_differences() {
        assert!(changes(BASE, BASE).is_empty());
    }

    #[test]
    fn a_segment_written_alike_under_other_delimiters_is_still_compared() {
        // `#` separates components in the new message: its PID-5 is one
        // component, "DOE^JOHN".
        let new = BASE.replacen("MSH|^~", "MSH|#~", 1);
        let changes = changes(BASE, &new);
        let paths: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
        assert!(paths.contains(&"MSH-2"), "{changes:?}");
        assert!(paths.contains(&"PID-5.1"), "{changes:?}");
        assert!(paths.contains(&"PID-5.2"), "{changes:?}");
    }

    #[test]
    fn a_changed_component_is_named_down_to_the_component() {
        let new = BASE.replace("DOE^JOHN", "DOE^JON");
        assert_eq!(
            changes(BASE, &new),
            [("PID-5.2".into(), some("JOHN"), some("JON"))]
        );
    }

    #[test]
    fn repetitions_occurrences_and_subcomponents_are_named_in_message_order() {
        let new = BASE
            .replace("456^^^X^PI", "789^^^X^PI")
            .replace("|140|", "|141|")
            .replace("|GLU|", "|GLU&LN|");
        assert_eq!(
            changes(BASE, &new),
            [
                ("PID-3[2].1".into(), some("456"), some("789")),
                ("OBX-3.1.2".into(), None, some("LN")),
                ("OBX[2]-5".into(), some("140"), some("141")),
            ]
        );
    }

    #[test]
    fn a_segment_on_one_side_only_is_one_change() {
        let new = format!("{BASE}ZPR|v2|7\r");
        let got = changes(BASE, &new);
        assert_eq!(got, [("ZPR".into(), None, some("ZPR|v2|7"))]);
        let got = changes(&new, BASE);
        assert_eq!(got, [("ZPR".into(), some("ZPR|v2|7"), None)]);
    }

    #[test]
    fn msh_7_and_msh_10_are_ignored_by_default_and_more_can_be() {
        let new = BASE
            .replace("20260101120000", "20260102120000")
            .replace("|C1|", "|C2|")
            .replace("DOE^JOHN", "DOE^JON")
            .replace("|5.1|", "|5.2|");
        assert_eq!(changes(BASE, &new).len(), 2);
        let mut ignore = IgnorePath::defaults();
        ignore.push("PID-5.2".parse().unwrap());
        ignore.push("OBX-5".parse().unwrap());
        assert!(diff(&msg(BASE), &msg(&new), &ignore).is_empty());
        // An occurrence narrows it: only the second OBX's field 5.
        let only_second: IgnorePath = "OBX[2]-5".parse().unwrap();
        let got = diff(&msg(BASE), &msg(&new), &[only_second]);
        let paths: Vec<&str> = got.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["MSH-7", "MSH-10", "PID-5.2", "OBX-5"]);
    }

    #[test]
    fn ignore_paths_are_checked() {
        for good in ["ZPR", "PID-5", "PID-5.2", "PID-3[2].1.1", "OBX[3]-5"] {
            assert!(good.parse::<IgnorePath>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "pid-5",
            "PID-",
            "PID-0",
            "PID-5.x",
            "PID-5.1.1.1",
            "PID[-5",
        ] {
            let err = bad.parse::<IgnorePath>().unwrap_err();
            assert!(err.contains("not an HL7 path"), "{bad}: {err}");
        }
    }
}
