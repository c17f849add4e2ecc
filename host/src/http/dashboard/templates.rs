//! The page templates (minijinja, HTML-escaped), compiled into the binary,
//! and rendering one with the chrome every page shares.

use std::sync::OnceLock;

use axum::response::Html;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior, context};
use serde::Serialize;

use super::session::Viewer;
use crate::http::error::ApiError;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("signin.html", include_str!("templates/signin.html")),
    ("overview.html", include_str!("templates/overview.html")),
    (
        "overview_live.html",
        include_str!("templates/overview_live.html"),
    ),
    ("messages.html", include_str!("templates/messages.html")),
    ("message.html", include_str!("templates/message.html")),
    ("outbox.html", include_str!("templates/outbox.html")),
    ("failed.html", include_str!("templates/failed.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.add_filter("time", crate::instant::rfc3339);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("dashboard template {name}: {e:#}"));
        }
        env
    })
}

/// Renders template `name` with `data` as `page`, and the signed-in
/// `viewer` as `me` (name, `can_write`, `csrf`), or no `me` on the sign-in
/// page.
pub fn render(
    name: &str,
    viewer: Option<&Viewer>,
    data: impl Serialize,
) -> Result<Html<String>, ApiError> {
    let me = viewer.map(|v| Value::from(Serde(v)));
    let page = Value::from(Serde(data));
    env()
        .get_template(name)
        .and_then(|t| t.render(context! { me, page }))
        .map(Html)
        .map_err(|e| ApiError::internal(format!("dashboard page {name}: {e:#}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        super::env();
    }
}
