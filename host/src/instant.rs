//! Instants as users write and read them: RFC 3339 text, or milliseconds
//! since the Unix epoch. One rule for the admin API, the dashboard,
//! `interlink shadow` and `interlink test`.

/// An instant given as RFC 3339 (`2026-11-24T09:00:00Z`) or as ms since
/// the epoch; `None` when it is neither.
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<i64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

/// `ms` since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Serializes ms since the epoch as [`rfc3339`] text (`serialize_with`).
pub fn serialize_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_or_milliseconds() {
        assert_eq!(
            super::parse("2026-11-24T09:00:00+01:00"),
            Some(1_795_507_200_000)
        );
        assert_eq!(super::parse(" 1795507200000 "), Some(1_795_507_200_000));
        assert_eq!(super::parse("yesterday"), None);
        assert_eq!(
            super::rfc3339(1_795_507_200_000),
            "2026-11-24T08:00:00.000Z"
        );
    }
}
