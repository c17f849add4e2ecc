//! Wildcard matching, as MSH-9 routing patterns (`ADT^A0*`) and DICOM
//! matching keys (`LOVE*`, `L?VELACE`) use it: `*` matches any run of
//! elements, `?` any one, anything else an element `eq` to it. Linear
//! backtracking on the last `*`, no recursion; the value is walked as an
//! iterator (cloned where a `*` may have to take one more), so it need not
//! be collected.

/// An element a pattern is made of: bytes or characters.
pub trait Symbol: Copy + PartialEq {
    /// `*`
    const STAR: Self;
    /// `?`
    const ONE: Self;
}

impl Symbol for u8 {
    const STAR: u8 = b'*';
    const ONE: u8 = b'?';
}

impl Symbol for char {
    const STAR: char = '*';
    const ONE: char = '?';
}

/// Whether `value` matches `pattern` (`*` and `?` as the wildcards).
pub fn matches<T: Symbol, I: Iterator<Item = T> + Clone>(
    pattern: &[T],
    mut value: I,
    eq: impl Fn(T, T) -> bool,
) -> bool {
    let mut p = 0;
    // Where the last `*` was, and the value from where it now stops.
    let mut last_star: Option<(usize, I)> = None;
    loop {
        let mut after = value.clone();
        let Some(v) = after.next() else {
            break;
        };
        match pattern.get(p) {
            Some(&c) if c == T::STAR => {
                last_star = Some((p, value.clone()));
                p += 1;
            }
            Some(&c) if c == T::ONE || eq(c, v) => {
                p += 1;
                value = after;
            }
            _ => match &mut last_star {
                Some((sp, stop)) => {
                    stop.next();
                    p = *sp + 1;
                    value = stop.clone();
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == T::STAR)
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn exact(p: &str, v: &str) -> bool {
        let p: Vec<char> = p.chars().collect();
        matches(&p, v.chars(), |a, b| a == b)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(exact("LOVE*", "LOVELACE"));
        assert!(exact("*ACE", "LOVELACE"));
        assert!(exact("L?VE*CE", "LOVELACE"));
        assert!(exact("*", ""));
        assert!(exact("a*b*c", "aXbYbZc"));
        assert!(!exact("L?VE", "LOVELACE"));
        assert!(!exact("", "x"));
        assert!(!exact("?", ""));
        assert!(!exact("love*", "LOVELACE"));
        // `?` is one character, not one byte.
        assert!(exact("M?LLER", "MÜLLER"));
        assert!(matches(b"A?C", "ABC".bytes(), |a, b| a == b));
    }
}
