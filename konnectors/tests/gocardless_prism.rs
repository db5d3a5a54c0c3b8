//! The GoCardless konnector, unchanged, against GoCardless' published
//! OpenAPI file served by Stoplight Prism (static mode: each answer is the
//! spec's example, or one built from its schema).
//!
//! Prism comes from the npm registry (`npm install @stoplight/prism-cli@5`);
//! the test finds it through `GLEANER_PRISM` (the `prism` executable) or
//! `<repo>/.ci/node_modules/.bin/prism`, and the spec through
//! `GLEANER_SPECS` or `<repo>/../shared/specs`. Without them it prints one
//! line and passes, unless `CI` is set. Prism runs in its own process group
//! on a free loopback port and is killed (the group) whatever happens.
//!
//! What the spec explains:
//! - **as published**, the spec's global `jwtAuth` also covers
//!   `POST /api/v2/token/new/`, so Prism answers the konnector's token call
//!   (no `Authorization`, as the real API wants it) with the spec's 401
//!   example, "No active account found with the given credentials": the run
//!   ends in `LOGIN_FAILED`, the code the spec's 401 ("Incorrect secret key
//!   or id") means;
//! - **with the two token operations' security lifted** (`security: []`,
//!   as the real API serves them; nothing else changed), the run gets its
//!   tokens, the institution, an agreement and a requisition, shows the
//!   requisition's link, and polls it: static Prism always answers status
//!   `CR` (the first value of `StatusEnum`: the person has not finished at
//!   the bank), so the run ends in `USER_ACTION_NEEDED` naming `CR` and the
//!   link, nothing stored;
//! - the **account endpoints'** examples decode into the konnector's types
//!   (every required field there, optional ones tolerated), and its mapping
//!   refuses their placeholder values (`"currency": "string"`,
//!   `"bookingDate": "date"`) with `UNKNOWN_ERROR.SCHEMA_CHANGED` naming the
//!   JSON path.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use chrono::NaiveDate;
use gleaner_framework::http::{Response, StatusCode};
use gleaner_framework::{
    ErrorCode, Secret, TwoFactorChannel, TwoFactorKind, TwoFactorRequest, async_trait,
};
use gleaner_konnectors::bank::gocardless::api::{
    AccountBalances, AccountDetails, AccountMeta, AccountTransactions,
};
use gleaner_konnectors::bank::gocardless::{GoCardless, mapping};
use gleaner_testing::Harness;
use gleaner_testing::prism::{PrismServer, PrismSpec};

const SPEC: &str = "gocardless-bad-v2.json";

/// `GET path` as Prism answers it, as the framework's response.
async fn get(server: &PrismServer, path: &str) -> Response {
    let url = format!("{}{path}", server.url());
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth("token")
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap();
    Response {
        url: url::Url::parse(&url).unwrap(),
        status,
        headers,
        body,
    }
}

/// A person who opens every link at once and says "done".
struct Person;

#[async_trait]
impl TwoFactorChannel for Person {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        assert_eq!(request.kind, TwoFactorKind::Redirect);
        Ok(Secret::new(""))
    }
}

async fn account(h: &Harness, url: &str) -> gleaner_testing::TestAccount {
    h.account(
        "gocardless",
        &[("institution_id", "SANDBOXFINANCE_SFIN0000")],
        &[
            ("secret_id", "prism-secret-id-1234"),
            ("secret_key", "prism-secret-key-5678"),
        ],
        Some(url),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_published_spec_refuses_the_token_call_as_its_401_says() {
    let Some(PrismSpec { prism, spec }) = PrismSpec::find(SPEC) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = PrismServer::start(&prism, &spec, dir.path());
    let h = Harness::new().await.unwrap();
    let a = account(&h, server.url()).await;
    let err = h.run(&GoCardless::new().unwrap(), &a).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
    assert!(
        err.message
            .contains("No active account found with the given credentials"),
        "{}",
        err.message
    );
    assert!(h.counts().await.unwrap().is_empty());
}

#[tokio::test]
async fn with_open_token_calls_the_run_reaches_the_bank_link_and_answers_fit_the_types() {
    let Some(PrismSpec { prism, spec }) = PrismSpec::find(SPEC) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The one change: the token operations need no bearer, as in the real
    // API (the spec's global security covers them by mistake).
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    for path in ["/api/v2/token/new/", "/api/v2/token/refresh/"] {
        json["paths"][path]["post"]["security"] = serde_json::json!([]);
    }
    let open = dir.path().join(SPEC);
    std::fs::write(&open, json.to_string()).unwrap();
    let server = PrismServer::start(&prism, &open, dir.path());

    let h = Harness::new().await.unwrap();
    let a = account(&h, server.url()).await;
    let mut options = h.run_options();
    options.two_factor = Arc::new(Person);
    let err = h
        .run_with(&GoCardless::new().unwrap(), &a, options)
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededScaRequired,
        "{}",
        err.message
    );
    assert!(
        err.message.contains("GoCardless says CR"),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("https://ob.gocardless.com/psd2/start/"),
        "{}",
        err.message
    );
    assert!(h.counts().await.unwrap().is_empty());
    let log = server.log();
    for call in [
        "/api/v2/token/new/",
        "/api/v2/institutions/SANDBOXFINANCE_SFIN0000/",
        "/api/v2/agreements/enduser/",
        "/api/v2/requisitions/",
    ] {
        assert!(log.contains(call), "prism saw no {call}:\n{log}");
    }
    assert!(!log.contains("422"), "prism refused a request:\n{log}");

    // The account endpoints: the examples fit the types...
    let id = "497f6eca-6276-4993-bfeb-53cbbbba6f08";
    let meta: AccountMeta = get(&server, &format!("/api/v2/accounts/{id}/"))
        .await
        .json()
        .unwrap();
    let details = get(&server, &format!("/api/v2/accounts/{id}/details/"))
        .await
        .json::<AccountDetails>()
        .unwrap()
        .account;
    let balances = get(&server, &format!("/api/v2/accounts/{id}/balances/"))
        .await
        .json::<AccountBalances>()
        .unwrap()
        .balances;
    let txs = get(
        &server,
        &format!("/api/v2/accounts/{id}/transactions/?date_from=2025-09-21&date_to=2025-12-20"),
    )
    .await
    .json::<AccountTransactions>()
    .unwrap()
    .transactions;
    assert_eq!(
        (balances.len(), txs.booked.len(), txs.pending.len()),
        (2, 2, 1)
    );
    assert_eq!(mapping::account_label(&meta, &details), "string");
    // ...and their placeholder values are refused, naming the path.
    let e = mapping::current_balance(&balances, "balances").unwrap_err();
    assert_eq!(e.code, ErrorCode::SchemaChanged);
    assert!(
        e.message.contains("balances[0].balanceAmount.currency"),
        "{}",
        e.message
    );
    let today = NaiveDate::from_ymd_opt(2025, 12, 20).unwrap();
    let e = mapping::operations(&txs, "A", None, today, "transactions").unwrap_err();
    assert_eq!(e.code, ErrorCode::SchemaChanged);
    assert!(
        e.message
            .contains("transactions.booked[0].transactionAmount.currency"),
        "{}",
        e.message
    );
}
