//! The test kit's replay and the conformance suite on a cassette: a run of
//! the Free Mobile konnector recorded from its sandbox replays strictly
//! offline; a cassette with an exchange too many, or one too few, fails
//! the replay with a message saying which.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use gleaner_framework::cassette::{Cassette, CassetteMode};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_testing::{Harness, ReplayError, Source, assert_conforms, replay};

/// Records one run against the sandbox into `dir`; returns the file.
async fn record(dir: &Path) -> PathBuf {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let h = Harness::builder().sessions(false).build().await.unwrap();
    let account = h
        .account(
            "free-mobile",
            &[("login", LOGIN)],
            &[("password", PASSWORD)],
            Some(&sandbox.base_url()),
        )
        .await
        .unwrap();
    let path = dir.join("free-mobile.json");
    let mut options = h.run_options();
    options.cassette = Some(CassetteMode::Record(path.clone()));
    h.run_with(&FreeMobile::new().unwrap(), &account, options)
        .await
        .unwrap();
    path
}

#[tokio::test]
async fn a_recorded_run_replays_strictly_and_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = record(dir.path()).await;
    let konnector = FreeMobile::new().unwrap();
    let outcome = replay(&konnector, &path).await.unwrap();
    assert_eq!(outcome.report.counts["io.cozy.bills"].created, 20);
    assert_eq!(outcome.harness.count("io.cozy.bills").await.unwrap(), 20);
    assert_eq!(outcome.harness.file_paths().unwrap().len(), 20);

    let report = assert_conforms(&konnector, Source::Cassette(path)).await;
    assert!(
        report
            .skipped()
            .iter()
            .any(|(c, _)| *c == "wrong credentials"),
        "{report}"
    );
}

#[tokio::test]
async fn an_exchange_left_unused_or_missing_fails_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = record(dir.path()).await;
    let konnector = FreeMobile::new().unwrap();
    let mut cassette = Cassette::load(&path).unwrap();

    // One exchange too many: recorded twice, asked once.
    let mut extra = cassette.clone();
    let last = extra.exchanges.last().unwrap().clone();
    extra.exchanges.push(last);
    let extra_path = dir.path().join("extra.json");
    extra.save(&extra_path).unwrap();
    match replay(&konnector, &extra_path).await {
        Err(ReplayError::Unused { unused, .. }) => {
            assert_eq!(unused.len(), 1, "{unused:?}");
        }
        other => panic!("an unused exchange went unnoticed: {other:?}"),
    }

    // One too few: the run asks for what the cassette lacks.
    let removed = cassette.exchanges.remove(cassette.exchanges.len() - 1);
    let short_path = dir.path().join("short.json");
    cassette.save(&short_path).unwrap();
    match replay(&konnector, &short_path).await {
        Err(ReplayError::Run(e)) => {
            assert!(e.message.contains("no exchange left"), "{}", e.message);
            assert!(e.message.contains("--- recorded"), "{}", e.message);
            assert!(removed.request.url.contains('/'));
        }
        other => panic!("a missing request went unnoticed: {other:?}"),
    }
}
