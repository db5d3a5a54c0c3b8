//! `gleaner serve`: the web interface for people enabling providers.
//!
//! Server-rendered pages (askama templates under `templates/`), one small
//! script (`static/app.js`) for what is better live: the running job's
//! progress and the second-factor prompt, pushed by server-sent events.
//! Every flow (enable, run, answer a code, see documents) also works with
//! scripts off.
//!
//! - `security.rs`: the walls every request passes (session, CSRF, headers).
//! - `auth.rs`: the one-time login link, the optional passphrase, sessions,
//!   the login rate limit.
//! - `state.rs`: what handlers share ([`state::WebState`]).
//! - `render.rs`: the layout every page extends, errors as pages.
//! - `catalogue.rs`, `account.rs`, `documents.rs`: the pages, one module per
//!   part of the site; `charts.rs`: the server-rendered SVG pictures.
//!
//! The daemon's workers run in the same process unless `--no-daemon`: a run
//! started from a page, and its second factor, need a worker.

mod account;
mod assets;
mod auth;
mod catalogue;
mod charts;
mod documents;
mod render;
mod security;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use gleaner_framework::Secret;

use crate::app::App;
use state::WebState;

/// How `gleaner serve` was asked to run.
pub struct ServeOptions {
    /// The address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// Whether the daemon's workers run in this process.
    pub daemon: bool,
    /// A passphrase that also logs in (besides the one-time link).
    pub passphrase: Option<Secret>,
    /// Whether the session cookie is `Secure` (served behind TLS).
    pub secure_cookies: bool,
}

/// Builds the whole site: the pages, then the walls around them (the
/// outermost layer, the security headers, runs on every response).
fn router(state: Arc<WebState>) -> Router {
    let pages = Router::new()
        .merge(auth::session_routes())
        .merge(account::routes())
        .merge(catalogue::routes())
        .merge(documents::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            security::require_session,
        ));
    Router::new()
        .merge(auth::routes())
        .merge(assets::routes())
        .merge(pages)
        .fallback(render::not_found)
        .layer(axum::middleware::map_response(security::headers))
        .with_state(state)
}

/// Runs the web interface until SIGINT or SIGTERM.
pub async fn serve(app: Arc<App>, options: ServeOptions) -> Result<()> {
    if !options.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %options.listen,
            "the web interface listens beyond this machine; put it behind TLS and use --secure-cookies"
        );
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr()?;
    let base_url = format!("http://{address}");
    let mut scheduler = app.scheduler("serve").await?;
    // The runs this process's workers do report their progress to the
    // board the account pages read.
    let progress = account::ProgressBoard::default();
    if let Some(sched) = Arc::get_mut(&mut scheduler) {
        sched.progress = Some(progress.hook());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(WebState::new(
        Arc::clone(&app),
        Arc::clone(&scheduler),
        base_url.clone(),
        progress,
        stop_rx.clone(),
        options.passphrase,
        options.secure_cookies,
    ));
    // The signal handlers exist before anyone is told the server is up.
    let stop = crate::signals::stop_signal()?;
    let daemon = options.daemon.then(|| {
        let sched = Arc::clone(&scheduler);
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            sched.run_daemon(shutdown).await
        })
    });
    let token = state.auth.one_time_token();
    println!("Gleaner is at {base_url}/");
    println!("Log in with this one-time link: {base_url}/login?token={token}");
    if state.auth.has_passphrase() {
        println!("or with the passphrase at {base_url}/login");
    }
    if daemon.is_some() {
        println!(
            "Scheduled runs happen in this process (--no-daemon to leave them to `gleaner daemon`)."
        );
    }
    let mut server_rx = stop_rx.clone();
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = server_rx.wait_for(|stop| *stop).await;
        })
        .into_future();
    let server = tokio::spawn(server);
    let stopped = stop.await;
    let _ = stop_tx.send(true);
    if let Some(daemon) = daemon {
        match daemon.await {
            Ok(Ok(summary)) if !summary.requeued.is_empty() => eprintln!(
                "stopped; {} running job(s) queued again for the next start",
                summary.requeued.len()
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the daemon stopped with an error"),
            Err(e) => tracing::error!(error = %e, "the daemon task failed"),
        }
    }
    server
        .await
        .context("the web server task failed")?
        .context("the web server failed")?;
    stopped
}

use std::future::IntoFuture;
