//! The part of cozy-stack's HTTP API that Cozy's konnector libraries call,
//! served on loopback for one run, backed by Gleaner's store, files tree
//! and vault.
//!
//! - `account.rs`: `GET`/`PUT /data/io.cozy.accounts/:id`, the account
//!   with its decrypted credentials, and its `state`/`twoFACode` (the
//!   second factor as cozy-konnector-libs asks for it);
//! - `data.rs`: documents (`/data/:doctype/...`, CouchDB-style `_id`/`_rev`,
//!   `_find`, `_index`, `_all_docs`, `_normal_docs`, `_bulk_docs`), on
//!   [`docs::RunDocs`] and [`mango`];
//! - `files.rs`: the files API (JSON:API) on the account's folder;
//! - anything else answers 404 naming the route, and is logged and kept
//!   ([`Stack::unknown_routes`]) so that a gap shows at once.
//!
//! Every request must carry the run's token (`Authorization: Bearer`),
//! which reaches only the doctypes the manifest's `permissions` name (403
//! otherwise), this run's account only, and the account's own folder.

// Handlers check a request and answer early with the refusal itself: the
// `Err` is a response, built once per refused request.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod data;
pub mod docs;
pub mod files;
pub mod mango;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use gleaner_framework::{AccountDocs, KonnectorError, TwoFactorKind};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use self::account::AccountDoc;
use self::docs::RunDocs;
use self::files::FilesState;

/// The largest request body accepted (a file upload), in bytes.
pub const MAX_BODY: usize = 100 * 1024 * 1024;

/// What the server tells the run while the konnector works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackEvent {
    /// The konnector set the account's state to `TWOFA_NEEDED*`: it polls
    /// for `twoFACode`.
    TwoFactorAsked {
        /// Which code.
        kind: TwoFactorKind,
        /// `TWOFA_NEEDED_RETRY`: the last code was wrong.
        retry: bool,
    },
}

/// What a run's server is built from.
pub struct StackConfig {
    /// The konnector's slug.
    pub slug: String,
    /// The account id (the `io.cozy.accounts` document's id).
    pub account_id: String,
    /// The account document's `auth`: the fields and opened secrets.
    pub auth: serde_json::Map<String, Value>,
    /// The account document's `data` (the konnector state of the last
    /// successful run).
    pub data: Value,
    /// The doctypes the token reaches.
    pub doctypes: Vec<String>,
    /// The account's stored documents.
    pub stored: AccountDocs,
    /// The files tree's root.
    pub files_root: PathBuf,
    /// The account's folder in it (relative).
    pub account_folder: String,
    /// Where this run's uploads wait for the commit.
    pub uploads: PathBuf,
}

/// The state every handler shares.
pub struct Shared {
    token: String,
    /// The konnector's slug.
    pub slug: String,
    /// The account id.
    pub account_id: String,
    doctypes: Vec<String>,
    /// The run's documents.
    pub docs: tokio::sync::Mutex<RunDocs>,
    /// The account document.
    pub account: Mutex<AccountDoc>,
    /// The files API's state.
    pub files: Mutex<FilesState>,
    events: mpsc::UnboundedSender<StackEvent>,
    unknown: Mutex<Vec<String>>,
}

impl Shared {
    /// Whether the token reaches this doctype.
    pub fn permits(&self, doctype: &str) -> bool {
        self.doctypes.iter().any(|d| d == doctype)
    }

    /// Tells the run.
    pub fn send(&self, event: StackEvent) {
        let _ = self.events.send(event);
    }
}

/// A running server.
pub struct Stack {
    addr: SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<StackEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Stack {
    /// Serves the API for one run on `127.0.0.1:<any port>`, with `token`
    /// as the only credential it accepts.
    pub async fn start(config: StackConfig, token: String) -> Result<Self, KonnectorError> {
        let (tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            token,
            slug: config.slug.clone(),
            account_id: config.account_id.clone(),
            doctypes: config.doctypes,
            docs: tokio::sync::Mutex::new(RunDocs::new(config.stored, &config.slug)),
            account: Mutex::new(AccountDoc::new(
                &config.account_id,
                &config.slug,
                config.auth,
                config.data,
            )),
            files: Mutex::new(FilesState::new(
                config.files_root,
                config.account_folder,
                config.uploads,
            )),
            events: tx,
            unknown: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .merge(account::routes())
            .merge(data::routes())
            .merge(files::routes())
            .fallback(unknown_route)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .layer(middleware::from_fn_with_state(
                Arc::clone(&shared),
                require_token,
            ))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| {
                KonnectorError::new(
                    gleaner_framework::ErrorCode::UnknownError,
                    format!("cannot serve the stack API on loopback: {e}"),
                )
            })?;
        let addr = listener.local_addr().map_err(|e| {
            KonnectorError::new(
                gleaner_framework::ErrorCode::UnknownError,
                format!("cannot serve the stack API on loopback: {e}"),
            )
        })?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the stack API server stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            events,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/` (`COZY_URL`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state the handlers share.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The next event (`None` once the server is gone).
    pub async fn next_event(&mut self) -> Option<StackEvent> {
        self.events.recv().await
    }

    /// The routes the konnector called that are not served.
    pub fn unknown_routes(&self) -> Vec<String> {
        self.shared
            .unknown
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let given = bearer(request.headers());
    let ok = given.is_some_and(|g| {
        use subtle::ConstantTimeEq;
        g.as_bytes().ct_eq(shared.token.as_bytes()).into()
    });
    if !ok {
        tracing::warn!(path = %request.uri().path(), "stack API request without this run's token");
        return couch_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this run's token is required",
        );
    }
    next.run(request).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn unknown_route(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let route = format!("{} {}", request.method(), request.uri().path());
    tracing::warn!(route = %route, "the konnector called a stack API route Gleaner does not serve");
    if let Ok(mut unknown) = shared.unknown.lock()
        && !unknown.contains(&route)
    {
        unknown.push(route.clone());
    }
    couch_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("Gleaner does not serve {route} (see docs/cozy-konnectors.md)"),
    )
}

/// A CouchDB-style error (`{"status", "error", "reason"}`), as cozy-stack
/// answers the data API.
pub fn couch_error(status: StatusCode, error: &str, reason: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"status": status.as_u16().to_string(), "error": error, "reason": reason}),
        ),
    )
        .into_response()
}

/// A JSON:API error (`{"errors": [...]}`), as cozy-stack answers the files
/// API.
pub fn jsonapi_error(status: StatusCode, detail: &str) -> Response {
    let body = json!({"errors": [{
        "status": status.as_u16().to_string(),
        "title": status.canonical_reason().unwrap_or("Error"),
        "detail": detail,
    }]});
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.api+json"),
    );
    response
}

/// 403 for a doctype the token does not reach.
pub fn forbidden(doctype: &str) -> Response {
    couch_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        &format!("the konnector's permissions do not include {doctype}"),
    )
}

/// 500 for a store failure (named; never the data).
pub fn store_failed(e: &KonnectorError) -> Response {
    tracing::warn!(code = %e.code, error = %e.message, "stack API: store failure");
    couch_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        &e.message,
    )
}

/// A JSON response with a status.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_else(|_| status.into_response())
}
