//! Replay figures: a 100-exchange cassette through `HttpClient`.
//!
//! Run with `cargo bench --bench replay`. A plain program
//! (`harness = false`) that prints figures and asserts nothing on time:
//! each replay builds a fresh `ReplayTransport` (its matching keys) and
//! `HttpClient`, then sends the 100 requests a paginated JSON API run would
//! send (a bearer token, a query, 2 KB JSON answers decoded into typed
//! structs), each one scrubbed with the run's secrets and matched.
//! Goal (issue 9): under 50 ms per replay.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use gleaner_framework::Secret;
use gleaner_framework::cassette::{
    Body, Cassette, Exchange, RecordedRequest, RecordedResponse, ReplayTransport, Scrubber,
};
use gleaner_framework::http::{HttpClient, HttpConfig, Transport};
use serde::Deserialize;

const EXCHANGES: usize = 100;
const BASE: &str = "https://api.bank.example";

#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    id: String,
    amount: String,
    label: String,
    date: String,
}

fn cassette() -> Cassette {
    let mut c = Cassette::new(
        "bench",
        Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap(),
    );
    for page in 0..EXCHANGES {
        let items: Vec<serde_json::Value> = (0..20)
            .map(|i| {
                serde_json::json!({
                    "id": format!("tx-{page}-{i}"),
                    "amount": format!("{}.{:02}", page + i, i),
                    "label": "CARTE 12/11 BOULANGERIE DU COIN PARIS",
                    "date": "2026-11-12",
                })
            })
            .collect();
        c.exchanges.push(Exchange {
            request: RecordedRequest {
                method: "GET".into(),
                url: format!("{BASE}/v1/transactions?page={page}&size=20"),
                headers: vec![
                    ("authorization".into(), "Bearer __TOKEN_1__".into()),
                    ("x-request-id".into(), format!("req-{page}")),
                ],
                body: None,
            },
            response: RecordedResponse {
                status: 200,
                url: format!("{BASE}/v1/transactions?page={page}&size=20"),
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(Body::Text(
                    serde_json::json!({ "items": items }).to_string(),
                )),
            },
        });
    }
    c
}

async fn replay_once(cassette: &Cassette, token: &Secret) -> usize {
    let replay = Arc::new(ReplayTransport::new(cassette.clone()));
    replay.set_scrubber(Scrubber::for_run(
        &BTreeMap::from([("password".to_owned(), Secret::new("bench-password-1"))]),
        &BTreeMap::from([("login".to_owned(), "bench-login".to_owned())]),
    ));
    let http = HttpClient::with_transport(
        HttpConfig {
            allowed_hosts: vec!["api.bank.example".into()],
            ..HttpConfig::default()
        },
        Arc::clone(&replay) as Arc<dyn Transport>,
    );
    let mut items = 0;
    for page in 0..EXCHANGES {
        let resp = http
            .get(&format!("{BASE}/v1/transactions"))
            .query(&[("size", "20"), ("page", &page.to_string())])
            .bearer(token)
            .header("X-Request-ID", &format!("req-{page}"))
            .send()
            .await
            .unwrap();
        items += resp.json::<Page>().unwrap().items.len();
    }
    assert!(replay.unused().is_empty());
    items
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cassette = cassette();
    let bytes = serde_json::to_vec(&cassette).unwrap().len();
    let token = Secret::new("live-access-token-value");
    // Warm up.
    rt.block_on(replay_once(&cassette, &token));
    let runs = 30;
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        black_box(rt.block_on(replay_once(&cassette, &token)));
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "replay of a {EXCHANGES}-exchange cassette ({} KB): median {:.1} ms, min {:.1} ms, max {:.1} ms per replay ({runs} runs; goal < 50 ms)",
        bytes / 1024,
        times[runs / 2],
        times[0],
        times[runs - 1]
    );
}
