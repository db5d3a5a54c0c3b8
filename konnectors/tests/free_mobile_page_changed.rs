//! A recorded page whose markup changed: one CSS class renamed in one
//! page of a cassette recorded from the Free Mobile sandbox makes the
//! replay fail with `UNKNOWN_ERROR.PAGE_CHANGED`, naming the selector that
//! matched nothing and the page it was looked for on.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gleaner_framework::cassette::{Body, Cassette, CassetteMode};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::store::{Account, FileStore, SqliteStore};
use gleaner_framework::{ErrorCode, Locator, RunEnv, RunOptions, RunReport, Secret, run_konnector};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};

async fn env(dir: &Path) -> RunEnv {
    RunEnv {
        store: Arc::new(SqliteStore::open(&dir.join("gleaner.db")).await.unwrap()),
        files: FileStore::open(&dir.join("files")).unwrap(),
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(1),
        },
    }
}

async fn run(
    dir: &Path,
    endpoint: &str,
    cassette: CassetteMode,
) -> gleaner_framework::Result<RunReport> {
    let account = Account {
        id: "acc-fm".into(),
        konnector: "free-mobile".into(),
        label: "fm".into(),
        fields: BTreeMap::from([("login".to_owned(), LOGIN.to_owned())]),
        sealed_secrets: Vec::new(),
        endpoint: Some(endpoint.to_owned()),
        created_at: Utc::now(),
        folder: "Free Mobile/acc-fm".into(),
    };
    run_konnector(
        &FreeMobile::new().unwrap(),
        &account,
        BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]),
        &env(dir).await,
        RunOptions {
            cassette: Some(cassette),
            ..RunOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_renamed_css_class_in_a_recorded_page_fails_the_replay_naming_the_selector_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let cassettes = dir.path().join("cassettes");
    std::fs::create_dir(&cassettes).unwrap();
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let endpoint = sandbox.base_url();
    let live = run(
        &dir.path().join("live"),
        &endpoint,
        CassetteMode::Record(cassettes.clone()),
    )
    .await
    .unwrap();
    sandbox.shutdown().await;
    assert!(live.created() > 0);
    let mut cassette = Cassette::load(&Cassette::find(&cassettes, "free-mobile").unwrap()).unwrap();

    // The untouched cassette replays.
    run(
        &dir.path().join("replay-ok"),
        &endpoint,
        CassetteMode::replay(cassette.clone()),
    )
    .await
    .unwrap();

    // Rename one class in the first recorded page that has it.
    let exchange = cassette
        .exchanges
        .iter_mut()
        .find(|e| matches!(&e.response.body, Some(Body::Text(t)) if t.contains("table-facture")))
        .expect("a recorded page with the invoices table");
    let page = exchange.response.url.clone();
    if let Some(Body::Text(text)) = &mut exchange.response.body {
        *text = text.replace("table-facture", "table-invoices");
    }

    let err = run(
        &dir.path().join("replay-changed"),
        &endpoint,
        CassetteMode::replay(cassette),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::PageChanged, "{err}");
    let page_without_query = page.split('?').next().unwrap();
    assert!(err.message.contains("div.table-facture"), "{err}");
    assert!(
        err.message.contains(page_without_query),
        "{err} (page {page})"
    );
    match err.locator.as_deref() {
        Some(Locator::Selector { selector, page }) => {
            assert!(selector.contains("table-facture"), "{selector}");
            assert_eq!(page, page_without_query);
        }
        other => panic!("no selector locator: {other:?}"),
    }
}
