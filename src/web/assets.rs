//! The static files (one stylesheet, one script), compiled into the binary
//! and served from this origin (the CSP allows no other).

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::state::WebState;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

/// `/static/*` (reachable without a session: it holds no data).
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        JS,
    )
}
