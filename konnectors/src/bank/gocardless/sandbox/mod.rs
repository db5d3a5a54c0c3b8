//! Offline sandbox of GoCardless Bank Account Data and a bank behind it,
//! on `127.0.0.1`, following the published spec
//! (`shared/specs/gocardless-bad-v2.json`):
//!
//! - `POST /api/v2/token/new/` (the secret id and key of [`SECRET_ID`] and
//!   [`SECRET_KEY`]; else the spec's 401 "No active account found with the
//!   given credentials") and `POST /api/v2/token/refresh/`; access tokens
//!   live a day and refresh tokens 30 days on the sandbox's [`Clock`];
//!   every other call needs a live access token (else 401 "Invalid token");
//! - `GET /api/v2/institutions/{id}/`, `POST /api/v2/agreements/enduser/`
//!   (checked against the bank's history and access limits),
//!   `GET /api/v2/agreements/enduser/{id}/`, `POST /api/v2/requisitions/`
//!   (status `CR`, a `link` on this server) and
//!   `GET /api/v2/requisitions/{id}/`;
//! - the **link**, `GET /psd2/start/{requisition}/{institution}`, plays the
//!   bank's consent pages and **approves on GET** (the requisition becomes
//!   `LN` with new account ids, as GoCardless gives at each link), so
//!   `gleaner demo` and tests follow it with one request;
//! - `GET /api/v2/accounts/{id}/`, `.../details/`, `.../balances/`,
//!   `.../transactions/?date_from&date_to` (booked and pending), each
//!   carrying the rate-limit headers (`http_x_ratelimit_*` and, on the
//!   three rate-limited endpoints, `http_x_ratelimit_account_success_*`);
//!   the bank allows [`DAILY_LIMIT`] successful calls a day per account and
//!   endpoint, then answers the spec's 429 `RateLimitError`.
//!
//! Scenarios ([`SCENARIOS`]): normal; `rate-limited` (GoCardless' own
//! per-minute limit: 429 with `Retry-After: 90`); `unavailable` (503);
//! `expired-requisition` (a link reads `EX` once approved, account calls
//! answer 401 "EUA expired"); `refused-link` (the bank refuses: `RJ`);
//! `daily-limit` (the bank allows one call a day per endpoint). The
//! transactions API does not page (the spec has no paging for it), so no
//! paging scenario. Tests also switch behaviours at run time
//! ([`Sandbox::expire_links`], [`Sandbox::revoke_access`],
//! [`Sandbox::set_rate_limited`]...).
//!
//! Split by concern: [`data`] (the bank's operations on the calendar),
//! [`tokens`], [`consent`] (institutions, agreements, requisitions, the
//! link page), [`accounts`] (the account endpoints and their limits).

pub mod accounts;
pub mod consent;
pub mod data;
pub mod tokens;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use gleaner_framework::clock::{Clock, SystemClock};
use gleaner_sandbox_kit::{
    FaultPages, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo, StartFuture,
    StartOptions,
};
use serde_json::{Value, json};

/// The secret id the sandbox accepts.
pub const SECRET_ID: &str = "sandbox-secret-id-0f3c9a41";

/// The secret key the sandbox accepts.
pub const SECRET_KEY: &str = "sandbox-secret-key-7d21b84e5a6c";

/// The bank of the demo account.
pub const INSTITUTION_ID: &str = "SANDBOXFINANCE_SFIN0000";

/// Successful calls a day per account and endpoint (some banks' limit).
pub const DAILY_LIMIT: u32 = 4;

/// Calls a minute before GoCardless' own limit (accounts endpoints).
pub const MINUTE_LIMIT: u32 = 100;

/// `Retry-After` of the `rate-limited` scenario's 429s.
pub const RATE_LIMITED_RETRY_AFTER: u64 = 90;

/// Access token lifetime, seconds (the spec's default).
pub const ACCESS_LIFETIME: i64 = 86_400;

/// Refresh token lifetime, seconds (the spec's default).
pub const REFRESH_LIFETIME: i64 = 2_592_000;

/// The scenarios by name (`gleaner sandbox gocardless --scenario NAME`).
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "tokens, bank link (approved on GET), two accounts, a pending card payment that books two days later",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "GoCardless' per-minute limit: every request answers 429 with Retry-After: 90",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After",
    },
    ScenarioInfo {
        name: "expired-requisition",
        about: "a bank link reads EX once approved and account calls answer 401 (EUA expired)",
    },
    ScenarioInfo {
        name: "refused-link",
        about: "the bank refuses the access on its consent page (requisition RJ)",
    },
    ScenarioInfo {
        name: "daily-limit",
        about: "the bank allows one successful call a day per account and endpoint",
    },
];

