//! The cassettes committed under `fixtures/<slug>/cassettes/`: each replays
//! strictly offline (every request answered, every exchange used) and
//! creates documents. `conformance.rs` runs the conformance suite on them.
//!
//! They are recorded from the konnectors' sandboxes by the ignored test
//! below; re-record after changing a konnector's requests:
//!
//! ```sh
//! cargo test -p gleaner-konnectors --test cassettes -- --ignored record_the_committed_cassettes
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use gleaner_framework::cassette::CassetteMode;
use gleaner_konnectors::Registry;
use gleaner_sandbox_kit::StartOptions;
use gleaner_testing::{Harness, committed_cassettes, replay};

fn cassette_dir(slug: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(slug)
        .join("cassettes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_cassette_replays_strictly_into_documents() {
    let registry = Registry::builtin().unwrap();
    let mut replayed = 0;
    for entry in registry.entries() {
        let konnector = entry.konnector.as_ref();
        for path in committed_cassettes(&konnector.manifest().slug) {
            let outcome = replay(konnector, &path)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                outcome.report.created() > 0,
                "{}: the replay created nothing: {:?}",
                path.display(),
                outcome.report.counts
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 2, "only {replayed} committed cassette(s) found");
}

/// Records one run of every konnector with a sandbox into
/// `fixtures/<slug>/cassettes/<slug>-sandbox.json` (scrubbed as
/// `gleaner run --record` scrubs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes fixtures/: run by hand to re-record the committed cassettes"]
async fn record_the_committed_cassettes() {
    let registry = Registry::builtin().unwrap();
    for entry in registry.entries() {
        let Some(def) = entry.sandbox else { continue };
        let konnector = entry.konnector.as_ref();
        let slug = konnector.manifest().slug.clone();
        let sandbox = def.launch(StartOptions::default()).await.unwrap();
        let h = Harness::builder().sessions(false).build().await.unwrap();
        let account = h.sandbox_account(&slug, &sandbox).await.unwrap();
        let dir = cassette_dir(&slug);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{slug}-sandbox.json"));
        let mut options = h.run_options();
        options.cassette = Some(CassetteMode::Record(path.clone()));
        let report = h.run_with(konnector, &account, options).await.unwrap();
        println!("{}: {:?}", path.display(), report.counts);
    }
}
