//! Which bots get an event: a bot's subscriptions (from its manifest, or
//! replaced and extended by `[bots.NAME]` in the config) matched against
//! the event's kind, source and, for HL7, MSH-9.

use super::bindings::{Hl7Filter, Subscription};
use crate::config::{BotConfig, SubscriptionConfig};

/// What routing needs to know about an inbound event.
#[derive(Debug, Clone, Copy)]
pub enum RouteKey<'a> {
    /// An HL7 message from `source` with MSH-9 `message_type` (absent when
    /// the message could not be parsed: such a message is never routed).
    Hl7 {
        source: &'a str,
        message_type: Option<&'a str>,
    },
    File {
        source: &'a str,
    },
    /// A firing of a cron schedule, as written in the subscription.
    Tick {
        schedule: &'a str,
    },
}

/// The subscriptions a bot is held to.
pub fn effective(manifest: &[Subscription], config: Option<&BotConfig>) -> Vec<Subscription> {
    let Some(cfg) = config else {
        return manifest.to_vec();
    };
    if !cfg.enabled {
        return Vec::new();
    }
    let mut subs = match &cfg.subscribe {
        Some(list) => list.iter().map(from_config).collect(),
        None => manifest.to_vec(),
    };
    subs.extend(cfg.subscribe_also.iter().map(from_config));
    subs
}

fn from_config(s: &SubscriptionConfig) -> Subscription {
    if let Some(types) = &s.hl7 {
        Subscription::Hl7(Hl7Filter {
            source: s.source.clone(),
            message_types: types.clone(),
        })
    } else if let Some(src) = &s.files {
        Subscription::Files(src.clone())
    } else if let Some(c) = &s.cron {
        Subscription::Cron(c.clone())
    } else {
        Subscription::Http(s.http.clone().unwrap_or_default())
    }
}

/// The path a subscription mounts below `/bots/<bot>`, for an HTTP one.
pub fn http_path(s: &Subscription) -> Option<&str> {
    match s {
        Subscription::Http(p) => Some(p),
        _ => None,
    }
}

/// The schedule of a cron subscription.
pub fn cron_schedule(s: &Subscription) -> Option<&str> {
    match s {
        Subscription::Cron(c) => Some(c),
        _ => None,
    }
}

/// A subscription in words, as `interlink check` and the log show it.
pub fn describe(s: &Subscription) -> String {
    match s {
        Subscription::Hl7(f) => {
            let types = if f.message_types.is_empty() {
                "*".to_string()
            } else {
                f.message_types.join(", ")
            };
            match &f.source {
                Some(src) => format!("hl7 {types} from {src}"),
                None => format!("hl7 {types}"),
            }
        }
        Subscription::Files(s) => format!("files from {s}"),
        Subscription::Cron(c) => format!("cron {c}"),
        Subscription::Http(p) => format!("http {p}"),
    }
}

/// Whether any of `subs` wants the event.
pub fn wants(subs: &[Subscription], key: RouteKey<'_>) -> bool {
    subs.iter().any(|s| match (s, key) {
        (
            Subscription::Hl7(f),
            RouteKey::Hl7 {
                source,
                message_type: Some(mt),
            },
        ) => {
            f.source.as_deref().is_none_or(|s| s == source)
                && (f.message_types.is_empty()
                    || f.message_types.iter().any(|p| type_matches(p, mt)))
        }
        (Subscription::Files(s), RouteKey::File { source }) => s == source || s == "*",
        (Subscription::Cron(c), RouteKey::Tick { schedule }) => c == schedule,
        _ => false,
    })
}

/// The prefix of the first HTTP subscription of `subs` that covers `path`
/// (below the bot's mount point, without the query string), if one does:
/// a prefix covers the path when it is the whole path or ends at a segment
/// boundary (`/worklist` covers `/worklist` and `/worklist/7`, not
/// `/worklists`).
pub fn http_prefix<'s>(subs: &'s [Subscription], path: &str) -> Option<&'s str> {
    subs.iter().find_map(|s| match s {
        Subscription::Http(prefix) => path
            .strip_prefix(prefix.trim_end_matches('/'))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            .then_some(prefix.as_str()),
        _ => None,
    })
}

