//! Offline sandbox of a NextGenPSD2 bank ("Banque Exemple"): the consent
//! endpoints, the bank's SCA page and the AIS reads, on `127.0.0.1`, as the
//! Berlin Group's spec 1.3.12 describes them.
//!
//! - `POST /v1/consents`: needs a UUID `X-Request-ID`, an IPv4
//!   `PSU-IP-Address`, a JSON body with every required field (`access`,
//!   `recurringIndicator`, `validUntil`, `frequencyPerDay`,
//!   `combinedServiceIndicator`), and `TPP-Redirect-URI` with
//!   `TPP-Redirect-Preferred: true` (the spec mandates it then); a
//!   `PSU-ID`, when sent, must be the bank's ([`PSU_ID`]; else 401
//!   `PSU_CREDENTIALS_INVALID`). `validUntil` is cut to 90 days. Answers 201 `received` with `_links.scaRedirect`: the
//!   bank's page, `GET /__sandbox/sca/{consentId}`, which approves the
//!   consent on a plain GET (or rejects it, scenario `sca-rejected`), so a
//!   test or the demo plays the person with one request
//!   ([`gleaner_framework::twofa::LoopbackLinks`]). With [`ScaMode::Exempt`]
//!   the consent is `valid` at once (an SCA exemption).
//! - `GET /v1/consents/{id}/status`, `GET /v1/consents/{id}` (with the
//!   granted `validUntil`), `DELETE /v1/consents/{id}`.
//! - `GET /v1/accounts`, `/v1/accounts/{id}/balances` (`closingBooked` of
//!   yesterday, `expected` with the pending ones),
//!   `/v1/accounts/{id}/transactions` (`bookingStatus` required, `dateFrom`
//!   required, `booked` newest first in pages of [`PAGE_SIZE`] with
//!   `_links.next`, `pending` on the first page). They need `Consent-ID`:
//!   unknown 403 `CONSENT_UNKNOWN`, not approved or revoked 401
//!   `CONSENT_INVALID`, past its `validUntil` 401 `CONSENT_EXPIRED`. Calls
//!   without `PSU-IP-Address` count against the consent's
//!   `frequencyPerDay` per resource and day: past it, 429
//!   `ACCESS_EXCEEDED` with `Retry-After` until the bank's midnight.
//!
//! The data (two accounts, two years of a household's operations, the
//! Free Mobile sandbox's invoices paid by direct debit, a card payment
//! pending two days before it books with a tip) is in [`ledger`]. Time is
//! the injected clock's: a test runs the konnector, moves the clock two
//! days and runs it again to see the pending payment booked. Faults (429,
//! 5xx) come from the kit, with NextGenPSD2 error bodies.

mod ais;
mod consents;
pub mod ledger;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use gleaner_framework::clock::{Clock, SystemClock};
use gleaner_sandbox_kit::{
    FaultPages, RunningSandbox, SandboxDef, SandboxServer, ScenarioInfo, StartFuture,
    StartOptions,
};
use serde_json::json;

use ledger::Ledger;

/// The PSU-ID the bank knows.
pub const PSU_ID: &str = "camille.martin";

/// The bank's name.
pub const INSTITUTION: &str = "Banque Exemple";

/// Booked transactions per page unless `itemsPerPage` says otherwise.
pub const PAGE_SIZE: usize = 50;

/// `Retry-After` of the kit's 429 and 503.
const RETRY_AFTER: u64 = 1;

/// The bank's SCA page (a person's page, not the API: never faulted).
pub const SCA_PAGE: &str = "/__sandbox/sca";

/// How the registry's sandbox (`gleaner demo`, `gleaner sandbox`, the
/// conformance suite) plays the SCA: by redirect, the link on loopback,
/// which their second-factor channel
/// ([`gleaner_framework::twofa::LoopbackLinks`]) follows with one GET.
pub const REGISTRY_SCA: ScaMode = ScaMode::Redirect;

/// The scenarios by name (`gleaner sandbox nextgenpsd2 --scenario NAME`).
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "normal",
        about: "consent with an SCA redirect (the link approves on GET), two accounts, paged transactions, a card payment pending two days",
    },
    ScenarioInfo {
        name: "rate-limited",
        about: "every third request answers 429 with Retry-After: 1",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After: 1",
    },
    ScenarioInfo {
        name: "expired-consent",
        about: "data calls answer 401 CONSENT_EXPIRED, whatever the consent",
    },
    ScenarioInfo {
        name: "revoked-consent",
        about: "the person revoked every consent at the bank: 401 CONSENT_INVALID",
    },
    ScenarioInfo {
        name: "sca-rejected",
        about: "the bank's SCA page refuses: the consent becomes `rejected`",
    },
    ScenarioInfo {
        name: "access-exceeded",
        about: "the daily quota is used up: data calls without the person answer 429 ACCESS_EXCEEDED until midnight",
    },
    ScenarioInfo {
        name: "schema-changed",
        about: "transactions come without their required `transactionAmount`",
    },
];

