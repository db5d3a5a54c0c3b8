//! The loopback redirect listener: an axum server on `127.0.0.1:<port>` that
//! receives the provider's redirect after consent (RFC 8252, section 7.3),
//! as `gh auth login` and rclone do.
//!
//! Only `GET /callback` counts; the browser gets a short page saying
//! whether Gleaner got the consent. The listener stops when
//! [`LoopbackRedirect`] is dropped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use tokio::sync::{mpsc, oneshot};

use super::flow::{Callback, PendingAuthorization};
use crate::error::{ErrorCode, KonnectorError, Result};

/// The path the provider redirects to.
pub const CALLBACK_PATH: &str = "/callback";

type Hit = (
    BTreeMap<String, String>,
    oneshot::Sender<(StatusCode, String)>,
);

/// A listening redirect endpoint.
pub struct LoopbackRedirect {
    addr: SocketAddr,
    hits: mpsc::Receiver<Hit>,
    _shutdown: oneshot::Sender<()>,
}

impl LoopbackRedirect {
    /// Listens on `127.0.0.1:port` (`0`: any free port).
    pub async fn bind(port: u16) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|e| {
                KonnectorError::new(
                    ErrorCode::UnknownError,
                    format!("cannot listen on 127.0.0.1:{port} for the OAuth redirect: {e}"),
                )
            })?;
        let addr = listener.local_addr().map_err(|e| {
            KonnectorError::new(ErrorCode::UnknownError, format!("no local address: {e}"))
        })?;
        let (tx, hits) = mpsc::channel::<Hit>(8);
        let (shutdown, stop) = oneshot::channel::<()>();
        let app = Router::new()
            .route(CALLBACK_PATH, get(callback))
            .with_state(tx);
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stop.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the OAuth redirect listener stopped");
            }
        });
        Ok(Self {
            addr,
            hits,
            _shutdown: shutdown,
        })
    }

    /// The redirect URI to register in the consent URL.
    pub fn redirect_uri(&self) -> String {
        format!("http://{}{CALLBACK_PATH}", self.addr)
    }

    /// Waits for the redirect of `pending` and checks it. A redirect that
    /// fails the check (wrong or expired state, `error=`) ends the wait with
    /// that error; so does the state's expiry with no redirect at all.
    pub async fn wait(&mut self, pending: &PendingAuthorization) -> Result<Callback> {
        // A little grace past the expiry, so a late redirect is answered
        // with the "expired" page rather than a closed port.
        let left = pending.remaining() + std::time::Duration::from_secs(30);
        let hit = tokio::time::timeout(left, self.hits.recv()).await;
        let (params, reply) = match hit {
            Ok(Some(hit)) => hit,
            Ok(None) => {
                return Err(KonnectorError::new(
                    ErrorCode::UnknownError,
                    "the OAuth redirect listener stopped",
                ));
            }
            Err(_) => {
                return Err(KonnectorError::new(
                    ErrorCode::UserActionNeededOauthOutdated,
                    "no consent came back before the authorization expired; start again",
                ));
            }
        };
        let checked = pending.check(&params);
        let page = match &checked {
            Ok(_) => (
                StatusCode::OK,
                "Gleaner got your consent. You can close this tab.".to_owned(),
            ),
            Err(e) => (
                StatusCode::BAD_REQUEST,
                format!("Gleaner refused this authorization: {}", e.message),
            ),
        };
        let _ = reply.send(page);
        checked
    }
}

async fn callback(
    State(tx): State<mpsc::Sender<Hit>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> (StatusCode, Html<String>) {
    let (reply, answer) = oneshot::channel();
    if tx.send((params, reply)).await.is_err() {
        return page(StatusCode::GONE, "This authorization is over.");
    }
    match answer.await {
        Ok((status, text)) => page(status, &text),
        Err(_) => page(StatusCode::GONE, "This authorization is over."),
    }
}

fn page(status: StatusCode, text: &str) -> (StatusCode, Html<String>) {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        status,
        Html(format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Gleaner</title></head><body><p>{escaped}</p></body></html>"
        )),
    )
}
