//! `gleaner run --record DIR` then `gleaner run --replay DIR`, through the
//! binary: the cassette a real run writes is scrubbed, and a replay of it
//! runs offline (the sandbox is gone) and saves nothing.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::Home;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};

fn cassette_in(dir: &std::path::Path) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one cassette expected in {dir:?}: {found:?}"
    );
    found.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_run_replays_offline_and_saves_nothing() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    home.add_free_mobile(&sandbox.base_url(), PASSWORD, "mine");
    let cassettes = home.path().join("cassettes");
    let dir = cassettes.to_str().unwrap();

    let out = home.ok(&["run", "mine", "--record", dir]);
    assert!(out.contains("cassette: "), "{out}");
    let cassette = cassette_in(&cassettes);
    let text = std::fs::read_to_string(&cassette).unwrap();
    assert!(!text.contains(PASSWORD), "the cassette holds the password");
    assert!(!text.contains(LOGIN), "the cassette holds the login");
    let stored = home.export().len();
    assert!(
        stored > 20,
        "the recorded run saved its documents: {stored}"
    );
    let logins = sandbox.login_posts();

    // The provider is gone: the replay answers from the cassette alone.
    drop(sandbox);
    let out = home.ok(&["run", "mine", "--replay", dir]);
    assert!(out.contains("(nothing saved)"), "{out}");
    assert!(
        !out.contains("did not use"),
        "every exchange replays: {out}"
    );
    assert_eq!(home.export().len(), stored, "a replay wrote to the store");
    assert_eq!(logins, 1);

    // A cassette whose page no longer has the invoices table is the
    // changed-markup case: the replay fails naming the selector.
    let changed = text.replace("table-facture", "table-invoices");
    assert_ne!(changed, text, "the recorded page lists the invoices");
    std::fs::write(&cassette, changed).unwrap();
    let err = home.fails(&["run", "mine", "--replay", dir]);
    assert!(err.contains("div.table-facture"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(home.export().len(), stored);
}

#[test]
fn replaying_a_missing_cassette_is_a_clear_error() {
    let home = Home::new();
    home.add_free_mobile("http://127.0.0.1:9", PASSWORD, "mine");
    let empty = home.path().join("nothing-here");
    std::fs::create_dir_all(&empty).unwrap();
    let err = home.fails(&["run", "mine", "--replay", empty.to_str().unwrap()]);
    assert!(err.contains("free-mobile"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
