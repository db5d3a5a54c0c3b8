//! The documents pages end to end: `gleaner demo` fills a data directory
//! (every konnector's sandbox), `gleaner serve` shows it, chromium reads the
//! pages; the file download and its refusals are checked over plain HTTP
//! with the browser's session cookie.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod web_common;

use std::collections::BTreeMap;

use chrono::Utc;
use gleaner_framework::store::{DocStore, RunCommit, SqliteStore, StagedDoc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use web_common::{Home, Served, Web};

/// The number right after `needle` in `html`, up to the next `<`.
fn number_after(html: &str, needle: &str) -> Option<u64> {
    let at = html.find(needle)? + needle.len();
    let rest = &html[at..];
    let cell_start = rest.find("class=\"num count\">")? + "class=\"num count\">".len();
    rest[cell_start..]
        .split('<')
        .next()?
        .trim()
        .replace(',', "")
        .parse()
        .ok()
}

/// The counts per doctype and the documents, as `gleaner export` gives
/// them.
fn exported(home: &Home) -> (BTreeMap<String, u64>, Vec<(String, Value)>) {
    let mut counts = BTreeMap::new();
    let mut docs = Vec::new();
    for line in home.export() {
        let doctype = line["doctype"].as_str().unwrap().to_owned();
        if doctype != "io.cozy.accounts" {
            *counts.entry(doctype.clone()).or_insert(0) += 1;
        }
        docs.push((doctype, line["doc"].clone()));
    }
    (counts, docs)
}

/// A client that sends the browser's session cookie (the one-time link
/// logs in once: the browser used it).
fn client_with_session(web: &Web) -> reqwest::Client {
    let cookie = web
        .tab
        .get_cookies()
        .unwrap()
        .into_iter()
        .find(|c| c.name == "gleaner_session")
        .expect("the browser holds a session cookie");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("gleaner_session={}", cookie.value).parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Puts an `io.cozy.files` document whose path leaves the files folder
/// (what a damaged or tampered store could hold); returns its id.
async fn craft_escaping_file(home: &Home, account_id: &str) -> String {
    let store = SqliteStore::open(&home.path().join("gleaner.db"))
        .await
        .unwrap();
    let before = store.state(account_id).await.unwrap().map(|s| s.state);
    let doc = json!({
        "type": "file", "name": "gleaner.db", "path": "../gleaner.db",
        "mime": "application/pdf", "class": "pdf", "size": 1, "sha256": "00",
        "metadata": {}
    });
    store
        .commit_run(RunCommit {
            account_id: account_id.to_owned(),
            account_identifier: None,
            run_id: "crafted".into(),
            konnector: "free-mobile".into(),
            docs: vec![StagedDoc::from_value(
                "io.cozy.files",
                "../gleaner.db".into(),
                None,
                &doc,
            )],
            deletes: vec![],
            state: before.unwrap_or_else(|| json!({})),
            finished_at: Utc::now(),
        })
        .await
        .unwrap();
    let id = store
        .find_id(account_id, "io.cozy.files", "../gleaner.db")
        .await
        .unwrap()
        .unwrap();
    store.pool().close().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_pages_show_what_the_cli_shows_with_charts_files_and_refusals() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let home = Home::new();
    home.ok(&["demo"]);
    let (_, docs) = exported(&home);
    let accounts: BTreeMap<String, String> = docs
        .iter()
        .filter(|(d, _)| d == "io.cozy.accounts")
        .map(|(_, a)| {
            (
                a["account_type"].as_str().unwrap().to_owned(),
                a["_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let free_mobile = accounts
        .get("free-mobile")
        .unwrap_or_else(|| panic!("a demo Free Mobile account: {accounts:?}"))
        .clone();
    let (counts, docs) = exported(&home);
    for doctype in [
        "io.cozy.bills",
        "io.cozy.files",
        "io.cozy.timeseries.energy",
    ] {
        assert!(counts.get(doctype).copied().unwrap_or(0) > 0, "{counts:?}");
    }

    let served = Served::start(&home, &["--no-daemon"], &[]);
    let web = Web::launch(true);
    web.login(&served);

    // The overview: the counts `gleaner export` gives, per doctype.
    web.goto(&served.url("/documents"))
        .wait_for("table#doctypes");
    let html = web.html();
    for (doctype, n) in &counts {
        assert_eq!(
            number_after(&html, &format!("data-doctype=\"{doctype}\"")),
            Some(*n),
            "{doctype} on the overview:\n{html}"
        );
    }
    assert!(html.contains("EUR spent"), "bills have a total:\n{html}");
    assert!(html.contains("EUR refunded"), "refunds have a total");

    // One account: only its documents, its counts as the CLI's.
    let fm_bills = docs
        .iter()
        .filter(|(d, doc)| {
            d == "io.cozy.bills" && doc["cozyMetadata"]["sourceAccount"] == free_mobile.as_str()
        })
        .count() as u64;
    web.goto(&served.url(&format!("/documents?account={free_mobile}")))
        .wait_for("table#doctypes");
    let html = web.html();
    assert_eq!(
        number_after(&html, "data-doctype=\"io.cozy.bills\""),
        Some(fm_bills),
        "{html}"
    );
    assert!(
        !html.contains("data-doctype=\"io.cozy.timeseries.energy\""),
        "Free Mobile has no energy series:\n{html}"
    );
    let cli = home.ok(&["docs", "io.cozy.bills", "--account", "demo-free-mobile"]);
    assert!(
        cli.contains(&format!("{fm_bills} document(s) of io.cozy.bills")),
        "{cli}"
    );

    // Bills: the chart (spent and refunded bars), its table, the bills.
    web.goto(&served.url("/documents/io.cozy.bills"))
        .wait_for("svg#chart-bills")
        .wait_for("table#months")
        .wait_for("table#bills");
    let html = web.html();
    let svg = &html[html.find("<svg id=\"chart-bills\"").unwrap()..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    assert!(svg.contains("role=\"img\""), "{svg}");
    assert!(svg.contains("<title id=\"chart-bills-title\">Money spent per month (EUR)</title>"));
    assert!(svg.contains("class=\"bar-spent\""), "{svg}");
    assert!(
        svg.contains("class=\"bar-refund\""),
        "refunds are drawn: {svg}"
    );
    assert!(html.contains("<span class=\"badge ok\">refund</span>"));
    let bills = counts["io.cozy.bills"];
    assert!(
        html.contains(&format!("of {bills})")) || bills <= 50,
        "the pager counts every bill:\n{html}"
    );
    web.screenshot("documents-bills");

    // A bill's file opens as a PDF.
    let at = html
        .find("class=\"file-link\"")
        .expect("a bill links its file");
    let link_start = html[..at].rfind("href=\"").unwrap() + 6;
    let href = &html[link_start..link_start + html[link_start..].find('"').unwrap()];
    assert!(href.starts_with("/files/"), "{href}");
    let client = client_with_session(&web);
    let r = client.get(served.url(href)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{href}");
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("inline; filename="),
        "{disposition}"
    );
    assert!(r.headers().contains_key("content-security-policy"));
    let body = r.bytes().await.unwrap();
    assert!(
        body.starts_with(b"%PDF"),
        "{:?}",
        &body[..body.len().min(16)]
    );

    // Not a file, no such id, a path out of the files folder: refused.
    let bill_id = docs
        .iter()
        .find(|(d, _)| d == "io.cozy.bills")
        .map(|(_, b)| b["_id"].as_str().unwrap().to_owned())
        .unwrap();
    for path in [
        format!("/files/{bill_id}"),
        "/files/0123456789abcdef0123456789abcdef".to_owned(),
        "/files/..%2F..%2Fgleaner.db".to_owned(),
    ] {
        let r = client.get(served.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Without the session: the login page, no file.
    let r = reqwest::get(served.url(href)).await.unwrap();
    assert_ne!(r.headers()["content-type"], "application/pdf");

    // Energy: the per-day line of the Enedis meter, with its numbers.
    web.goto(&served.url("/documents/io.cozy.timeseries.energy"))
        .wait_for("svg#chart-energy")
        .wait_for("table#chart-energy-table");
    let html = web.html();
    let svg = &html[html.find("<svg id=\"chart-energy\"").unwrap()..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    assert!(svg.contains("role=\"img\""));
    assert!(svg.contains("<path class=\"line\""), "{svg}");
    assert!(html.contains("Energy per day, meter"), "{html}");
    let points = svg.matches("<circle class=\"point\"").count();
    assert!(points > 28, "a month of days at least: {points}");
    web.screenshot("documents-energy");

    // Files: a table of names, sizes and download links, paged.
    web.goto(&served.url("/documents/io.cozy.files"))
        .wait_for("table#documents");
    let html = web.html();
    let files = counts["io.cozy.files"];
    let links = html.matches("class=\"file-link\"").count() as u64;
    assert_eq!(links, files.min(50), "one download link per row");
    assert!(html.contains(" KB<") || html.contains(" bytes<"), "sizes");
    web.screenshot("documents-files");
    if files > 50 {
        web.click("a[rel=next]").wait_for("table#documents");
        let more = web.html().matches("class=\"file-link\"").count() as u64;
        assert_eq!(more, (files - 50).min(50), "the second page");
    }

    // A doctype that does not exist.
    let r = client
        .get(served.url("/documents/io.cozy.nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A store that lists a file out of the files folder (damaged or
    // tampered with): refused, the store is not served.
    let crafted = craft_escaping_file(&home, &free_mobile).await;
    let r = client
        .get(served.url(&format!("/files/{crafted}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a path out of the root");
    let body = r.bytes().await.unwrap();
    assert!(!body.starts_with(b"SQLite format"), "the store was served");
}
