//! The accounts: the home page (every account and its status), an
//! account's page (last success and error in plain words with the next
//! step, job history, the running job's progress, the second-factor prompt
//! pushed by server-sent events) and its actions (run now, edit
//! credentials, pause and resume, remove).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use gleaner_framework::store::AccountStore;

use super::auth::Session;
use super::render::{self, Layout, Nav, WebError};
use super::state::WebState;

/// The latest progress of the jobs this process runs, by job id.
#[derive(Default)]
pub struct ProgressBoard {}

/// `/`, `/accounts/{id}` and the account's actions and events.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new().route("/", get(home))
}

struct AccountRow {
    id: String,
    label: String,
    konnector: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    layout: Layout,
    accounts: Vec<AccountRow>,
}

async fn home(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
) -> Result<Response, WebError> {
    let accounts = state
        .app
        .store
        .list_accounts()
        .await?
        .into_iter()
        .map(|a| AccountRow {
            id: a.id,
            label: a.label,
            konnector: a.konnector,
        })
        .collect();
    Ok(render::page(&Home {
        layout: Layout::new(&state, &session, "Your accounts", Nav::Accounts),
        accounts,
    }))
}
