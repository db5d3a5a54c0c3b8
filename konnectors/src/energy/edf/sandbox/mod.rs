//! Offline sandbox of EDF's customer area, on `127.0.0.1`: the ForgeRock
//! SSO's REST login ([`sso`]), the customer area's `services/rest` JSON
//! services, the document downloads and the monthly consumption API
//! ([`site`]), serving the account of `fixtures/edf/account.json`
//! (through [`super::fixture`]). PDFs are made on the fly ([`pdf`]).
//!
//! The account accepts [`super::fixture::Account::login`] (see [`LOGIN`])
//! with [`PASSWORD`]. Five wrong passwords lock it (401 "Compte
//! utilisateur verrouillé") until the sandbox restarts.
//!
//! In the `two-factor` scenario a device without a token EDF gave it gets
//! the `HOTPcust3` stage: a 6-digit code is "e-mailed" into the outbox
//! ([`Sandbox::last_email_code`], and `GET /__sandbox/outbox` as JSON);
//! the right code earns a device token (a `HiddenValueCallback`) that
//! spares later logins the code; a wrong one answers "Code incorrect".
//! In the other scenarios every device is trusted, so the demo account
//! needs no human.
//!
//! Faults (429 with `Retry-After`, 503, the maintenance page) are the
//! kit's switches; `changed-schema` renames the invoice list's field.

mod site;
mod sso;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use gleaner_sandbox_kit::respond::{html, json};
use gleaner_sandbox_kit::{
    DEBUG_PREFIX, FaultPages, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo, StartFuture,
    StartOptions,
};

use state::Shared;

/// The demo account's login (the fixture's).
pub const LOGIN: &str = "camille.martin@example.org";

/// The demo account's password.
pub const PASSWORD: &str = "sandbox-password";

/// The masked address the code prompt shows.
pub const EMAIL_HINT: &str = "c***n@example.org";

/// Wrong passwords after which the account is locked.
pub const MAX_FAILED_LOGINS: u32 = 5;

/// How the sandbox behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// The site works like the real one; every device is trusted.
    #[default]
    Normal,
    /// A new device must give the code EDF e-mails.
    TwoFactor,
    /// Every third request answers 429 with `Retry-After: 0`.
    RateLimited,
    /// Every request answers 503.
    Unavailable,
    /// Every page is EDF's maintenance page.
    Maintenance,
    /// The invoice list's `listOfbills` is renamed `billsList`.
    ChangedSchema,
}

/// The scenarios by name, in [`Scenario`]'s order.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "the site works like the real one; the device is trusted",
    },
    ScenarioInfo {
        name: "two-factor",
        about: "a new device is asked for the code EDF e-mails (outbox: GET /__sandbox/outbox)",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "every third request answers 429 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "every page is EDF's maintenance page",
    },
    ScenarioInfo {
        name: "changed-schema",
        about: "the invoice list renames its `listOfbills` field",
    },
];

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Normal,
        Scenario::TwoFactor,
        Scenario::RateLimited,
        Scenario::Unavailable,
        Scenario::Maintenance,
        Scenario::ChangedSchema,
    ];

    /// The scenario's name in [`SCENARIOS`].
    pub fn name(self) -> &'static str {
        let i = Scenario::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default();
        SCENARIOS[i].name
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

const MAINTENANCE_HTML: &str = "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>EDF - Site en maintenance</title></head><body><h1>Notre site est en maintenance</h1><p>Pour am\u{e9}liorer nos services, votre Espace Client est momentan\u{e9}ment indisponible. Merci de revenir plus tard.</p></body></html>";

fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "text/html; charset=UTF-8",
        too_many_requests: "<!DOCTYPE html><html><body><h1>Too Many Requests</h1></body></html>",
        unavailable: "<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>",
        server_error: "<!DOCTYPE html><html><body><h1>Internal Server Error</h1></body></html>",
        maintenance: MAINTENANCE_HTML,
        maintenance_status: StatusCode::OK,
        maintenance_paths: &[],
        headers: &[],
    }
}

/// A running EDF sandbox; stops when dropped or on [`Sandbox::shutdown`].
pub struct Sandbox {
    server: SandboxServer,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.server.addr())
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
        let shared = Arc::new(Shared::new(scenario).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("fixtures/edf/account.json: {e}"),
            )
        })?);
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

    /// Switches scenario; applies to the next request.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared.set_scenario(scenario);
        self.server.faults().apply_scenario(scenario.name());
    }

    /// Number of requests received.
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// Number of `method path` requests received.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.server.stats().count(method, path)
    }

    /// Number of PDFs served.
    pub fn pdf_downloads(&self) -> usize {
        self.shared.pdf_downloads.load(Ordering::SeqCst)
    }

    /// The code of the last e-mail sent, if any.
    pub fn last_email_code(&self) -> Option<String> {
        self.shared.outbox().last().map(|m| m.code.clone())
    }

    /// Every e-mail sent so far.
    pub fn outbox(&self) -> Vec<state::SentEmail> {
        self.shared.outbox()
    }

    /// Moves the sandbox clock forward: sessions idle for longer than 30
    /// minutes die at the next request, as on the site.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.shared.clock.advance(by);
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner sandbox`).
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "edf",
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
                    format!("no EDF scenario `{name}`"),
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

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    if path.starts_with(DEBUG_PREFIX) {
        if path == "/__sandbox/outbox" && peer.ip().is_loopback() && method == Method::GET {
            let mails = serde_json::to_value(shared.outbox()).unwrap_or_default();
            return json(StatusCode::OK, &mails);
        }
        return html(StatusCode::NOT_FOUND, "not found");
    }
    shared.sessions.touch(&headers);
    match (method.clone(), path) {
        (Method::POST, super::routes::AUTHENTICATE) => sso::authenticate(&shared, query, &body),
        (Method::GET, _) => site::get(&shared, path, query, &headers),
        _ => html(StatusCode::METHOD_NOT_ALLOWED, "<h1>405</h1>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
        assert_eq!(SCENARIOS[0].name, "normal");
    }
}
