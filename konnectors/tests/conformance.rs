//! The conformance suite on every built-in konnector, read from the
//! registry: a new konnector is covered without editing this file.
//!
//! A konnector with a sandbox is checked against it; one without must have
//! a cassette under `fixtures/<slug>/cassettes/`, replayed offline; one
//! with neither fails here.

#![allow(clippy::unwrap_used, missing_docs)]

use gleaner_konnectors::Registry;
use gleaner_testing::{Source, assert_conforms, committed_cassettes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_konnector_conforms() {
    let registry = Registry::builtin().unwrap();
    let mut uncovered = Vec::new();
    for entry in registry.entries() {
        let konnector = entry.konnector.as_ref();
        let slug = konnector.manifest().slug.clone();
        let mut covered = false;
        if let Some(def) = entry.sandbox {
            let source = Source::Sandbox(def);
            let report = assert_conforms(konnector, source).await;
            println!("{report}");
            covered = true;
        }
        for cassette in committed_cassettes(&slug) {
            let report = assert_conforms(konnector, Source::Cassette(cassette)).await;
            println!("{report}");
            covered = true;
        }
        if !covered {
            uncovered.push(slug);
        }
    }
    assert!(
        uncovered.is_empty(),
        "konnectors with neither a sandbox nor a cassette under fixtures/<slug>/cassettes/: {}",
        uncovered.join(", ")
    );
}
