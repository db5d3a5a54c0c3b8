//! Offline sandbox of the {{name}} API (a loopback stand-in, built only
//! with the `sandbox` feature).
//!
//! `POST /api/token` takes `{"login", "password"}` as JSON and answers
//! `{"access_token", "token_type": "Bearer"}` (401 for wrong credentials);
//! `GET /api/bills?page=N&size=M` (bearer) lists two bills, paged with the
//! kit's helper; `GET /files/<id>.pdf` serves each bill's PDF (a
//! pre-signed link: no token). The account [`LOGIN`] / [`PASSWORD`] logs
//! in.
//!
//! Split by concern: [`api`] (the routes), [`pdf`] (the PDFs); the server,
//! paging and the 429/503/maintenance switches come from
//! `gleaner-sandbox-kit`.
//!
//! Run it alone with `gleaner sandbox {{slug}} [--scenario NAME]`.

mod api;
mod pdf;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
use gleaner_sandbox_kit::{
    RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo, StartFuture, StartOptions,
};

/// The demo login the sandbox accepts.
pub const LOGIN: &str = "sandbox-user";

/// The demo password the sandbox accepts.
pub const PASSWORD: &str = "sandbox-password";

/// The scenarios by name (`gleaner sandbox {{slug}} --scenario NAME`); the
/// first is the default.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "the API works: two bills on two pages, and their PDFs",
    },
    ScenarioInfo {
        name: "changed-schema",
        about: "the bills' `amount` field is renamed `total`",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "every request answers 503 with a maintenance error",
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
    tokens: Mutex<HashSet<String>>,
    changed_schema: AtomicBool,
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
            tokens: Mutex::default(),
            changed_schema: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/api/token", post(api::token))
            .route("/api/bills", get(api::bills))
            .route("/files/{file}", get(api::file))
            .with_state(Arc::clone(&shared));
        let server = SandboxServer::start(app, port).await?;
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
        let changed = name == "changed-schema";
        self.shared.changed_schema.store(changed, Ordering::SeqCst);
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
