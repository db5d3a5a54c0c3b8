//! Offline sandbox of Enedis Data Connect: consent page, OAuth2 token
//! endpoint and the daily consumption API, on `127.0.0.1`, in one axum
//! server.
//!
//! It follows Enedis' published API descriptions (see `shared/specs/`):
//! - `GET /dataconnect/v1/oauth2/authorize`: needs `client_id`,
//!   `response_type=code`, `duration` (and here a loopback `redirect_uri` and
//!   a PKCE S256 `code_challenge`); the consent is approved at once (or
//!   refused, see [`Sandbox::set_deny_consent`]) and the browser is sent to
//!   `redirect_uri?code=..&state=..&usage_point_id=..`. Missing parameters
//!   get the spec's 400 `{error, error_description}`.
//! - `POST /oauth2/v3/token`: client authentication by HTTP Basic or form
//!   fields; grants `authorization_code` (single-use code, same
//!   `redirect_uri`, PKCE verified), `refresh_token` (single use: every
//!   refresh returns a new refresh token and kills the old one) and
//!   `client_credentials`. `expires_in` is a string, as in the spec.
//!   Errors are RFC 6749's `invalid_grant`, `invalid_client`,
//!   `unsupported_grant_type`, `invalid_request`.
//! - `GET /metering_data_dc/v5/daily_consumption`: bearer token (401 when
//!   missing, unknown or expired), `usage_point_id` of 14 digits, `start` and
//!   `end` dates, end not after today; answers `meter_reading` with
//!   `interval_reading[{value, date}]` in Wh, values from
//!   `fixtures/enedis/daily_wh.json`. A usage point without consent gets the
//!   spec's 403 `ADAM_DC_0008`; [`Sandbox::set_rate_limited`] makes the next
//!   requests answer 429 with `Retry-After` (the kit's fault switch).
//!
//! Split by concern: [`consent`] (the authorize page), [`token`] (the token
//! endpoint), [`metering`] (the consumption API); the server, the fault
//! switches and the counters come from `gleaner-sandbox-kit`.
//!
//! Time comes from an injected [`Clock`], so tests expire tokens without
//! sleeping. Counters tell tests how many token requests were made.

mod consent;
mod metering;
mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use gleaner_framework::oauth::{Clock, SystemClock};
use gleaner_sandbox_kit::{
    RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo, StartFuture, StartOptions,
};
use serde_json::{Value, json};

/// The client id the sandbox knows (the manifest's).
pub const CLIENT_ID: &str = "gleaner-dataconnect";

/// The client secret the sandbox accepts.
pub const CLIENT_SECRET: &str = "sandbox-client-secret";

/// The usage point (PRM) the demo customer consents to.
pub const USAGE_POINT_ID: &str = "16401220101758";

/// Access token lifetime, as in the spec's example (3 h 30).
pub const ACCESS_TOKEN_LIFETIME: i64 = 12600;

/// How long an authorization code stays valid.
const CODE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

/// Added to token answers, so that concurrent refreshes would overlap.
const TOKEN_LATENCY: Duration = Duration::from_millis(20);

/// `Retry-After` of the 429s [`Sandbox::set_rate_limited`] causes.
const RATE_LIMIT_RETRY_AFTER: u64 = 1;

const TOKEN_PATH: &str = "/oauth2/v3/token";
const METERING_PATH: &str = "/metering_data_dc/v5/daily_consumption";

const DAILY_WH: &str = include_str!("../../../../../fixtures/enedis/daily_wh.json");

/// The scenarios by name (`gleaner sandbox enedis --scenario NAME`).
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "consent approved at once, tokens and API work",
    },
    ScenarioInfo {
        name: "deny-consent",
        about: "the consent page refuses (error=access_denied)",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "every third request answers 429 with Retry-After",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "every request answers 503 with a maintenance error",
    },
];

struct CodeGrant {
    redirect_uri: String,
    challenge: String,
    expires_at: DateTime<Utc>,
}

struct AccessGrant {
    expires_at: DateTime<Utc>,
    usage_point: Option<String>,
}

struct Inner {
    /// The client secret the token endpoint takes (default [`CLIENT_SECRET`]).
    client_secret: Mutex<String>,
    clock: Arc<dyn Clock>,
    lifetime: Mutex<i64>,
    codes: Mutex<HashMap<String, CodeGrant>>,
    refresh: Mutex<HashMap<String, bool>>,
    access: Mutex<HashMap<String, AccessGrant>>,
    daily: Vec<u64>,
    deny_consent: AtomicBool,
    refresh_requests: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running sandbox; dropping it stops the server.
pub struct Sandbox {
    server: SandboxServer,
    inner: Arc<Inner>,
}

impl Sandbox {
    /// Starts the sandbox on the system clock.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with_clock(Arc::new(SystemClock)).await
    }

