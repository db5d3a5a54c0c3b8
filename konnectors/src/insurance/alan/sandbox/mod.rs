//! Offline sandbox of Alan's API (`api.alan.com`).
//!
//! [`Sandbox`] serves, on `127.0.0.1`, what the konnector calls:
//! - `POST /auth/login` (JSON `email`, `password`): 200 with
//!   `{"token": <JWT>, "refresh_token": ...}` and the same token as the
//!   `token` cookie, or 401 for any other credentials;
//! - `GET /api/users/{id}` (the user and beneficiaries of
//!   `fixtures/alan/alan.json`);
//! - `GET /api/insurance_profiles/{id}/care_events_public?page=N`: the
//!   profile's care events, newest first, [`PAGE_SIZE`] per page (the
//!   normal data has two pages for Camille, and a full first page then an
//!   empty one for Louise);
//! - `GET /api/users/{id}/decomptes?year=YYYY&month=MM`: the month's
//!   statement PDF (`fixtures/alan/pdf/`).
//!
//! The API calls need the token, as `Authorization: Bearer` or as the
//! `token` cookie; anything else is 401. The account is [`LOGIN`] /
//! [`PASSWORD`]. Alan has no second factor in this flow, so neither has
//! the sandbox.
//!
//! A [`Scenario`] selects a failure: 429 with `Retry-After` on every third
//! request, 503 on every request, the maintenance page (served with 200,
//! as a CDN's static page, on every path), or a changed schema (the care
//! events' `care_acts` renamed). Maintenance, 429 and 503 are the kit's
//! [`gleaner_sandbox_kit::Faults`], reachable through [`Sandbox::faults`].

mod data;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use gleaner_sandbox_kit::paging::{self, PageRequest};
use gleaner_sandbox_kit::respond;
use gleaner_sandbox_kit::{
    FaultPages, Faults, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo, StartFuture,
    StartOptions, cookies,
};
use serde_json::{Value, json};

pub use data::FIXTURE_JSON;

/// The demo account's email (the `login` field).
pub const LOGIN: &str = "camille.martin@example.org";

/// The demo account's password.
pub const PASSWORD: &str = "sandbox-password";

/// Care events per page.
pub const PAGE_SIZE: usize = 3;

/// The login path.
const LOGIN_PATH: &str = "/auth/login";

/// The name of the cookie that carries the token.
const TOKEN_COOKIE: &str = "token";

/// How the sandbox behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// The API works like the real one.
    #[default]
    Normal,
    /// Every third request answers 429 with `Retry-After: 0`.
    RateLimited,
    /// Every request answers 503 with `Retry-After: 0`.
    Unavailable,
    /// Every request answers the maintenance page.
    Maintenance,
    /// Login works, but the care events' `care_acts` field is renamed.
    ChangedSchema,
}

/// The scenarios by name, in [`Scenario`]'s order.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "the API works like the real one",
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
        about: "every request answers Alan's maintenance page",
    },
    ScenarioInfo {
        name: "changed-schema",
        about: "login works, but the care events' `care_acts` is renamed `acts`",
    },
];

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Normal,
        Scenario::RateLimited,
        Scenario::Unavailable,
        Scenario::Maintenance,
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

const MAINTENANCE_HTML: &str = "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Alan - Maintenance</title></head><body><h1>Alan est en maintenance</h1><p>Nous revenons très vite. Merci de réessayer dans quelques minutes.</p></body></html>";

fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "text/html; charset=utf-8",
        too_many_requests: "<html><body><h1>429 Too Many Requests</h1></body></html>",
        unavailable: "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        server_error: "<html><body><h1>500 Internal Server Error</h1></body></html>",
        maintenance: MAINTENANCE_HTML,
        maintenance_status: StatusCode::OK,
        maintenance_paths: &[],
        headers: &[],
    }
}

/// State shared by the handlers and the [`Sandbox`] handle.
struct Shared {
    scenario: AtomicU8,
    password: Mutex<String>,
    tokens: Mutex<HashSet<String>>,
    withdrawn: Mutex<HashSet<(i32, u32)>>,
    issued: AtomicUsize,
    list_requests: AtomicUsize,
    pdf_downloads: AtomicUsize,
}

