//! Record and replay with the Free Mobile sandbox: a cassette recorded from
//! the sandbox holds none of its secrets, and replays offline (the sandbox
//! stopped, other credentials) into identical documents.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use chrono::Utc;
use gleaner_framework::cassette::{Cassette, CassetteMode, Scrubber};
use gleaner_framework::store::Account;
use gleaner_framework::{RunEnv, RunOptions, RunReport, Secret, run_konnector};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};

/// A fresh installation from the test kit (store, files tree, fast
/// retries); the run env lives as long as it does.
async fn kit() -> gleaner_testing::Harness {
    gleaner_testing::Harness::new().await.unwrap()
}

fn account(endpoint: &str) -> Account {
    Account {
        id: "acc-fm".into(),
        konnector: "free-mobile".into(),
        label: "fm".into(),
        fields: BTreeMap::from([("login".to_owned(), LOGIN.to_owned())]),
        sealed_secrets: Vec::new(),
        endpoint: Some(endpoint.to_owned()),
        created_at: Utc::now(),
        folder: "Free Mobile/acc-fm".into(),
    }
}

async fn run(env: &RunEnv, endpoint: &str, password: &str, cassette: CassetteMode) -> RunReport {
    run_konnector(
        &FreeMobile::new().unwrap(),
        &account(endpoint),
        BTreeMap::from([("password".to_owned(), Secret::new(password))]),
        env,
        RunOptions {
            cassette: Some(cassette),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Every document's data by doctype and key, without what differs between
/// two runs by nature (ids, revisions, the run's own timestamps).
async fn documents(env: &RunEnv) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut out = BTreeMap::new();
    for doctype in ["io.cozy.bills", "io.cozy.files"] {
        let mut docs: Vec<serde_json::Value> = env
            .store
            .list(doctype, Some("acc-fm"), None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|d| {
                let mut v = d.data;
                if let Some(o) = v.as_object_mut() {
                    for volatile in ["_id", "_rev", "invoice", "cozyMetadata"] {
                        o.remove(volatile);
                    }
                }
                v
            })
            .collect();
        docs.sort_by_key(|v| format!("{}{}", v["vendorRef"], v["path"]));
        out.insert(doctype.to_owned(), docs);
    }
    out
}

/// Whether `text` holds `word` standing alone (not inside a longer number
/// or word: the login `12345678` is also the tail of the sandbox's phone
/// number `0612345678`, which is not the login).
fn holds_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[tokio::test]
async fn a_sandbox_cassette_holds_no_secret_and_replays_offline_into_the_same_documents() {
    let dir = tempfile::tempdir().unwrap();
    let cassettes = dir.path().join("cassettes");
    std::fs::create_dir(&cassettes).unwrap();
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let endpoint = sandbox.base_url();

    // Record a real run against the sandbox.
    let live_kit = kit().await;
    let live_env = live_kit.env().clone();
    let live = run(
        &live_env,
        &endpoint,
        PASSWORD,
        CassetteMode::Record(cassettes.clone()),
    )
    .await;
    assert_eq!(live.created(), 40, "{live:?}");
    let file = cassettes.join(format!("free-mobile-{}.json", live.run_id));
    assert_eq!(Cassette::find(&cassettes, "free-mobile").unwrap(), file);
    let text = std::fs::read_to_string(&file).unwrap();
    let cassette = Cassette::load(&file).unwrap();
    assert!(
        cassette.exchanges.len() > 20,
        "{}",
        cassette.exchanges.len()
    );
    assert_eq!(cassette.recorded_at, live.started_at);

    // None of the sandbox's secrets: the password, the login, the session
    // cookies (every Set-Cookie value is a placeholder).
    assert!(!text.contains(PASSWORD), "the password is in the cassette");
    assert!(!holds_word(&text, LOGIN), "the login is in the cassette");
    assert!(text.contains("__SECRET_password__") && text.contains("__FIELD_login__"));
    let mut cookies = 0;
    for ex in &cassette.exchanges {
        for (name, value) in &ex.response.headers {
            if name == "set-cookie" {
                let v = value.split(';').next().unwrap().split_once('=').unwrap().1;
                assert!(
                    v.starts_with("__COOKIE_") || v == "deleted",
                    "cookie value kept: {value}"
                );
                cookies += 1;
            }
        }
        for (name, value) in &ex.request.headers {
            if name == "cookie" {
                assert!(value.contains("=__COOKIE_"), "cookie value kept: {value}");
            }
        }
    }
    assert!(cookies > 0, "the sandbox sets a session cookie");

    // Replay offline: the sandbox is gone, the password is another.
    sandbox.shutdown().await;
    let replay_kit = kit().await;
    let replay_env = replay_kit.env().clone();
    let replayed = run(
        &replay_env,
        &endpoint,
        "not the recorded password",
        CassetteMode::replay(cassette.clone()),
    )
    .await;
    assert!(
        replayed.unused_exchanges.is_empty(),
        "{:?}",
        replayed.unused_exchanges
    );
    assert_eq!(replayed.counts, live.counts);
    assert_eq!(
        replayed.started_at.date_naive(),
        live.started_at.date_naive()
    );
    // The documents are identical, file hashes included (binary bodies are
    // stored as they are), except where a document holds a scrubbed value:
    // the files' `contractReference` is the login, which the cassette
    // holds as `__FIELD_login__`. So the replay is compared with the live
    // documents scrubbed the same way.
    let (replayed_docs, live_docs) = (documents(&replay_env).await, documents(&live_env).await);
    let mut scrubber = Scrubber::for_run(
        &BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]),
        &BTreeMap::from([("login".to_owned(), LOGIN.to_owned())]),
    );
    let mut changed = 0;
    let live_docs: BTreeMap<String, Vec<serde_json::Value>> = live_docs
        .into_iter()
        .map(|(doctype, docs)| {
            let docs = docs
                .into_iter()
                .map(|d| {
                    let text = d.to_string();
                    let scrubbed = scrubber.scrub_text(&text);
                    assert_eq!(scrubbed != text, holds_word(&text, LOGIN));
                    if scrubbed != text {
                        changed += 1;
                    }
                    serde_json::from_str(&scrubbed).unwrap()
                })
                .collect();
            (doctype, docs)
        })
        .collect();
    // The files of the login's own line (the others hold another line's
    // reference).
    assert!(changed > 0 && changed < 20, "{changed}");
    for (doctype, docs) in &live_docs {
        assert_eq!(docs.len(), replayed_docs[doctype].len(), "{doctype}");
        for (l, r) in docs.iter().zip(&replayed_docs[doctype]) {
            assert_eq!(l, r, "{doctype}");
        }
    }
}