/// A behaviour of the sandbox bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// Works as the standard says.
    #[default]
    Normal,
    /// Every third request answers 429 with `Retry-After`.
    RateLimited,
    /// Every request answers 503.
    Unavailable,
    /// Data calls answer 401 `CONSENT_EXPIRED`.
    ExpiredConsent,
    /// Data calls answer 401 `CONSENT_INVALID` (revoked by the person).
    RevokedConsent,
    /// The SCA page rejects the consent.
    ScaRejected,
    /// Data calls without the person answer 429 `ACCESS_EXCEEDED`.
    AccessExceeded,
    /// Transactions lack their `transactionAmount`.
    SchemaChanged,
}

impl Scenario {
    /// The scenario called `name` in [`SCENARIOS`].
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "normal" => Self::Normal,
            "rate-limited" => Self::RateLimited,
            "unavailable" => Self::Unavailable,
            "expired-consent" => Self::ExpiredConsent,
            "revoked-consent" => Self::RevokedConsent,
            "sca-rejected" => Self::ScaRejected,
            "access-exceeded" => Self::AccessExceeded,
            "schema-changed" => Self::SchemaChanged,
            _ => return None,
        })
    }
}

/// How the bank authorises a new consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaMode {
    /// `received` with an `scaRedirect` link the person opens.
    Redirect,
    /// `valid` at once (an exemption): no link, no question.
    Exempt,
}

/// A consent as the bank holds it.
#[derive(Debug, Clone)]
struct ConsentRec {
    status: &'static str,
    valid_until: NaiveDate,
    frequency_per_day: u32,
    recurring: bool,
    last_action: NaiveDate,
    /// Accesses without the person, by (day, path).
    unattended: HashMap<(NaiveDate, String), u32>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    ledger: Ledger,
    scenario: Mutex<Scenario>,
    sca: Mutex<ScaMode>,
    consents: Mutex<HashMap<String, ConsentRec>>,
    request_ids: Mutex<Vec<String>>,
    sca_visits: Mutex<Vec<String>>,
    /// Data calls: path, and whether `PSU-IP-Address` came with it.
    ais_calls: Mutex<Vec<(String, bool)>>,
}

impl Inner {
    fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    fn scenario(&self) -> Scenario {
        *lock(&self.scenario)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fault answers in NextGenPSD2's style.
fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "application/json",
        too_many_requests: r#"{"tppMessages":[{"category":"ERROR","code":"ACCESS_EXCEEDED","text":"Too many requests; retry later"}]}"#,
        unavailable: r#"{"tppMessages":[{"category":"ERROR","code":"SERVICE_UNAVAILABLE","text":"The ASPSP's interface is unavailable"}]}"#,
        server_error: r#"{"tppMessages":[{"category":"ERROR","code":"INTERNAL_SERVER_ERROR","text":"Internal error"}]}"#,
        maintenance: r#"{"tppMessages":[{"category":"ERROR","code":"SERVICE_UNAVAILABLE","text":"Maintenance"}]}"#,
        maintenance_status: StatusCode::SERVICE_UNAVAILABLE,
        maintenance_paths: &[],
        headers: &[],
    }
}

/// A running sandbox bank; dropping it stops the server.
pub struct Sandbox {
    server: SandboxServer,
    inner: Arc<Inner>,
}

impl Sandbox {
    /// Starts the bank in `scenario` on the system clock, SCA by redirect.
    pub async fn start(scenario: Scenario) -> std::io::Result<Self> {
        Self::start_with_clock(scenario, Arc::new(SystemClock)).await
    }

    /// Starts the bank in `scenario` on `clock` (the run's clock in tests).
    pub async fn start_with_clock(scenario: Scenario, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Self::start_on(scenario, clock, None).await
    }

    /// Starts the bank on `127.0.0.1:port` (`None`: any free port).
    pub async fn start_on(
        scenario: Scenario,
        clock: Arc<dyn Clock>,
        port: Option<u16>,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            clock,
            ledger: Ledger::load()?,
            scenario: Mutex::new(Scenario::Normal),
            sca: Mutex::new(ScaMode::Redirect),
            consents: Mutex::default(),
            request_ids: Mutex::default(),
            sca_visits: Mutex::default(),
            ais_calls: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/consents", axum::routing::post(consents::create))
            .route(
                "/v1/consents/{id}",
                get(consents::information).delete(consents::delete),
            )
            .route("/v1/consents/{id}/status", get(consents::status))
            .route(&format!("{SCA_PAGE}/{{id}}"), get(consents::sca_page))
            .route("/v1/accounts", get(ais::accounts))
            .route("/v1/accounts/{id}/balances", get(ais::balances))
            .route("/v1/accounts/{id}/transactions", get(ais::transactions))
            .with_state(Arc::clone(&inner));
        let server = SandboxServer::start_with(app, port, fault_pages()).await?;
        server.faults().set_retry_after(RETRY_AFTER);
        let sandbox = Self { server, inner };
        sandbox.set_scenario(scenario);
        Ok(sandbox)
    }

