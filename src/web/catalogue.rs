//! The catalogue of konnectors, the enable form generated from a manifest,
//! and the OAuth consent started from a page (its redirect comes back to
//! this server).

use std::sync::Arc;

use axum::Router;

use super::state::WebState;

/// OAuth consents started from a page, by their `state`, waiting for the
/// provider's redirect.
#[derive(Default)]
pub struct Consents {}

/// `/konnectors`, `/konnectors/{slug}`, `/oauth/callback`.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
}