/// Matches an MSH-9 pattern (`ADT`, `ADT^A04`, `ADT^A0*`, `*`) against MSH-9
/// as written (`ADT^A04^ADT_A01`). A pattern without `^` looks at the
/// message type alone; one with `^` at type and trigger event.
pub fn type_matches(pattern: &str, msh9: &str) -> bool {
    let mut parts = msh9.split('^');
    let kind = parts.next().unwrap_or("");
    let subject = if pattern.contains('^') {
        format!("{kind}^{}", parts.next().unwrap_or(""))
    } else {
        kind.to_string()
    };
    crate::wildcard::matches(pattern.as_bytes(), subject.bytes(), |p, s| {
        p.eq_ignore_ascii_case(&s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_msh9_patterns() {
        assert!(type_matches("ADT^A04", "ADT^A04^ADT_A01"));
        assert!(type_matches("ADT^A0*", "ADT^A08"));
        assert!(!type_matches("ADT^A0*", "ADT^A11"));
        assert!(type_matches("ADT", "ADT^A11"));
        assert!(type_matches("*", "ORU^R01"));
        assert!(type_matches("ADT^*", "ADT"));
        assert!(!type_matches("ORU", "ORM^O01"));
        assert!(type_matches("adt^a04", "ADT^A04"));
    }

    #[test]
    fn http_prefixes_match_on_segment_boundaries() {
        let subs = vec![
            Subscription::Cron("* * * * * *".into()),
            Subscription::Http("/worklist".into()),
        ];
        assert_eq!(http_prefix(&subs, "/worklist"), Some("/worklist"));
        assert_eq!(http_prefix(&subs, "/worklist/7"), Some("/worklist"));
        assert_eq!(http_prefix(&subs, "/worklists"), None);
        assert_eq!(http_prefix(&subs, "/"), None);
        let all = vec![Subscription::Http("/".into())];
        assert_eq!(http_prefix(&all, "/"), Some("/"));
        assert_eq!(http_prefix(&all, "/a/b"), Some("/"));
    }

    #[test]
    fn filters_by_source_and_kind() {
        let subs = vec![
            Subscription::Hl7(Hl7Filter {
                source: Some("adt".into()),
                message_types: vec![],
            }),
            Subscription::Files("drop".into()),
        ];
        let hl7 = |source| RouteKey::Hl7 {
            source,
            message_type: Some("ADT^A01"),
        };
        assert!(wants(&subs, hl7("adt")));
        assert!(!wants(&subs, hl7("lab")));
        assert!(!wants(
            &subs,
            RouteKey::Hl7 {
                source: "adt",
                message_type: None
            }
        ));
        assert!(wants(&subs, RouteKey::File { source: "drop" }));
        assert!(!wants(&subs, RouteKey::File { source: "adt" }));
    }

    #[test]
    fn config_replaces_and_extends_subscriptions() {
        let manifest = vec![Subscription::Files("a".into())];
        let cfg = BotConfig {
            subscribe: Some(vec![SubscriptionConfig {
                hl7: Some(vec!["ORU".into()]),
                source: None,
                files: None,
                cron: None,
                http: None,
            }]),
            subscribe_also: vec![SubscriptionConfig {
                hl7: None,
                source: None,
                files: Some("b".into()),
                cron: None,
                http: None,
            }],
            ..BotConfig::default()
        };
        let subs = effective(&manifest, Some(&cfg));
        assert!(!wants(&subs, RouteKey::File { source: "a" }));
        assert!(wants(&subs, RouteKey::File { source: "b" }));
        assert!(wants(
            &subs,
            RouteKey::Hl7 {
                source: "x",
                message_type: Some("ORU^R01")
            }
        ));
        let disabled = BotConfig {
            enabled: false,
            ..BotConfig::default()
        };
        assert!(effective(&manifest, Some(&disabled)).is_empty());
    }
}
