//! Reading what an HTTP request's URL carries: percent-decoding, strict
//! (a bad escape is an error, not passed through), and
//! `HttpRequest::query_param` for one query parameter.

/// `text` with `%XX` escapes decoded and `+` read as a space (the form
/// encoding of query strings); `None` when an escape is not two hex digits
/// or the result is not UTF-8.
///
/// ```
/// use interlink_sdk::query::percent_decode;
/// assert_eq!(percent_decode("ICU%5E3+A").as_deref(), Some("ICU^3 A"));
/// assert_eq!(percent_decode("100%"), None);
/// ```
pub fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(b) = rest.next() {
        bytes.push(match b {
            b'+' => b' ',
            b'%' => {
                let hex = [rest.next()?, rest.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b => b,
        });
    }
    String::from_utf8(bytes).ok()
}

#[cfg(feature = "guest")]
impl crate::HttpRequest {
    /// The value of the first `name=value` pair of the query string,
    /// [`percent_decode`]d (`name` alone gives `""`); `None` when there is
    /// no such parameter or its value is badly encoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| percent_decode(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus_strictly() {
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("").as_deref(), Some(""));
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[cfg(feature = "guest")]
    #[test]
    fn finds_the_first_parameter_by_name() {
        let req = |path: &str| crate::HttpRequest {
            id: 0,
            method: "POST".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let r = req("/exams/A1/send?x=1&destination=ehr%5Fa&destination=ehr_b&flag");
        assert_eq!(r.query_param("destination").as_deref(), Some("ehr_a"));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(r.query_param("dest"), None);
        assert_eq!(req("/exams").query_param("x"), None);
        assert_eq!(req("/e?x=%zz").query_param("x"), None);
    }
}
