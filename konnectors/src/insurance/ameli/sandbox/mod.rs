//! Offline sandbox of the compte ameli (assure.ameli.fr).
//!
//! [`Sandbox`] is a small HTTP server on `127.0.0.1` that behaves like the
//! portal as Cozy's and Woob's konnectors see it: the login page
//! (`JSESSIONID` session cookie), the token servlet
//! (`POST /PortailAS/JavaScriptServlet`, `FETCH-CSRF-TOKEN: 1` →
//! `_ct:<token>`), the login form (`connexioncompte_2numSecuriteSociale`,
//! `connexioncompte_2codeConfidentiel`, `_ct`), the refusal alert, the
//! "Compte bloqué" page after [`MAX_FAILED_LOGINS`] wrong passwords, the
//! home page with the logout link, and the payments portlet
//! (`/PortailAS/paiements.do`): the list as JSON (`tableauPaiement`, four
//! payments a page, `indexPaiement` paging, filtered by
//! `DateDebut`/`DateFin`), each payment's detail, and its statement PDF.
//! The data is `fixtures/ameli/payments.json` (Camille MARTIN, NIR
//! [`NIR`], and her daughter Louise), embedded at compile time.
//!
//! Scenarios ([`SCENARIOS`], `normal` first): `new-device` (the emailed
//! security code: the login form comes back at `authStep=OTP_NECESSAIRE`,
//! `ENVOI_OTP` "emails" a 6-digit code into the outbox
//! ([`Sandbox::last_email_code`], `GET /__sandbox/outbox`), `SAISIE_OTP`
//! checks `numOTP1..6`, and `enrolerDevice=on` sets the `trustConnect0`
//! cookie so the device is not asked again), `maintenance` (the "compte
//! indisponible" page), `unavailable` (503), `rate-limited` (every third
//! request 429 with `Retry-After: 0`), `changed-markup` (the list's
//! `ul#unordered_list` is gone) and `changed-schema` (the list's JSON lost
//! `tableauPaiement`).

pub(crate) mod data;
pub(crate) mod site;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use gleaner_sandbox_kit::{
    DEBUG_PREFIX, FaultPages, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo,
    StartFuture, StartOptions,
};

pub use data::PAYMENTS_JSON;
pub use state::SentEmail;

use state::Shared;

/// The insured's social security number (15 digits with its key).
pub const NIR: &str = "285037511234567";

/// The demo account's login: the NIR as the login form takes it, its
/// first 13 characters (a 15-digit NIR is accepted too: the konnector
/// drops the key). The demo uses these 13 so that a recorded cassette
/// scrubs the value the form posts, which is then exactly the field.
pub const LOGIN: &str = "2850375112345";

/// The demo account's password.
pub const PASSWORD: &str = "sandbox-password";

/// The masked address the code form shows.
pub const EMAIL_HINT: &str = "c***n@example.org";

/// The loopback-only debug endpoint listing the emails sent (JSON).
pub const OUTBOX_PATH: &str = "/__sandbox/outbox";

/// Wrong passwords after which the account is blocked.
pub const MAX_FAILED_LOGINS: u32 = 5;

/// The trusted-device cookie (Woob: `trustConnect0`).
pub const TRUSTED_DEVICE_COOKIE: &str = "trustConnect0";

/// The session cookie of the WebLogic portal.
const SESSION_COOKIE: &str = "JSESSIONID";

/// How the sandbox behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Scenario {
    /// The site works like the real one.
    #[default]
    Normal = 0,
    /// A login from a device without the trusted-device cookie needs the
    /// security code emailed.
    NewDevice = 1,
    /// The "compte indisponible" page (maintenance) everywhere.
    Maintenance = 2,
    /// Every request answers 503 with `Retry-After: 0`.
    Unavailable = 3,
    /// Every third request answers 429 with `Retry-After: 0`.
    RateLimited = 4,
    /// The payments list lost `ul#unordered_list`.
    ChangedMarkup = 5,
    /// The payments list's JSON lost `tableauPaiement`.
    ChangedSchema = 6,
}

