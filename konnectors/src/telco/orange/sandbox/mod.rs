//! Offline sandbox of Orange's login application and customer area.
//!
//! [`Sandbox`] serves, on one loopback origin, what the real site serves
//! on two hosts (their paths do not overlap):
//! - `login.orange.fr`: `GET /` (a shell whose form is built by
//!   `/static/login.js`, with a per-page nonce), `POST /api/login`
//!   (`{"login", "params": {"return_url"}}`) and `POST /api/password`
//!   (`{"password", "remember"}`). Each step needs the `X-Login-Proof`
//!   header the script computes from the nonce (FNV-1a of
//!   `nonce:identifier`, then of `nonce:loginToken`), so only a client that
//!   runs the page's scripts logs in. A wrong password is a 401 whose
//!   `message` the form shows in `[role="alert"]`; after
//!   [`MAX_FAILED_PASSWORDS`] wrong ones the account is blocked (403). The
//!   right one sets the session cookie [`SESSION_COOKIE`] and the script
//!   goes to `return_url`.
//! - `espace-client.orange.fr`: `/accueil` (the "connected" ribbon), the
//!   contracts, each contract's recent bills (the
//!   [`data::Fixture::recent_bills`] newest) with `oldBillsHref`, the older
//!   bills, and the PDFs of both, all behind the session cookie; the JSON
//!   APIs also want `X-Orange-Caller-Id`.
//!
//! The data is `fixtures/orange/bills.json` ([`data`]). Maintenance, 503 and
//! 429 are the kit's switches; in [`Scenario::RateLimited`] the switch
//! (every third request answers 429 with `Retry-After: 0`) turns on once
//! the login succeeded, so that it hits the plain-HTTP part of the run (the
//! browser's own requests are not retried by anyone, as on the real site).

pub mod data;
mod login;
mod site;

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use gleaner_sandbox_kit::{
    FaultPages, Faults, ManualClock, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo,
    Sessions, StartFuture, StartOptions, respond,
};

use data::Fixture;

/// The demo account's password.
pub const PASSWORD: &str = "sandbox-password";

/// The session cookie the login sets.
pub const SESSION_COOKIE: &str = "wassup";

/// The login flow's cookie (set by the login page, read by both steps).
const FLOW_COOKIE: &str = "lo_flow";

/// Wrong passwords after which the account is blocked until the sandbox
/// restarts.
pub const MAX_FAILED_PASSWORDS: u32 = 3;

/// How long an idle session lives.
const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// The maintenance page.
pub(crate) const MAINTENANCE_HTML: &str =
    include_str!("../../../../../fixtures/orange/maintenance.html");

/// The demo account's identifier.
pub fn login() -> String {
    data::fixture().login
}

/// How the sandbox behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// Like the real site.
    #[default]
    Normal,
    /// Every page is the maintenance page; nobody can log in.
    Maintenance,
    /// Every request answers 503 with `Retry-After: 0`.
    Unavailable,
    /// Once logged in, every third request answers 429 with
    /// `Retry-After: 0`.
    RateLimited,
    /// The login application's script builds its form with other ids
    /// (`#identifier` instead of `#login`).
    ChangedMarkup,
    /// The bills API renamed `billsHistory.billList` to `bills`.
    ChangedSchema,
}

/// The scenarios by name, in [`Scenario`]'s order.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "the site works like the real one (two lines, 24 bills of 2025 on two pages each)",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "every page is the maintenance page; nobody can log in",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "once logged in, every third request answers 429 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "changed-markup",
        about: "the login form is built with other ids (no #login)",
    },
    ScenarioInfo {
        name: "changed-schema",
        about: "the bills API renamed billsHistory.billList",
    },
];

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Normal,
        Scenario::Maintenance,
        Scenario::Unavailable,
        Scenario::RateLimited,
        Scenario::ChangedMarkup,
        Scenario::ChangedSchema,
    ];

    fn index(self) -> usize {
        Scenario::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// The scenario's name in [`SCENARIOS`].
    pub fn name(self) -> &'static str {
        SCENARIOS[self.index()].name
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One login in progress (between the page and the password).
#[derive(Debug, Clone)]
struct Flow {
    nonce: String,
    /// Issued by the identifier step; signs the password step.
    login_token: Option<String>,
}

/// State shared by the handlers.
struct Shared {
    fixture: Fixture,
    scenario: AtomicU8,
    password: Mutex<String>,
    failed: Mutex<u32>,
    flows: Sessions<Flow>,
    sessions: Sessions<()>,
    faults: OnceLock<Arc<Faults>>,
    pdf_downloads: AtomicUsize,
}

impl Shared {
    fn scenario(&self) -> Scenario {
        Scenario::ALL
            .get(usize::from(self.scenario.load(Ordering::SeqCst)))
            .copied()
            .unwrap_or_default()
    }

    fn logged_in(&self, headers: &HeaderMap) -> bool {
        self.sessions.current(headers).is_some()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running Orange sandbox; stops when dropped or on [`Sandbox::shutdown`].
pub struct Sandbox {
    server: SandboxServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.server.addr())
            .field("scenario", &self.shared.scenario())
            .finish_non_exhaustive()
    }
}

fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "text/html; charset=UTF-8",
        too_many_requests: "<!doctype html><html><body><h1>Trop de requêtes</h1><p>Merci de réessayer dans quelques instants.</p></body></html>",
        unavailable: "<!doctype html><html><body><h1>Service indisponible</h1><p>Le service est momentanément indisponible.</p></body></html>",
        server_error: "<!doctype html><html><body><h1>Erreur technique</h1></body></html>",
        maintenance: MAINTENANCE_HTML,
        maintenance_status: StatusCode::OK,
        maintenance_paths: &[],
        headers: &[],
    }
}