    /// `http://127.0.0.1:<port>`: the account's endpoint.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Changes the scenario from the next request on.
    pub fn set_scenario(&self, scenario: Scenario) {
        *lock(&self.inner.scenario) = scenario;
        let faults = self.server.faults();
        faults.clear();
        match scenario {
            Scenario::RateLimited => faults.rate_limit_every(3),
            Scenario::Unavailable => faults.set_unavailable(true),
            _ => {}
        }
    }

    /// Changes how new consents are authorised.
    pub fn set_sca(&self, mode: ScaMode) {
        *lock(&self.inner.sca) = mode;
    }

    /// The bank expires every consent now (as if their `validUntil` had
    /// passed).
    pub fn expire_consents(&self) {
        for c in lock(&self.inner.consents).values_mut() {
            c.status = "expired";
        }
    }

    /// The person revokes every consent at the bank.
    pub fn revoke_consents(&self) {
        for c in lock(&self.inner.consents).values_mut() {
            c.status = "revokedByPsu";
        }
    }

    /// The bank forgets every consent (a new sandbox would not know them).
    pub fn forget_consents(&self) {
        lock(&self.inner.consents).clear();
    }

    /// Consents created so far.
    pub fn consents_created(&self) -> usize {
        self.server.stats().count("POST", "/v1/consents")
    }

    /// The statuses of the consents, in no particular order.
    pub fn consent_statuses(&self) -> Vec<&'static str> {
        lock(&self.inner.consents).values().map(|c| c.status).collect()
    }

    /// Visits of the SCA page, by consent id.
    pub fn sca_visits(&self) -> Vec<String> {
        lock(&self.inner.sca_visits).clone()
    }

    /// Every `X-Request-ID` received, in order.
    pub fn request_ids(&self) -> Vec<String> {
        lock(&self.inner.request_ids).clone()
    }

    /// API requests received (faulted ones included; not the SCA page).
    pub fn requests(&self) -> usize {
        self.server.stats().requests()
    }

    /// Requests with this method and exact path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.server.stats().count(method, path)
    }

    /// The data calls so far: path, and whether `PSU-IP-Address` (the
    /// person taking part) came with it.
    pub fn ais_calls(&self) -> Vec<(String, bool)> {
        lock(&self.inner.ais_calls).clone()
    }

    /// The bank's books.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }
}

/// The sandbox as the registry knows it (`gleaner demo`, `gleaner
/// sandbox`, the conformance suite): SCA as [`REGISTRY_SCA`] says, the
/// demo account's fields (three years of history, to reach the Free
/// Mobile invoices).
pub fn definition() -> SandboxDef {
    SandboxDef {
        slug: "nextgenpsd2",
        scenarios: SCENARIOS,
        start: start_definition,
    }
}

fn start_definition(options: StartOptions) -> StartFuture {
    Box::pin(async move {
        let name = options.scenario.unwrap_or_else(|| "normal".to_owned());
        let scenario = Scenario::parse(&name).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no NextGenPSD2 scenario `{name}`"),
            )
        })?;
        let sandbox = Sandbox::start_on(scenario, Arc::new(SystemClock), options.port).await?;
        sandbox.set_sca(REGISTRY_SCA);
        Ok(RunningSandbox {
            base_url: sandbox.base_url(),
            fields: vec![
                ("psu_id".into(), PSU_ID.into()),
                ("bank_name".into(), INSTITUTION.into()),
                ("history_days".into(), "1095".into()),
            ],
            secrets: Vec::new(),
            scenario: name,
            guard: Box::new(sandbox),
        })
    })
}

/// A NextGenPSD2 error answer.
fn error(status: StatusCode, code: &str, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"tppMessages": [{"category": "ERROR", "code": code, "text": text}]}).to_string(),
    )
        .into_response()
}

/// A JSON answer echoing the request's `X-Request-ID`.
fn answer(status: StatusCode, request_id: &str, body: &serde_json::Value) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// A header's value, trimmed.
fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A refusal answer, boxed (an axum `Response` is large).
type Refusal = Box<Response>;

/// Whether `s` is a hyphenated UUID.
fn is_uuid(s: &str) -> bool {
    crate::bank::nextgenpsd2::api::is_uuid(s)
}

/// Checks `X-Request-ID` (required on every call, a UUID) and records it.
fn request_id(inner: &Inner, headers: &HeaderMap) -> Result<String, Refusal> {
    match header_value(headers, "x-request-id") {
        Some(id) if is_uuid(id) => {
            lock(&inner.request_ids).push(id.to_owned());
            Ok(id.to_owned())
        }
        Some(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "X-Request-ID must be a UUID",
        ))),
        None => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "X-Request-ID is missing",
        ))),
    }
}

/// Checks `PSU-IP-Address` when present (IPv4); whether it is present.
fn psu_ip(headers: &HeaderMap) -> Result<bool, Refusal> {
    match header_value(headers, "psu-ip-address") {
        None => Ok(false),
        Some(ip) if ip.parse::<std::net::Ipv4Addr>().is_ok() => Ok(true),
        Some(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "PSU-IP-Address must be an IPv4 address",
        ))),
    }
}