/// The scenarios by name, in [`Scenario`]'s order.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "the site works like the real one",
    },
    ScenarioInfo {
        name: "new-device",
        about: "a login from an unknown device needs the security code emailed (see the outbox)",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "the compte ameli shows its unavailability (maintenance) page",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "every third request answers 429 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "changed-markup",
        about: "login works, but the payments list uses a redesigned markup",
    },
    ScenarioInfo {
        name: "changed-schema",
        about: "login works, but the payments list's JSON lost its tableauPaiement field",
    },
];

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::Normal,
        Scenario::NewDevice,
        Scenario::Maintenance,
        Scenario::Unavailable,
        Scenario::RateLimited,
        Scenario::ChangedMarkup,
        Scenario::ChangedSchema,
    ];

    fn from_u8(value: u8) -> Scenario {
        Scenario::ALL
            .into_iter()
            .find(|s| *s as u8 == value)
            .unwrap_or_default()
    }

    /// The scenario's name in [`SCENARIOS`].
    pub fn name(self) -> &'static str {
        SCENARIOS
            .get(self as usize)
            .map_or("normal", |info| info.name)
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A running Ameli sandbox; stops when dropped or on [`Sandbox::shutdown`].
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

impl Sandbox {
    /// Starts a sandbox on `127.0.0.1` with a port chosen by the system.
    pub async fn start(scenario: Scenario) -> std::io::Result<Sandbox> {
        Self::start_on(scenario, None).await
    }

    /// Starts a sandbox on `127.0.0.1:port` (`None`: any free port).
    pub async fn start_on(scenario: Scenario, port: Option<u16>) -> std::io::Result<Sandbox> {
        let shared = Arc::new(Shared::new(scenario, data::Fixture::load()?));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = SandboxServer::start_with(app, port, fault_pages()).await?;
        let sandbox = Sandbox { server, shared };
        sandbox.set_scenario(scenario);
        Ok(sandbox)
    }

    /// The sandbox's origin, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Switches to another scenario; applies to the next request.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared.set_scenario(scenario);
        self.server.faults().apply_scenario(scenario.name());
    }

    /// Changes the account's password (default [`PASSWORD`]).
    pub fn set_password(&self, password: &str) {
        self.shared.set_password(password);
    }

    /// Requests received, whatever their outcome.
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// Login form posts received (credentials and code steps).
    pub fn login_posts(&self) -> usize {
        self.server
            .stats()
            .count("POST", "/PortailAS/appmanager/PortailAS/assure")
    }

    /// Payments list pages served.
    pub fn list_pages(&self) -> usize {
        self.shared.list_pages.load(Ordering::SeqCst)
    }

    /// Payment details served.
    pub fn details(&self) -> usize {
        self.shared.details.load(Ordering::SeqCst)
    }

    /// Statement PDFs served.
    pub fn pdf_downloads(&self) -> usize {
        self.shared.pdf_downloads.load(Ordering::SeqCst)
    }

    /// Every email sent so far (security codes), oldest first.
    pub fn outbox(&self) -> Vec<SentEmail> {
        self.shared.outbox().clone()
    }

    /// The code of the last email sent, if any.
    pub fn last_email_code(&self) -> Option<String> {
        self.shared.outbox().last().map(|m| m.code.clone())
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner sandbox`).
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "ameli",
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
                    format!("no Ameli scenario `{name}`"),
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

const TOO_MANY_HTML: &str = "<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>\n";
const UNAVAILABLE_HTML: &str = "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>\n";
const SERVER_ERROR_HTML: &str = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n";

fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "text/html; charset=UTF-8",
        too_many_requests: TOO_MANY_HTML,
        unavailable: UNAVAILABLE_HTML,
        server_error: SERVER_ERROR_HTML,
        maintenance: site::MAINTENANCE_HTML,
        maintenance_status: StatusCode::OK,
        maintenance_paths: &["/PortailAS"],
        headers: &[],
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().starts_with(DEBUG_PREFIX) {
        return debug_route(&shared, peer, &method, uri.path());
    }
    shared.sessions.touch(&headers);
    let query = uri.query().unwrap_or("");
    let is_get = method == Method::GET || method == Method::HEAD;
    match uri.path() {
        "/PortailAS/appmanager/PortailAS/assure" if is_get => {
            site::portal_get(&shared, query, &headers)
        }
        "/PortailAS/appmanager/PortailAS/assure" if method == Method::POST => {
            site::login_post(&shared, &headers, &body)
        }
        "/PortailAS/JavaScriptServlet" if method == Method::POST => {
            site::csrf_post(&shared, &headers)
        }
        "/PortailAS/paiements.do" if is_get => site::payments_get(&shared, query, &headers),
        _ => site::not_found(),
    }
}

fn debug_route(shared: &Shared, peer: SocketAddr, method: &Method, path: &str) -> Response {
    if !peer.ip().is_loopback() || *method != Method::GET || path != OUTBOX_PATH {
        return site::not_found();
    }
    let outbox = shared.outbox().clone();
    match serde_json::to_vec(&outbox) {
        Ok(json) => {
            let mut response = Response::new(Body::from(json));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => site::not_found(),
    }
}
