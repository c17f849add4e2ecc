//! Accession numbers: a prefix of 2–4 capital letters and a zero-padded number from
//! the bot's durable sequence `accession`, e.g. `ACC000000000042`. The
//! sequence is committed with the event that used it, so a number is never
//! handed out twice, not even across crashes and retries. DICOM's Accession
//! Number (SH) holds at most 16 characters, hence the limit on prefix and
//! digits together.

/// The shape of the accession numbers this bot issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessionFormat {
    prefix: String,
    digits: u32,
}

/// The most characters a DICOM Accession Number (SH) may have.
const MAX_LENGTH: u32 = 16;
/// Fewer digits would run out too soon.
const MIN_DIGITS: u32 = 12;

impl AccessionFormat {
    /// Checks `accession_prefix` and `accession_digits`; the error names the
    /// setting at fault.
    pub fn new(prefix: &str, digits: u32) -> Result<AccessionFormat, String> {
        let letters = prefix.chars().all(|c| c.is_ascii_uppercase());
        if !letters || !(2..=4).contains(&prefix.len()) {
            return Err(format!(
                "setting accession_prefix: {prefix:?} must be 2 to 4 capital letters (A-Z)"
            ));
        }
        if digits < MIN_DIGITS {
            return Err(format!(
                "setting accession_digits: {digits} is too few (at least {MIN_DIGITS})"
            ));
        }
        if prefix.len() as u32 + digits > MAX_LENGTH {
            return Err(format!(
                "setting accession_digits: {digits} digits after the {}-letter prefix make more \
                 than {MAX_LENGTH} characters",
                prefix.len()
            ));
        }
        Ok(AccessionFormat {
            prefix: prefix.to_string(),
            digits,
        })
    }

    /// Accession number `n`, zero-padded to the configured digits; `None`
    /// once `n` no longer fits (after 10^12 numbers at the least).
    pub fn format(&self, n: u64) -> Option<String> {
        let text = n.to_string();
        (text.len() <= self.digits as usize).then(|| {
            format!(
                "{}{text:0>width$}",
                self.prefix,
                width = self.digits as usize
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_zero_padded_after_the_prefix() {
        let f = AccessionFormat::new("BF", 12).unwrap();
        assert_eq!(f.format(42).unwrap(), "BF000000000042");
        assert_eq!(f.format(999_999_999_999).unwrap(), "BF999999999999");
        assert_eq!(f.format(1_000_000_000_000), None);
        let f = AccessionFormat::new("ACCN", 12).unwrap();
        assert_eq!(f.format(1).unwrap(), "ACCN000000000001");
        let f = AccessionFormat::new("EW", 14).unwrap();
        assert_eq!(f.format(7).unwrap().len(), 16);
    }

    #[test]
    fn prefix_and_digits_are_bounded() {
        for (prefix, digits, setting) in [
            ("B", 12, "accession_prefix"),
            ("ABCDE", 12, "accession_prefix"),
            ("B1", 12, "accession_prefix"),
            ("", 12, "accession_prefix"),
            ("bf", 12, "accession_prefix"),
            ("Bf", 12, "accession_prefix"),
            ("BF", 11, "accession_digits"),
            ("BFX", 14, "accession_digits"),
            ("BF", 15, "accession_digits"),
        ] {
            let err = AccessionFormat::new(prefix, digits).unwrap_err();
            assert!(err.starts_with(&format!("setting {setting}:")), "{err}");
        }
        assert!(AccessionFormat::new("ABCD", 12).is_ok());
    }

    #[test]
    fn ten_thousand_numbers_are_distinct_and_well_formed() {
        let f = AccessionFormat::new("BF", 12).unwrap();
        let numbers: std::collections::BTreeSet<String> =
            (1..=10_000).map(|n| f.format(n).unwrap()).collect();
        assert_eq!(numbers.len(), 10_000);
        assert!(numbers.iter().all(|a| a.len() == 14
            && a.starts_with("BF")
            && a[2..].bytes().all(|b| b.is_ascii_digit())));
        // Zero padding keeps text order the same as issue order.
        let in_order: Vec<String> = (1..=10_000).map(|n| f.format(n).unwrap()).collect();
        assert!(in_order.iter().eq(numbers.iter()));
    }
}
