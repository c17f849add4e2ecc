//! Static files the pages need, compiled into the binary: htmx 2.0.11
//! (`assets/htmx.min.js`, from the npm package `htmx.org`, Zero-Clause BSD:
//! `assets/htmx.LICENSE`) and the stylesheet. Served without
//! authentication (they hold nothing private) and cached for a week.

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;

use crate::http::error::ApiError;

const HTMX: &str = include_str!("assets/htmx.min.js");
const STYLE: &str = include_str!("assets/style.css");

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let (body, kind) = match name.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return Err(ApiError::not_found("no such asset")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=604800"),
        ],
        body,
    ))
}
