//! The documents: per doctype, with totals and pictures (money spent per
//! month, energy per day), and the files with their download.

use std::sync::Arc;

use axum::Router;

use super::state::WebState;

/// `/documents`, `/documents/{doctype}`, `/files/{id}`.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
}