/// GoCardless' error bodies for the kit's faults.
fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "application/json",
        too_many_requests: r#"{"summary":"Rate limit exceeded","detail":"The rate limit for this resource is 100/minute. Please try again in 90 seconds","status_code":429}"#,
        unavailable: r#"{"summary":"Service temporarily unavailable","detail":"Bank Account Data is temporarily unavailable. Please try again later","status_code":503}"#,
        server_error: r#"{"summary":"Internal server error","detail":"An unexpected error occurred","status_code":500}"#,
        maintenance: r#"{"summary":"Service temporarily unavailable","detail":"Scheduled maintenance","status_code":503}"#,
        maintenance_status: StatusCode::SERVICE_UNAVAILABLE,
        maintenance_paths: &[],
        headers: &[],
    }
}

/// `(account id, endpoint)` → (day, successful calls that day).
type DailyCounts = HashMap<(String, &'static str), (NaiveDate, u32)>;

/// An issued token.
struct Grant {
    expires_at: DateTime<Utc>,
}

/// An end-user agreement.
#[derive(Clone)]
struct AgreementRec {
    id: String,
    created: DateTime<Utc>,
    institution_id: String,
    max_historical_days: u32,
    access_valid_for_days: u32,
    accepted: Option<DateTime<Utc>>,
}

/// A requisition.
#[derive(Clone)]
struct RequisitionRec {
    id: String,
    created: DateTime<Utc>,
    redirect: String,
    status: &'static str,
    institution_id: String,
    agreement: String,
    reference: String,
    accounts: Vec<String>,
}

/// A GoCardless account id handed out by a link.
#[derive(Clone)]
struct AccountRec {
    /// Index in the fixture.
    fixture: usize,
    requisition: String,
    revoked: bool,
}

struct Inner {
    clock: Arc<dyn Clock>,
    base_url: Mutex<String>,
    bank: data::Bank,
    day0: NaiveDate,
    access: Mutex<HashMap<String, Grant>>,
    refresh: Mutex<HashMap<String, Grant>>,
    access_lifetime: Mutex<i64>,
    agreements: Mutex<HashMap<String, AgreementRec>>,
    requisitions: Mutex<HashMap<String, RequisitionRec>>,
    references: Mutex<Vec<String>>,
    accounts: Mutex<HashMap<String, AccountRec>>,
    links_made: AtomicUsize,
    quota: Mutex<DailyCounts>,
    daily_limit: AtomicU32,
    /// Minute of the sandbox clock → calls in it.
    minute: Mutex<(i64, u32)>,
    minute_limit: AtomicU32,
    expire_on_link: AtomicBool,
    refuse_link: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Whether the request carries a live access token.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let now = self.now();
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| lock(&self.access).get(t).is_some_and(|g| g.expires_at > now))
    }

    /// Counts a call against GoCardless' per-minute limit of the account
    /// endpoints: the headers to send, or its 429 once the limit is passed.
    fn general_limit(&self) -> Result<Vec<(&'static str, String)>, Box<Response>> {
        let now = self.now();
        let minute = now.timestamp().div_euclid(60);
        let mut m = lock(&self.minute);
        if m.0 != minute {
            *m = (minute, 0);
        }
        m.1 += 1;
        let limit = self.minute_limit.load(Ordering::SeqCst);
        let reset = 60 - i64::from(now.second());
        let headers = vec![
            ("http_x_ratelimit_limit", limit.to_string()),
            ("http_x_ratelimit_remaining", limit.saturating_sub(m.1).to_string()),
            ("http_x_ratelimit_reset", reset.to_string()),
        ];
        if m.1 > limit {
            let mut headers = headers;
            headers.push(("retry-after", reset.to_string()));
            return Err(Box::new(answer(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({
                    "summary": "Rate limit exceeded",
                    "detail": format!("The rate limit for this resource is {limit}/minute. Please try again in {reset} seconds"),
                    "status_code": 429,
                }),
                &headers,
            )));
        }
        Ok(headers)
    }
}