impl Shared {
    fn scenario(&self) -> Scenario {
        Scenario::ALL[usize::from(self.scenario.load(Ordering::SeqCst)) % Scenario::ALL.len()]
    }
}

/// A running Alan sandbox; stops when dropped or on [`Sandbox::shutdown`].
pub struct Sandbox {
    server: SandboxServer,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.server.addr())
            .field("scenario", &self.shared.scenario())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox on `127.0.0.1`, any free port.
    pub async fn start(scenario: Scenario) -> std::io::Result<Sandbox> {
        Self::start_on(scenario, None).await
    }

    /// Starts a sandbox on `127.0.0.1:port` (`None`: any free port).
    pub async fn start_on(scenario: Scenario, port: Option<u16>) -> std::io::Result<Sandbox> {
        let shared = Arc::new(Shared {
            scenario: AtomicU8::new(0),
            password: Mutex::new(PASSWORD.to_owned()),
            tokens: Mutex::new(HashSet::new()),
            withdrawn: Mutex::new(HashSet::new()),
            issued: AtomicUsize::new(0),
            list_requests: AtomicUsize::new(0),
            pdf_downloads: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = SandboxServer::start_with(app, port, fault_pages()).await?;
        let sandbox = Sandbox { server, shared };
        sandbox.set_scenario(scenario);
        Ok(sandbox)
    }

    /// The API's origin, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Switches to another scenario, from the next request on.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared
            .scenario
            .store(scenario.index() as u8, Ordering::SeqCst);
        self.server.faults().apply_scenario(scenario.name());
    }

    /// The kit's fault switches (`Retry-After`, 429s, 5xx).
    pub fn faults(&self) -> &Arc<Faults> {
        self.server.faults()
    }

    /// Changes the account's password (default [`PASSWORD`]).
    pub fn set_password(&self, password: &str) {
        *self
            .shared
            .password
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = password.to_owned();
    }

    /// Makes the statement of `year`/`month` answer 404 from now on (a
    /// download failing after others succeeded).
    pub fn withdraw_statement(&self, year: i32, month: u32) {
        self.shared
            .withdrawn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((year, month));
    }

    /// Requests received, faulted ones included.
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// `POST /auth/login` received.
    pub fn login_posts(&self) -> usize {
        self.server.stats().count("POST", LOGIN_PATH)
    }

    /// Care event list pages served (status 200).
    pub fn list_requests(&self) -> usize {
        self.shared.list_requests.load(Ordering::SeqCst)
    }

    /// Statement PDFs served (status 200).
    pub fn pdf_downloads(&self) -> usize {
        self.shared.pdf_downloads.load(Ordering::SeqCst)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner sandbox`).
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "alan",
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
                    format!("no Alan scenario `{name}`"),
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

fn json(status: StatusCode, value: &Value) -> Response {
    respond::json(status, value)
}

fn unauthorized() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({"error": "unauthorized", "message": "Authentication required"}),
    )
}

fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "message": "Not found"}),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let response = route(&shared, &method, path, query, &headers, &body);
    tracing::debug!(%method, path, status = response.status().as_u16(), "alan sandbox request");
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if path == LOGIN_PATH {
        return if *method == Method::POST {
            login(shared, body)
        } else {
            json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method_not_allowed"}),
            )
        };
    }
    if *method != Method::GET && *method != Method::HEAD {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method_not_allowed"}),
        );
    }
    if !authorized(shared, headers) {
        return unauthorized();
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let user_id = data::user_id().to_string();
    match parts.as_slice() {
        ["api", "users", id] if *id == user_id => {
            json(StatusCode::OK, &data::fixture()["user"])
        }
        ["api", "users", id, "decomptes"] if *id == user_id => statement(shared, query),
        ["api", "insurance_profiles", profile, "care_events_public"] => {
            care_events(shared, profile, query)
        }
        _ => not_found(),
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = cookies::get(headers, TOKEN_COOKIE);
    let tokens = shared
        .tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    bearer.into_iter().chain(cookie).any(|t| tokens.contains(t))
}

fn login(shared: &Shared, body: &[u8]) -> Response {
    let Ok(creds) = serde_json::from_slice::<Value>(body) else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "bad_request", "message": "Invalid JSON body"}),
        );
    };
    let email = creds["email"].as_str().unwrap_or("");
    let password = creds["password"].as_str().unwrap_or("");
    let good = shared
        .password
        .lock()
        .map(|p| *p == password)
        .unwrap_or(false);
    if !email.eq_ignore_ascii_case(LOGIN) || !good {
        return json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_credentials", "message": "Email ou mot de passe incorrect"}),
        );
    }
    let n = shared.issued.fetch_add(1, Ordering::SeqCst);
    let token = make_jwt(data::user_id(), n);
    shared
        .tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(token.clone());
    let mut response = json(
        StatusCode::OK,
        &json!({
            "token": token,
            "refresh_token": format!("sandbox-refresh-{}", uuid::Uuid::new_v4().simple()),
        }),
    );
    let cookie = cookies::SetCookie::new(TOKEN_COOKIE, token)
        .path("/")
        .http_only()
        .same_site("Lax");
    if let Some(value) = cookie.header_value() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A JWT-shaped token: `{"alg":"HS256","typ":"JWT"}`, a payload with the
/// user's `id`, and a random signature (the sandbox checks tokens by
/// lookup, not by signature).
fn make_jwt(user_id: u64, n: usize) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64(json!({"id": user_id, "n": n, "refresh_token_type": "web"})
        .to_string()
        .as_bytes());
    let signature = b64(uuid::Uuid::new_v4().as_bytes());
    format!("{header}.{payload}.{signature}")
}

fn care_events(shared: &Shared, profile: &str, query: &str) -> Response {
    let Some(events) = data::care_events(profile) else {
        return not_found();
    };
    // The page size is the server's: a `size` the client sends is ignored.
    let request = PageRequest::from_query(query, PAGE_SIZE, PAGE_SIZE);
    let page = paging::page(events, request, "");
    let mut items: Vec<Value> = page.items.to_vec();
    if shared.scenario() == Scenario::ChangedSchema {
        for item in &mut items {
            if let Some(obj) = item.as_object_mut()
                && let Some(acts) = obj.remove("care_acts")
            {
                obj.insert("acts".into(), acts);
            }
        }
    }
    shared.list_requests.fetch_add(1, Ordering::SeqCst);
    json(StatusCode::OK, &Value::Array(items))
}

fn statement(shared: &Shared, query: &str) -> Response {
    let params = gleaner_sandbox_kit::form::parse(query.as_bytes());
    let year = params.get("year").and_then(|v| v.parse::<i32>().ok());
    let month = params.get("month").and_then(|v| v.parse::<u32>().ok());
    let (Some(year), Some(month)) = (year, month) else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "bad_request", "message": "year and month are required"}),
        );
    };
    let withdrawn = shared
        .withdrawn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&(year, month));
    let Some(pdf) = data::statement(year, month).filter(|_| !withdrawn) else {
        return not_found();
    };
    shared.pdf_downloads.fetch_add(1, Ordering::SeqCst);
    let mut response = respond::with_type(StatusCode::OK, "application/pdf", pdf);
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"{year:04}_{month:02}_alan.pdf\""
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_parses_and_every_statement_has_its_pdf() {
        assert_eq!(data::user_id(), 482_913);
        let statements = data::fixture()["statements"].as_array().unwrap();
        assert_eq!(statements.len(), 4);
        for st in statements {
            let y = i32::try_from(st["year"].as_i64().unwrap()).unwrap();
            let m = u32::try_from(st["month"].as_u64().unwrap()).unwrap();
            let pdf = data::statement(y, m).unwrap();
            assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
        }
    }

    #[test]
    fn tokens_carry_the_user_id() {
        let jwt = make_jwt(data::user_id(), 0);
        assert_eq!(
            crate::insurance::alan::auth::user_id_of(&jwt).unwrap(),
            482_913
        );
    }

    #[test]
    fn scenarios_round_trip_by_name() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
        assert_eq!(SCENARIOS[0].name, "normal");
    }
}