impl Sandbox {
    /// Starts a sandbox on `127.0.0.1` with a port chosen by the system.
    pub async fn start(scenario: Scenario) -> std::io::Result<Sandbox> {
        Self::start_on(scenario, None).await
    }

    /// Starts a sandbox on `127.0.0.1:port` (`None`: any free port).
    pub async fn start_on(scenario: Scenario, port: Option<u16>) -> std::io::Result<Sandbox> {
        let clock: Arc<ManualClock> = Arc::new(ManualClock::running());
        let shared = Arc::new(Shared {
            fixture: data::fixture(),
            scenario: AtomicU8::new(0),
            password: Mutex::new(PASSWORD.to_owned()),
            failed: Mutex::new(0),
            flows: Sessions::new(FLOW_COOKIE, SESSION_TTL, clock.clone()),
            sessions: Sessions::new(SESSION_COOKIE, SESSION_TTL, clock),
            faults: OnceLock::new(),
            pdf_downloads: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = SandboxServer::start_with(app, port, fault_pages()).await?;
        let _ = shared.faults.set(Arc::clone(server.faults()));
        let sandbox = Sandbox { server, shared };
        sandbox.set_scenario(scenario);
        Ok(sandbox)
    }

    /// The sandbox's origin (no trailing slash), the account's endpoint.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Switches to another scenario; applies to the next request.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared
            .scenario
            .store(scenario.index() as u8, Ordering::SeqCst);
        let faults = self.server.faults();
        match scenario {
            // Turned on by the login (see the module doc).
            Scenario::RateLimited => faults.clear(),
            other => {
                faults.apply_scenario(other.name());
            }
        }
    }

    /// Changes the account's password (default [`PASSWORD`]).
    pub fn set_password(&self, password: &str) {
        *lock(&self.shared.password) = password.to_owned();
    }

    /// Requests received, whatever their outcome.
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// Requests received for `method` and `path` (no query).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.server.stats().count(method, path)
    }

    /// Password steps tried (`POST /api/password`).
    pub fn password_posts(&self) -> usize {
        self.count("POST", "/api/password")
    }

    /// PDFs served (status 200).
    pub fn pdf_downloads(&self) -> usize {
        self.shared.pdf_downloads.load(Ordering::SeqCst)
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner sandbox`).
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "orange",
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
                    format!("no Orange scenario `{name}`"),
                )
            })?,
        };
        let sandbox = Sandbox::start_on(scenario, options.port).await?;
        Ok(RunningSandbox {
            base_url: sandbox.base_url(),
            fields: vec![("login".into(), login())],
            secrets: vec![("password".into(), PASSWORD.into())],
            scenario: scenario.name().to_owned(),
            guard: Box::new(sandbox),
        })
    })
}

/// The single entry point, after the kit's counters and fault switches.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.sessions.touch(&headers);
    shared.flows.touch(&headers);
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match path {
        "/" if get => login::page(&shared),
        "/static/login.js" if get => login::script(&shared),
        "/api/login" if post => login::identifier(&shared, &headers, &body),
        "/api/password" if post => login::password(&shared, &headers, &body),
        "/accueil" if get => site::home(&shared, &headers),
        p if p.starts_with("/ecd_wp/") && get => site::api(&shared, p, query, &headers),
        _ => respond::html(
            StatusCode::NOT_FOUND,
            "<!doctype html><html><body><h1>Page introuvable</h1></body></html>",
        ),
    }
}

#[cfg(test)]
mod tests;