/// A JSON answer with headers.
fn answer(status: StatusCode, body: &Value, headers: &[(&'static str, String)]) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

/// The spec's `ErrorResponse`.
fn error(status: StatusCode, summary: &str, detail: &str, kind: Option<&str>) -> Response {
    let mut body = json!({"summary": summary, "detail": detail, "status_code": status.as_u16()});
    if let Some(kind) = kind {
        body["type"] = json!(kind);
    }
    answer(status, &body, &[])
}

/// The spec's 401 for a missing, unknown or expired access token.
fn invalid_token() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "Invalid token",
        "Token is invalid or expired",
        None,
    )
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A running sandbox; dropping it stops the server.
pub struct Sandbox {
    server: SandboxServer,
    inner: Arc<Inner>,
}

impl Sandbox {
    /// Starts the sandbox on the system clock.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(Arc::new(SystemClock), None).await
    }

    /// Starts the sandbox on `clock` (day 0 is the clock's today).
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Self::start_on(clock, None).await
    }

    /// Starts the sandbox on `clock`, at `127.0.0.1:port` (`None`: any free
    /// port).
    pub async fn start_on(clock: Arc<dyn Clock>, port: Option<u16>) -> std::io::Result<Self> {
        let bank = data::load()?;
        let day0 = clock.now().date_naive();
        let inner = Arc::new(Inner {
            clock,
            base_url: Mutex::new(String::new()),
            bank,
            day0,
            access: Mutex::default(),
            refresh: Mutex::default(),
            access_lifetime: Mutex::new(ACCESS_LIFETIME),
            agreements: Mutex::default(),
            requisitions: Mutex::default(),
            references: Mutex::default(),
            accounts: Mutex::default(),
            links_made: AtomicUsize::new(0),
            quota: Mutex::default(),
            daily_limit: AtomicU32::new(DAILY_LIMIT),
            minute: Mutex::new((0, 0)),
            minute_limit: AtomicU32::new(MINUTE_LIMIT),
            expire_on_link: AtomicBool::new(false),
            refuse_link: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/api/v2/token/new/", post(tokens::new_pair))
            .route("/api/v2/token/refresh/", post(tokens::refresh))
            .route("/api/v2/institutions/{id}/", get(consent::institution))
            .route("/api/v2/agreements/enduser/", post(consent::create_agreement))
            .route("/api/v2/agreements/enduser/{id}/", get(consent::agreement))
            .route("/api/v2/requisitions/", post(consent::create_requisition))
            .route("/api/v2/requisitions/{id}/", get(consent::requisition))
            .route("/psd2/start/{requisition}/{institution}", get(consent::link_page))
            .route("/api/v2/accounts/{id}/", get(accounts::metadata))
            .route("/api/v2/accounts/{id}/details/", get(accounts::details))
            .route("/api/v2/accounts/{id}/balances/", get(accounts::balances))
            .route(
                "/api/v2/accounts/{id}/transactions/",
                get(accounts::transactions),
            )
            .with_state(Arc::clone(&inner));
        let server = SandboxServer::start_with(app, port, fault_pages()).await?;
        server.faults().set_retry_after(1);
        *lock(&inner.base_url) = server.base_url();
        Ok(Self { server, inner })
    }

    /// `http://127.0.0.1:<port>`: the account's endpoint.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Applies a scenario of [`SCENARIOS`]; `false` for an unknown name.
    pub fn set_scenario(&self, name: &str) -> bool {
        let faults = self.server.faults();
        faults.clear();
        faults.set_retry_after(1);
        self.inner.expire_on_link.store(false, Ordering::SeqCst);
        self.inner.refuse_link.store(false, Ordering::SeqCst);
        self.inner.daily_limit.store(DAILY_LIMIT, Ordering::SeqCst);
        match name {
            "normal" => {}
            "rate-limited" => {
                faults.set_retry_after(RATE_LIMITED_RETRY_AFTER);
                faults.rate_limit_every(1);
            }
            "unavailable" => faults.set_unavailable(true),
            "expired-requisition" => self.inner.expire_on_link.store(true, Ordering::SeqCst),
            "refused-link" => self.inner.refuse_link.store(true, Ordering::SeqCst),
            "daily-limit" => self.inner.daily_limit.store(1, Ordering::SeqCst),
            _ => return false,
        }
        true
    }

    /// The next `n` requests answer 429 with `Retry-After: 1`.
    pub fn set_rate_limited(&self, n: usize) {
        self.server.faults().set_retry_after(1);
        self.server.faults().rate_limit_next(n);
    }

    /// Calls a minute to the account endpoints from now on (GoCardless'
    /// own limit).
    pub fn set_minute_limit(&self, n: u32) {
        self.inner.minute_limit.store(n, Ordering::SeqCst);
    }

    /// Successful calls a day per account and endpoint from now on.
    pub fn set_daily_limit(&self, n: u32) {
        self.inner.daily_limit.store(n, Ordering::SeqCst);
    }

    /// Forgets the successful calls counted so far (another day, or
    /// another installation's view).
    pub fn reset_daily_counts(&self) {
        lock(&self.inner.quota).clear();
    }

    /// Sets the lifetime of access tokens issued from now on, in seconds.
    pub fn set_access_token_lifetime(&self, secs: i64) {
        *lock(&self.inner.access_lifetime) = secs;
    }

    /// Every access token dies before its expiry (refresh tokens live).
    pub fn revoke_access_tokens(&self) {
        lock(&self.inner.access).clear();
    }

    /// Every linked requisition expires (`EX`); its accounts answer 401
    /// "End User Agreement (EUA) ... has expired".
    pub fn expire_links(&self) {
        for r in lock(&self.inner.requisitions).values_mut() {
            if r.status == "LN" {
                r.status = "EX";
            }
        }
    }

    /// The bank revokes the access: requisitions still read `LN`, but every
    /// account call answers 401 `AccessExpiredError`.
    pub fn revoke_access(&self) {
        for a in lock(&self.inner.accounts).values_mut() {
            a.revoked = true;
        }
    }

    /// Bank links approved so far.
    pub fn links_made(&self) -> usize {
        self.inner.links_made.load(Ordering::SeqCst)
    }

    /// Requisitions created so far.
    pub fn requisitions_created(&self) -> usize {
        self.server.stats().count("POST", "/api/v2/requisitions/")
    }

    /// Token calls (new pairs, refreshes).
    pub fn token_calls(&self) -> (usize, usize) {
        let stats = self.server.stats();
        (
            stats.count("POST", "/api/v2/token/new/"),
            stats.count("POST", "/api/v2/token/refresh/"),
        )
    }

    /// Calls to the rate-limited account endpoints (all accounts, all
    /// outcomes).
    pub fn account_calls(&self) -> usize {
        let accounts = lock(&self.inner.accounts);
        let stats = self.server.stats();
        accounts
            .keys()
            .map(|id| {
                ["details", "balances", "transactions"]
                    .iter()
                    .map(|s| stats.count("GET", &format!("/api/v2/accounts/{id}/{s}/")))
                    .sum::<usize>()
            })
            .sum()
    }

    /// Every request received.
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// Every token issued so far (to check none leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        let mut out: Vec<String> = lock(&self.inner.access).keys().cloned().collect();
        out.extend(lock(&self.inner.refresh).keys().cloned());
        out
    }

    /// The link of the last requisition created, if any.
    pub fn last_link(&self) -> Option<String> {
        let requisitions = lock(&self.inner.requisitions);
        let last = requisitions.values().max_by_key(|r| r.created)?;
        Some(consent::link_of(&self.inner, last))
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner
/// sandbox`). Its bank link approves on GET, so the demo follows it itself.
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "gocardless",
        scenarios: SCENARIOS,
        start: start_definition,
    }
}

/// The demo account's fields (the optional ones too: `gleaner accounts
/// add` asks for every field when it is given none).
pub fn demo_fields() -> Vec<(String, String)> {
    vec![
        ("institution_id".into(), INSTITUTION_ID.into()),
        ("history_days".into(), "365".into()),
        ("lookback_days".into(), "10".into()),
    ]
}

/// The demo account's secrets.
pub fn demo_secrets() -> Vec<(String, String)> {
    vec![
        ("secret_id".into(), SECRET_ID.into()),
        ("secret_key".into(), SECRET_KEY.into()),
    ]
}

fn start_definition(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let sandbox = Sandbox::start_on(Arc::new(SystemClock), options.port).await?;
        let scenario = options.scenario.unwrap_or_else(|| "normal".to_owned());
        if !sandbox.set_scenario(&scenario) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no GoCardless scenario `{scenario}`"),
            ));
        }
        Ok(RunningSandbox {
            base_url: sandbox.base_url(),
            fields: demo_fields(),
            secrets: demo_secrets(),
            scenario,
            guard: Box::new(sandbox),
        })
    })
}
