//! The five (or six) encoding characters declared in MSH-1 and MSH-2.

use super::Error;

/// Delimiters of a message, read from its MSH segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    pub escape: u8,
    pub subcomponent: u8,
    /// The v2.7 truncation character, when MSH-2 declares one.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: b'\\',
            subcomponent: b'&',
            truncation: None,
        }
    }
}

impl Delimiters {
    /// Reads the delimiters from the start of an MSH segment
    /// (`MSH|^~\&|…`). Returns them and the length of MSH-2.
    pub fn from_msh(segment: &[u8]) -> Result<(Self, usize), Error> {
        if segment.len() < 8 || &segment[..3] != b"MSH" {
            return Err(Error::NoMsh);
        }
        let field = segment[3];
        let rest = &segment[4..];
        let len = rest
            .iter()
            .position(|&b| b == field || b == b'\r')
            .unwrap_or(rest.len());
        let enc = &rest[..len];
        if !(4..=5).contains(&enc.len()) {
            return Err(Error::BadDelimiters(format!(
                "MSH-2 must hold 4 or 5 encoding characters, found {}",
                enc.len()
            )));
        }
        let mut all = vec![field];
        all.extend_from_slice(enc);
        if all.iter().any(|b| !b.is_ascii_punctuation()) {
            return Err(Error::BadDelimiters(
                "delimiters must be ASCII punctuation".into(),
            ));
        }
        for (i, a) in all.iter().enumerate() {
            if all[i + 1..].contains(a) {
                return Err(Error::BadDelimiters(format!(
                    "{:?} is used twice",
                    *a as char
                )));
            }
        }
        Ok((
            Delimiters {
                field,
                component: enc[0],
                repetition: enc[1],
                escape: enc[2],
                subcomponent: enc[3],
                truncation: enc.get(4).copied(),
            },
            len,
        ))
    }

    /// MSH-2 as written: component, repetition, escape, subcomponent and,
    /// when declared, truncation characters.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::with_capacity(5);
        for b in [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ] {
            s.push(b as char);
        }
        if let Some(t) = self.truncation {
            s.push(t as char);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_standard_and_odd_delimiters() {
        let (d, n) = Delimiters::from_msh(b"MSH|^~\\&|A").unwrap();
        assert_eq!((d, n), (Delimiters::default(), 4));
        let (d, n) = Delimiters::from_msh(b"MSH#$*@!%#A").unwrap();
        assert_eq!(d.field, b'#');
        assert_eq!(d.truncation, Some(b'%'));
        assert_eq!(n, 5);
        assert_eq!(d.encoding_characters(), "$*@!%");
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(Delimiters::from_msh(b"PID|1"), Err(Error::NoMsh));
        assert!(Delimiters::from_msh(b"MSH|^~|A|B|C").is_err());
        assert!(Delimiters::from_msh(b"MSH|^^\\&|A").is_err());
        assert!(Delimiters::from_msh("MSH|^\u{88}\\&|A".as_bytes()).is_err());
        assert!(Delimiters::from_msh(b"MSH|^ \\&|A").is_err());
    }
}
