//! `gleaner migrate` moves a demo installation from SQLite to PostgreSQL:
//! the same documents (ids, revisions, content) per doctype, the same
//! triggers (a paused account stays paused), accounts whose sealed
//! credentials still open (a second demo on PostgreSQL logs in, creates
//! nothing and downloads nothing), and a second migration into the now
//! full database is refused without touching it.
//!
//! Skipped with one printed line when no PostgreSQL answers (required
//! under CI): see `gleaner_testing::postgres`.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gleaner_testing::postgres::TestDb;

fn gleaner(home: &Path, db: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gleaner"));
    cmd.args(args)
        .env("GLEANER_HOME", home)
        .env_remove("GLEANER_DATABASE")
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null());
    if let Some(db) = db {
        cmd.env("GLEANER_DATABASE", db);
    }
    cmd.output().unwrap()
}

fn ok(home: &Path, db: Option<&str>, args: &[&str]) -> String {
    let out = gleaner(home, db, args);
    assert!(
        out.status.success(),
        "gleaner {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every stored document, by doctype, as `id -> (rev, document)`.
fn export(home: &Path, db: Option<&str>) -> BTreeMap<String, BTreeMap<String, serde_json::Value>> {
    let mut out: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    for line in ok(home, db, &["export"]).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let doctype = v["doctype"].as_str().unwrap().to_owned();
        let id = v["doc"]["_id"].as_str().unwrap().to_owned();
        let mut doc = v["doc"].clone();
        to_microseconds(&mut doc);
        out.entry(doctype).or_default().insert(id, doc);
    }
    out
}

/// PostgreSQL keeps times to the microsecond, SQLite's text to the
/// nanosecond (docs/postgres.md): times are compared to the microsecond.
fn to_microseconds(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                *s = t
                    .with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(to_microseconds),
        serde_json::Value::Object(map) => map.values_mut().for_each(to_microseconds),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demo_installation_moves_to_postgres_with_identical_documents_and_working_accounts() {
    let Some(db) = TestDb::create("migrate").await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let first = ok(home.path(), None, &["demo"]);
    assert!(first.contains("errors: none"), "{first}");
    ok(home.path(), None, &["accounts", "pause", "demo-edf"]);
    let before = export(home.path(), None);
    assert!(before.get("io.cozy.bills").is_some_and(|b| !b.is_empty()));

    let moved = ok(
        home.path(),
        None,
        &[
            "migrate",
            "--from",
            home.path().to_str().unwrap(),
            "--to",
            &db.url,
        ],
    );
    assert!(moved.contains("counts checked on both sides"), "{moved}");

    // The same documents, ids, revisions and content.
    let after = export(home.path(), Some(&db.url));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (doctype, docs) in &before {
        assert_eq!(docs.len(), after[doctype].len(), "{doctype}");
        assert_eq!(docs, &after[doctype], "{doctype} differs after the move");
    }
    let status = ok(home.path(), Some(&db.url), &["status"]);
    let edf = status.lines().find(|l| l.contains("demo-edf")).unwrap();
    assert!(edf.contains("paused"), "{edf}");

    // The accounts work on PostgreSQL: their credentials open, and what
    // was imported is recognised (nothing created, nothing downloaded).
    let again = ok(home.path(), Some(&db.url), &["demo"]);
    assert!(again.contains("errors: none"), "{again}");
    assert!(
        again.contains("files: 0 downloaded"),
        "files downloaded again after the move: {again}"
    );
    let created_again = again
        .lines()
        .filter(|l| l.starts_with('│') && l.contains("io.cozy."))
        .map(|l| l.split('┆').nth(2).unwrap().trim().parse::<u64>().unwrap())
        .sum::<u64>();
    assert_eq!(created_again, 0, "documents created again: {again}");

    // A second migration into the full database is refused, naming why,
    // and leaves it as it was.
    let refused = gleaner(
        home.path(),
        None,
        &[
            "migrate",
            "--from",
            home.path().to_str().unwrap(),
            "--to",
            &db.url,
        ],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("already holds"), "{err}");
    assert_eq!(export(home.path(), Some(&db.url)), after);
    drop(db);
}
