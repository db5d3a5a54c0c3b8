//! Offline sandbox of the Free Mobile customer area.
//!
//! [`Sandbox`] is a small HTTP/1.1 server bound to `127.0.0.1` that behaves
//! like the classic HTML version of `https://mobile.free.fr/account/`: login
//! form, `PHPSESSID` session cookie, multi-line accounts with
//! `?switch-user=<id>`, invoice PDFs under `/account/conso-et-factures`, and
//! `?logout`. It serves the hand-written pages and PDFs of
//! `fixtures/free-mobile/`, embedded at compile time so the binary works from
//! any directory.
//!
//! The account accepts [`LOGIN`] / [`PASSWORD`]. It has two lines,
//! `12345678` ("06 12 34 56 78", 12 monthly invoices and 2 multi-line
//! summaries) and `87654321` ("07 98 76 54 32", 6 monthly invoices).
//!
//! [`LOGIN_2FA`] (same password, same lines) has **new-device
//! verification** on: after a correct password, a browser that shows no
//! trusted-device cookie gets a verification page ("Un code de vérification
//! a été envoyé à j***@example.org", form `otp` + hidden `otp-token`, posted
//! to `/account/verification`) and a 6-digit code is "emailed": it lands in
//! the sandbox's outbox ([`Sandbox::outbox`], [`Sandbox::last_email_code`],
//! and `GET /__sandbox/outbox` as JSON, loopback clients only). The code
//! stays valid for 10 minutes and 5 tries; a wrong code shows the page again
//! with an error, the 5th wrong one a lockout page (30 minutes). The right
//! code logs the session in and, when `otp-trust=1` is posted (the box is
//! ticked by default), sets a `fm_trusted_device` cookie: later logins that
//! send it are not asked again. Time for expiry and lockout is the
//! sandbox's own clock, which tests move with [`Sandbox::advance_clock`].
//!
//! A [`Scenario`] selects a failure mode (maintenance page, redesigned markup,
//! 503, truncated PDFs, rate limiting); it can be changed while the server
//! runs with [`Sandbox::set_scenario`]. Counters ([`Sandbox::requests`],
//! [`Sandbox::login_posts`], ...) let tests check how a konnector behaved.
//!
//! The server, sessions, cookies, form parsing and the 429/503/maintenance
//! switches come from `gleaner-sandbox-kit`; this module holds what is
//! Free Mobile's: [`login`] (the form, the home page, line switching),
//! [`verification`] (new-device codes, the outbox), [`invoices`] (the PDFs),
//! [`pages`] (the fixtures and how they are served), [`state`].
//!
//! Every response is delayed a little (a few milliseconds, more for PDFs) so
//! that concurrent requests really overlap and
//! [`Sandbox::max_concurrent_sessions`] is meaningful.

mod invoices;
mod login;
mod pages;
mod state;
mod verification;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use gleaner_sandbox_kit::{
    DEBUG_PREFIX, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo, StartFuture,
    StartOptions,
};

pub use state::SentEmail;

use pages::{NOT_FOUND_HTML, SERVER, html, method_not_allowed, redirect};
use state::Shared;

/// Demo customer id (`login-ident`) the sandbox accepts.
pub const LOGIN: &str = "12345678";

/// Demo password (`login-pwd`) the sandbox accepts.
pub const PASSWORD: &str = "sandbox-password";

/// A second customer id, with the same password and lines as [`LOGIN`],
/// whose account has new-device verification (a code sent by email) on.
pub const LOGIN_2FA: &str = "24681357";

/// The email address verification codes of [`LOGIN_2FA`] go to.
pub const EMAIL_TO: &str = "jeanne.martin@example.org";

/// [`EMAIL_TO`] as the verification page shows it.
pub const EMAIL_HINT: &str = "j***@example.org";

/// The loopback-only debug endpoint listing the emails sent (JSON).
pub const OUTBOX_PATH: &str = "/__sandbox/outbox";

/// How long a verification code is accepted after it was sent.
pub const CODE_VALIDITY: Duration = Duration::from_secs(10 * 60);

/// Wrong codes after which verification is locked ([`LOCKOUT`]).
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// How long verification stays locked after [`MAX_CODE_ATTEMPTS`] wrong codes.
pub const LOCKOUT: Duration = Duration::from_secs(30 * 60);

/// Name of the cookie that marks a device as trusted.
pub const TRUSTED_DEVICE_COOKIE: &str = "fm_trusted_device";

/// How long a trusted device is remembered (`Max-Age`, 30 days).
const TRUSTED_DEVICE_MAX_AGE: u64 = 30 * 24 * 3600;

