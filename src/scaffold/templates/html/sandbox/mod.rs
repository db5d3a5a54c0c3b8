//! Offline sandbox of the {{name}} customer area (a loopback stand-in for
//! the site, built only with the `sandbox` feature).
//!
//! It serves the pages of `fixtures/{{slug}}/` (embedded at compile time):
//! `GET /login` (the form), `POST /login` (a session cookie and a redirect
//! to the bills, or the form again with "incorrect"), `GET /bills` (two
//! invoices), `GET /bills/<id>.pdf` (a small valid PDF) and `GET /logout`.
//! The account [`LOGIN`] / [`PASSWORD`] logs in.
//!
//! Split by concern: [`site`] (the routes), [`pdf`] (the invoices' PDFs);
//! the server, sessions, cookies, forms and the 429/503/maintenance
//! switches come from `gleaner-sandbox-kit`.
//!
//! Run it alone with `gleaner sandbox {{slug}} [--scenario NAME]`.

mod pdf;
mod site;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use gleaner_sandbox_kit::{
    FaultPages, ManualClock, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo,
    Sessions, StartFuture, StartOptions,
};

/// The demo customer identifier the sandbox accepts.
pub const LOGIN: &str = "sandbox-user";

/// The demo password the sandbox accepts.
pub const PASSWORD: &str = "sandbox-password";

/// The session cookie's name.
const SESSION_COOKIE: &str = "SESSIONID";

/// How long an idle session lives.
const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// The scenarios by name (`gleaner sandbox {{slug}} --scenario NAME`); the
/// first is the default.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "the site works: two invoices and their PDFs",
    },
    ScenarioInfo {
        name: "changed-markup",
        about: "login works, but the bills table was renamed (table.invoices matches nothing)",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "every page shows the maintenance page; nobody can log in",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "every third request answers 429 with Retry-After: 0",
    },
];

/// What the routes share.
pub(crate) struct Shared {
    sessions: Sessions<()>,
    changed_markup: AtomicBool,
}

/// A running sandbox; dropping it stops the server.
pub struct Sandbox {
    server: SandboxServer,
    shared: Arc<Shared>,
}

impl Sandbox {
    /// Starts the sandbox on `127.0.0.1:port` (`None`: any free port) in
    /// `scenario` (one of [`SCENARIOS`]).
    pub async fn start(scenario: &str, port: Option<u16>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            sessions: Sessions::new(
                SESSION_COOKIE,
                SESSION_TTL,
                Arc::new(ManualClock::running()),
            ),
            changed_markup: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/login", get(site::login_page).post(site::login_post))
            .route("/bills", get(site::bills))
            .route("/bills/{file}", get(site::bill_pdf))
            .route("/logout", get(site::logout))
            .with_state(Arc::clone(&shared));
        let server = SandboxServer::start_with(app, port, fault_pages()).await?;
        let sandbox = Self { server, shared };
        if !sandbox.set_scenario(scenario) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no {{name}} scenario `{scenario}`"),
            ));
        }
        Ok(sandbox)
    }

    /// `http://127.0.0.1:<port>`: the account's endpoint.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Switches to a scenario of [`SCENARIOS`]; `false` for an unknown one.
    pub fn set_scenario(&self, name: &str) -> bool {
        let changed = name == "changed-markup";
        self.shared.changed_markup.store(changed, Ordering::SeqCst);
        changed || self.server.faults().apply_scenario(name)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The site's own fault pages: HTML, maintenance as a page of its own.
fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "text/html; charset=UTF-8",
        too_many_requests: "<html><body><h1>Trop de requêtes</h1></body></html>",
        unavailable: "<html><body><h1>Service indisponible</h1></body></html>",
        server_error: "<html><body><h1>Erreur interne</h1></body></html>",
        maintenance: "<html><body><div class=\"maintenance\">Opération de maintenance en cours</div></body></html>",
        maintenance_status: StatusCode::OK,
        maintenance_paths: &[],
        headers: &[],
    }
}

/// The sandbox as the registry knows it (`gleaner sandbox`, `gleaner demo`,
/// the conformance tests).
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "{{slug}}",
        scenarios: SCENARIOS,
        start: start_definition,
    }
}

fn start_definition(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let scenario = options.scenario.unwrap_or_else(|| "normal".to_owned());
        let sandbox = Sandbox::start(&scenario, options.port).await?;
        Ok(RunningSandbox {
            base_url: sandbox.base_url(),
            fields: vec![("login".into(), LOGIN.into())],
            secrets: vec![("password".into(), PASSWORD.into())],
            scenario,
            guard: Box::new(sandbox),
        })
    })
}