    /// Starts the sandbox on `clock`.
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Self::start_on(clock, None).await
    }

    /// Starts the sandbox on `clock`, at `127.0.0.1:port` (`None`: any
    /// free port).
    pub async fn start_on(clock: Arc<dyn Clock>, port: Option<u16>) -> std::io::Result<Self> {
        let daily: Value = serde_json::from_str(DAILY_WH).map_err(std::io::Error::other)?;
        let daily = daily["wh_by_day_of_year"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
            .filter(|v| v.len() == 366)
            .ok_or_else(|| std::io::Error::other("daily_wh.json needs 366 values"))?;
        let inner = Arc::new(Inner {
            client_secret: Mutex::new(CLIENT_SECRET.to_owned()),
            clock,
            lifetime: Mutex::new(ACCESS_TOKEN_LIFETIME),
            codes: Mutex::default(),
            refresh: Mutex::default(),
            access: Mutex::default(),
            daily,
            deny_consent: AtomicBool::new(false),
            refresh_requests: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/dataconnect/v1/oauth2/authorize", get(consent::authorize))
            .route(TOKEN_PATH, post(token::token))
            .route(METERING_PATH, get(metering::daily_consumption))
            .with_state(Arc::clone(&inner));
        let server = SandboxServer::start(app, port).await?;
        server.faults().set_retry_after(RATE_LIMIT_RETRY_AFTER);
        Ok(Self { server, inner })
    }

    /// `http://127.0.0.1:<port>`: the account's endpoint.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Sets the lifetime of access tokens issued from now on, in seconds.
    pub fn set_access_token_lifetime(&self, secs: i64) {
        *lock(&self.inner.lifetime) = secs;
    }

    /// Makes the consent page refuse (`error=access_denied`).
    pub fn set_deny_consent(&self, deny: bool) {
        self.inner.deny_consent.store(deny, Ordering::SeqCst);
    }

    /// Changes the client secret the token endpoint takes (default
    /// [`CLIENT_SECRET`]), so tests can use unusual values.
    pub fn set_client_secret(&self, secret: &str) {
        *lock(&self.inner.client_secret) = secret.to_owned();
    }

    /// The next `n` requests (any endpoint) answer 429 with `Retry-After`.
    pub fn set_rate_limited(&self, n: usize) {
        self.server.faults().rate_limit_next(n);
    }

    /// Applies a scenario of [`SCENARIOS`]; `false` for an unknown name.
    pub fn set_scenario(&self, name: &str) -> bool {
        let deny = name == "deny-consent";
        self.set_deny_consent(deny);
        deny || self.server.faults().apply_scenario(name)
    }

    /// The customer withdraws consent: every refresh and access token dies.
    pub fn revoke_consent(&self) {
        lock(&self.inner.refresh)
            .values_mut()
            .for_each(|a| *a = false);
        lock(&self.inner.access).clear();
    }

    /// Access tokens die before their expiry; refresh tokens stay good.
    pub fn revoke_access_tokens(&self) {
        lock(&self.inner.access).clear();
    }

    /// Token endpoint calls, all grants.
    pub fn token_requests(&self) -> usize {
        self.server.stats().count("POST", TOKEN_PATH)
    }

    /// Token endpoint calls with `grant_type=refresh_token`.
    pub fn refresh_requests(&self) -> usize {
        self.inner.refresh_requests.load(Ordering::SeqCst)
    }

    /// Metering API calls.
    pub fn api_requests(&self) -> usize {
        self.server.stats().count("GET", METERING_PATH)
    }

    /// Whether a refresh token would be accepted now.
    pub fn refresh_token_is_live(&self, token: &str) -> bool {
        lock(&self.inner.refresh)
            .get(token)
            .copied()
            .unwrap_or(false)
    }

    /// Every token issued so far (to check none leaks into logs or files).
    pub fn issued_tokens(&self) -> Vec<String> {
        let mut out: Vec<String> = lock(&self.inner.refresh).keys().cloned().collect();
        out.extend(lock(&self.inner.access).keys().cloned());
        out
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner sandbox`).
/// Its consent page approves at once, so the demo plays the browser with
/// one HTTP GET.
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "enedis",
        scenarios: SCENARIOS,
        start: start_definition,
    }
}

fn start_definition(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let sandbox = Sandbox::start_on(Arc::new(SystemClock), options.port).await?;
        let scenario = options.scenario.unwrap_or_else(|| "normal".to_owned());
        if !sandbox.set_scenario(&scenario) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no Enedis scenario `{scenario}`"),
            ));
        }
        Ok(RunningSandbox {
            base_url: sandbox.base_url(),
            fields: Vec::new(),
            secrets: vec![("client_secret".into(), CLIENT_SECRET.into())],
            scenario,
            guard: Box::new(sandbox),
        })
    })
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
