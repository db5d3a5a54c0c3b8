//! The konnector HTTP client against wiremock: host allow-list, retries,
//! Retry-After, the request budget and malformed JSON.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use gleaner_framework::ErrorCode;
use gleaner_framework::http::{HttpClient, HttpConfig, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn host_of(server: &MockServer) -> String {
    server.uri().trim_start_matches("http://").to_owned()
}

fn fast_retry(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    }
}

fn client_for(hosts: Vec<String>, retry: RetryPolicy, budget: u32) -> HttpClient {
    HttpClient::new(HttpConfig {
        allowed_hosts: hosts,
        request_budget: budget,
        retry,
        ..HttpConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_host_outside_the_manifest_is_refused_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(vec!["mobile.free.fr".into()], fast_retry(3), 10);
    let err = client
        .get(&format!("{}/secret?token=abc", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::HostNotAllowed);
    assert!(err.message.contains("/secret"), "{}", err.message);
    assert!(
        !err.message.contains("token=abc"),
        "query leaked: {}",
        err.message
    );
    assert_eq!(client.stats().requests, 0);
    // The same port on another loopback name is another host.
    let other = server.uri().replace("127.0.0.1", "localhost");
    assert!(client.get(&other).await.is_err());
    // `server` checks `.expect(0)` on drop.
}

#[tokio::test]
async fn a_redirect_to_a_host_outside_the_manifest_is_refused() {
    let allowed = MockServer::start().await;
    let forbidden = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/steal", forbidden.uri()).as_str()),
        )
        .expect(1)
        .mount(&allowed)
        .await;
    Mock::given(path("/steal"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&forbidden)
        .await;
    let client = client_for(vec![host_of(&allowed)], fast_retry(3), 10);
    let err = client
        .get(&format!("{}/login", allowed.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::HostNotAllowed, "{err}");
}

#[tokio::test]
async fn recovers_from_a_503_then_200() {
    let server = MockServer::start().await;
    Mock::given(path("/bills"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/bills"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(3), 10);
    let resp = client
        .get(&format!("{}/bills", server.uri()))
        .await
        .unwrap();
    assert_eq!(resp.text(), "ok");
    let stats = client.stats();
    assert_eq!((stats.requests, stats.retries), (2, 1));
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(3), 10);
    let started = std::time::Instant::now();
    client.get(&format!("{}/api", server.uri())).await.unwrap();
    // The recorded wait is the provider's, not the (5 ms) backoff.
    assert_eq!(client.stats().waits, vec![Duration::from_secs(1)]);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn gives_up_after_the_cap_with_vendor_down() {
    let server = MockServer::start().await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(3), 10);
    let err = client
        .get(&format!("{}/down", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert!(err.message.contains("503"), "{}", err.message);
    assert!(err.message.contains("4 attempts"), "{}", err.message);
    assert_eq!(client.stats().retries, 3);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_ends_the_run_at_once() {
    let server = MockServer::start().await;
    Mock::given(path("/busy"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(3), 10);
    let err = client
        .get(&format!("{}/busy", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert_eq!(err.retry_after, Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn network_errors_are_retried_then_vendor_down() {
    // A port nothing listens on: bind, note it, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_for(vec![addr.to_string()], fast_retry(2), 10);
    let err = client.get(&format!("http://{addr}/x")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert!(err.message.contains("could not reach"), "{}", err.message);
    assert_eq!(client.stats().requests, 3);
}

#[tokio::test]
async fn the_request_budget_stops_a_runaway_loop() {
    let server = MockServer::start().await;
    Mock::given(path("/page"))
        .respond_with(ResponseTemplate::new(200))
        .expect(5)
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(0), 5);
    for _ in 0..5 {
        client.get(&format!("{}/page", server.uri())).await.unwrap();
    }
    let err = client
        .get(&format!("{}/page", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RequestBudgetExceeded);
}

#[tokio::test]
async fn malformed_json_names_the_url() {
    let server = MockServer::start().await;
    Mock::given(path("/api/bills"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"bills\": [1, 2"))
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(0), 5);
    let resp = client
        .get(&format!("{}/api/bills", server.uri()))
        .await
        .unwrap();
    let err = resp.json::<serde_json::Value>().unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert!(err.message.contains("/api/bills") && err.message.contains("malformed JSON"));
}

#[tokio::test]
async fn cookies_persist_across_requests() {
    let server = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("Set-Cookie", "SID=s3ss10n; Path=/; HttpOnly"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/home"))
        .and(wiremock::matchers::header("cookie", "SID=s3ss10n"))
        .respond_with(ResponseTemplate::new(200).set_body_string("welcome"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(0), 5);
    client
        .post_form(&format!("{}/login", server.uri()), &[("user", "u")])
        .await
        .unwrap();
    let resp = client.get(&format!("{}/home", server.uri())).await.unwrap();
    assert_eq!(resp.text(), "welcome");
}

#[tokio::test]
async fn a_post_is_not_replayed_after_a_500() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(3), 10);
    let err = client
        .post_form(&format!("{}/login", server.uri()), &[("user", "u")])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn a_post_is_retried_after_a_503() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(3), 10);
    client
        .post_form(&format!("{}/login", server.uri()), &[("user", "u")])
        .await
        .unwrap();
    assert_eq!(client.stats().retries, 1);
}
