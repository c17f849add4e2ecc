//! Paths into a message: `PID-3`, `PID-3[2].1`, `OBX[3]-5.1.2`, `MSH-9.2`.
//! Segment occurrence and repetition are in brackets; all numbers are
//! 1-based. A path may stop at any level.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub segment: [u8; 3],
    /// Which occurrence of the segment, from 1.
    pub occurrence: usize,
    pub field: usize,
    /// Repetition of the field, from 1.
    pub repetition: usize,
    /// Component, from 1; `None` addresses the whole repetition.
    pub component: Option<usize>,
    /// Subcomponent, from 1; `None` addresses the whole component.
    pub subcomponent: Option<usize>,
}

fn number(s: &str, whole: &str) -> Result<usize, Error> {
    match s.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(Error::BadPath(whole.to_string())),
    }
}

/// Splits `name[n]` into the name and n (1 when absent).
fn indexed<'a>(s: &'a str, whole: &str) -> Result<(&'a str, usize), Error> {
    match s.find('[') {
        None => Ok((s, 1)),
        Some(open) => {
            let inner = s[open + 1..]
                .strip_suffix(']')
                .ok_or_else(|| Error::BadPath(whole.to_string()))?;
            Ok((&s[..open], number(inner, whole)?))
        }
    }
}

impl FromStr for Path {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadPath(s.to_string());
        let (seg, rest) = s.split_once('-').ok_or_else(bad)?;
        let (seg, occurrence) = indexed(seg, s)?;
        let seg = seg.as_bytes();
        if seg.len() != 3
            || !seg
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(bad());
        }
        let mut parts = rest.split('.');
        let (field, repetition) = indexed(parts.next().ok_or_else(bad)?, s)?;
        let field = number(field, s)?;
        let component = parts.next().map(|c| number(c, s)).transpose()?;
        let subcomponent = parts.next().map(|c| number(c, s)).transpose()?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Path {
            segment: [seg[0], seg[1], seg[2]],
            occurrence,
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.segment).unwrap_or("???"))?;
        if self.occurrence != 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        write!(f, "-{}", self.field)?;
        if self.repetition != 1 {
            write!(f, "[{}]", self.repetition)?;
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
        }
        if let Some(s) = self.subcomponent {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_level() {
        let p: Path = "OBX[3]-5[2].1.2".parse().unwrap();
        assert_eq!(&p.segment, b"OBX");
        assert_eq!((p.occurrence, p.field, p.repetition), (3, 5, 2));
        assert_eq!((p.component, p.subcomponent), (Some(1), Some(2)));
        assert_eq!(p.to_string(), "OBX[3]-5[2].1.2");
        let p: Path = "MSH-9".parse().unwrap();
        assert_eq!((p.field, p.component), (9, None));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "PID",
            "PID-",
            "PID-0",
            "pid-3",
            "PID-3.1.2.3",
            "PID[x]-1",
            "PID-3[0]",
        ] {
            assert!(bad.parse::<Path>().is_err(), "{bad}");
        }
    }
}