/// Consecutive failed logins after which an identifier is blocked until the
/// sandbox restarts (the 6th attempt and later get the "blocked" page).
const MAX_FAILED_LOGINS: u32 = 5;

/// Delay added to every HTML (or error) response.
const PAGE_LATENCY: Duration = Duration::from_millis(2);

/// Delay added to every response of the PDF route.
const PDF_LATENCY: Duration = Duration::from_millis(15);

/// How long an idle session lives server-side unless
/// [`Sandbox::set_session_ttl`] says otherwise (30 min, like the site).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// Name of the session cookie, as PHP sets it.
const SESSION_COOKIE: &str = "PHPSESSID";

/// The login form's path (counted by [`Sandbox::login_posts`]).
const LOGIN_PATH: &str = "/account/";

/// The verification form's path.
const VERIFICATION_PATH: &str = "/account/verification";

/// How the sandbox behaves; see [`Sandbox::set_scenario`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// The site works like the real one.
    #[default]
    Normal,
    /// Every GET/POST under `/account` answers 200 with the maintenance page
    /// ("Opération de maintenance en cours"); nobody can log in.
    Maintenance,
    /// Login works, but the home pages (for every line) use a redesigned
    /// markup in which `div.table-facture` / `div.invoice` match nothing.
    ChangedMarkup,
    /// Every request answers 503 "Service Unavailable" with `Retry-After: 0`.
    Unavailable,
    /// PDFs are served cut to their first half, with a matching
    /// `Content-Length`: the transfer looks complete, the file is not.
    TruncatedPdf,
    /// Every third request (counted from when this scenario was set) answers
    /// 429 with `Retry-After: 0`; the others behave as [`Scenario::Normal`].
    RateLimited,
}

/// The scenarios by name, in [`Scenario`]'s order (`gleaner sandbox
/// free-mobile --scenario NAME`).
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "the site works like the real one",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "the customer area shows the maintenance page; nobody can log in",
    },
    ScenarioInfo {
        name: "changed-markup",
        about: "login works, but the home pages use a redesigned markup",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "truncated-pdf",
        about: "PDFs are served cut in half, with a matching Content-Length",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "every third request answers 429 with Retry-After: 0",
    },
];

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Normal,
        Scenario::Maintenance,
        Scenario::ChangedMarkup,
        Scenario::Unavailable,
        Scenario::TruncatedPdf,
        Scenario::RateLimited,
    ];

    fn to_u8(self) -> u8 {
        match self {
            Scenario::Normal => 0,
            Scenario::Maintenance => 1,
            Scenario::ChangedMarkup => 2,
            Scenario::Unavailable => 3,
            Scenario::TruncatedPdf => 4,
            Scenario::RateLimited => 5,
        }
    }

    fn from_u8(value: u8) -> Scenario {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.to_u8() == value)
            .unwrap_or_default()
    }

    /// The scenario's name in [`SCENARIOS`].
    pub fn name(self) -> &'static str {
        SCENARIOS[usize::from(self.to_u8())].name
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A running Free Mobile sandbox; stops when dropped or on [`Sandbox::shutdown`].
pub struct Sandbox {
    addr: SocketAddr,
    server: SandboxServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .field("scenario", &self.shared.scenario())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox on `127.0.0.1` with a port chosen by the system.
    ///
    /// Must be called from within a Tokio runtime; the server runs on a
    /// spawned task until [`Sandbox::shutdown`] or drop.
    pub async fn start(scenario: Scenario) -> std::io::Result<Sandbox> {
        Self::start_on(scenario, None).await
    }

    /// Starts a sandbox on `127.0.0.1:port` (`None`: any free port).
    pub async fn start_on(scenario: Scenario, port: Option<u16>) -> std::io::Result<Sandbox> {
        let shared = Arc::new(Shared::new(scenario));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = SandboxServer::start_with(app, port, pages::fault_pages()).await?;
        let sandbox = Sandbox {
            addr: server.addr(),
            server,
            shared,
        };
        sandbox.set_scenario(scenario);
        tracing::debug!(addr = %sandbox.addr, ?scenario, "free mobile sandbox started");
        Ok(sandbox)
    }

    /// The sandbox's origin, e.g. `http://127.0.0.1:41234` (no trailing slash);
    /// the customer area is at `{base_url}/account/`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Number of `POST /account/` (login attempts) received, whatever the
    /// scenario and outcome (503, 429, maintenance and 400 included).
    pub fn login_posts(&self) -> usize {
        self.server.stats().count("POST", LOGIN_PATH)
    }

