//! Wildcard matching, as MSH-9 routing patterns (`ADT^A0*`) and DICOM
//! matching keys (`LOVE*`, `L?VELACE`) use it: `*` matches any run of
//! elements, `?` any one, anything else an element `eq` to it. Linear
//! backtracking on the last `*`, no recursion.

/// Whether `value` matches `pattern`, with `star` and `one` as the
/// wildcards.
pub fn matches<T: Copy + PartialEq>(
    pattern: &[T],
    value: &[T],
    (star, one): (T, T),
    eq: impl Fn(T, T) -> bool,
) -> bool {
    let (mut p, mut v) = (0, 0);
    // Where the last `*` was, and where in `value` it now stops.
    let mut last_star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(&c) if c == star => {
                last_star = Some((p, v));
                p += 1;
            }
            Some(&c) if c == one || eq(c, value[v]) => {
                p += 1;
                v += 1;
            }
            _ => match last_star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    last_star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == star)
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn exact(p: &str, v: &str) -> bool {
        let (p, v): (Vec<char>, Vec<char>) = (p.chars().collect(), v.chars().collect());
        matches(&p, &v, ('*', '?'), |a, b| a == b)
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
    }
}