    /// Number of HTTP requests received, whatever their outcome.
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// Number of PDF responses (status 200) sent, truncated ones included.
    pub fn pdf_downloads(&self) -> usize {
        self.shared.pdf_downloads.load(Ordering::SeqCst)
    }

    /// The largest number of requests that were being handled at the same
    /// time since the sandbox started.
    pub fn max_concurrent_sessions(&self) -> usize {
        self.server.stats().max_in_flight()
    }

    /// Number of `POST /account/verification` (codes submitted) received.
    pub fn verification_posts(&self) -> usize {
        self.server.stats().count("POST", VERIFICATION_PATH)
    }

    /// Every email sent so far (verification codes), oldest first.
    pub fn outbox(&self) -> Vec<SentEmail> {
        self.shared.two_factor().outbox.clone()
    }

    /// The code of the last email sent, if any.
    pub fn last_email_code(&self) -> Option<String> {
        self.shared
            .two_factor()
            .outbox
            .last()
            .map(|mail| mail.code.clone())
    }

    /// Changes the account's password (default [`PASSWORD`]), so tests can
    /// use unusual values (the leak test).
    pub fn set_password(&self, password: &str) {
        self.shared.set_password(password);
    }

    /// Sets how long an idle session lives server-side (default
    /// [`DEFAULT_SESSION_TTL`]).
    pub fn set_session_ttl(&self, ttl: Duration) {
        self.shared.sessions.set_ttl(ttl);
    }

    /// Moves the sandbox clock forward, as if `by` had passed: sessions idle
    /// for longer than their TTL die at the next request, codes expire and
    /// lockouts end. Lets tests move time without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Number of live sessions the sandbox holds.
    pub fn live_sessions(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Switches to another scenario; applies to the next request. Sessions
    /// and failed-login counts are kept; the [`Scenario::RateLimited`]
    /// counter restarts.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared.set_scenario(scenario);
        // Maintenance, 503 and 429 are the kit's switches; the other
        // scenarios are this site's own and clear them.
        self.server.faults().apply_scenario(scenario.name());
    }

    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most a few seconds) and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner sandbox`).
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "free-mobile",
        scenarios: SCENARIOS,
        start: start_definition,
    }
}

fn start_definition(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let scenario = match options.scenario.as_deref() {
            None => Scenario::default(),
            Some(name) => Scenario::from_name(name).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("no Free Mobile scenario `{name}`"),
                )
            })?,
        };
        let sandbox = Sandbox::start_on(scenario, options.port).await?;
        Ok(RunningSandbox {
            base_url: sandbox.base_url(),
            fields: vec![("login".into(), LOGIN.into())],
            secrets: vec![("password".into(), PASSWORD.into())],
            scenario: scenario.name().to_owned(),
            guard: Box::new(sandbox),
        })
    })
}

/// The single entry point (after the kit counted the request and applied
/// the fault switches): sessions, latency, then routes.
async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().starts_with(DEBUG_PREFIX) {
        // The sandbox's own debug routes: not part of the site.
        return verification::debug_route(&shared, peer, &method, uri.path());
    }
    shared.sessions.touch(&headers);
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let pdf_route = path == "/account/conso-et-factures";
    tokio::time::sleep(if pdf_route { PDF_LATENCY } else { PAGE_LATENCY }).await;
    let scenario = shared.scenario();
    let mut response = route(&shared, scenario, &method, path, query, &headers, &body);
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER));
    tracing::debug!(
        %method,
        %uri,
        status = response.status().as_u16(),
        ?scenario,
        "free mobile sandbox request"
    );
    response
}

fn route(
    shared: &Shared,
    scenario: Scenario,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let is_get = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/account" if is_get => redirect(&if query.is_empty() {
            "/account/".to_owned()
        } else {
            format!("/account/?{query}")
        }),
        LOGIN_PATH if is_get => login::account_get(shared, scenario, query, headers),
        LOGIN_PATH if *method == Method::POST => login::account_post(shared, headers, body),
        VERIFICATION_PATH if *method == Method::POST => {
            verification::verification_post(shared, headers, body)
        }
        "/account/conso-et-factures" if is_get => {
            invoices::invoices_get(shared, scenario, query, headers)
        }
        "/account" | LOGIN_PATH | "/account/conso-et-factures" | VERIFICATION_PATH => {
            method_not_allowed()
        }
        _ => html(StatusCode::NOT_FOUND, NOT_FOUND_HTML),
    }
}

#[cfg(test)]
mod tests;
