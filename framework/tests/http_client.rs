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

/// Issue 8: a server that never answers ends the request with VENDOR_DOWN
/// naming the host and the timeout (a short one here, no real long wait).
#[tokio::test]
async fn a_server_that_does_not_answer_is_vendor_down_naming_the_timeout() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let client = HttpClient::new(HttpConfig {
        allowed_hosts: vec![host_of(&server)],
        retry: fast_retry(1),
        request_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    })
    .unwrap();
    let err = client
        .get(&format!("{}/invoices", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert!(err.message.contains(&host_of(&server)), "{}", err.message);
    assert!(err.message.contains("/invoices"), "{}", err.message);
    assert!(
        err.message.contains("200 ms (the request timeout)"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("gave up after 2 attempts"),
        "{}",
        err.message
    );
    // A POST that timed out may have been processed: not retried.
    let err = client
        .post_form(&format!("{}/login", server.uri()), &[("a", "b")])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert!(err.message.contains("not retried"), "{}", err.message);
    assert_eq!(client.stats().requests, 3);
}

/// Issue 8: the activity hook hears which request the client waits on,
/// then that the wait is over.
#[tokio::test]
async fn the_activity_hook_names_the_request_waited_on() {
    use std::sync::{Arc, Mutex};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/invoices"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = client_for(vec![host_of(&server)], fast_retry(0), 10);
    let heard: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let sink = Arc::clone(&heard);
    client.set_activity(Arc::new(move |a| {
        sink.lock().unwrap().push(a.map(ToString::to_string));
    }));
    client
        .get(&format!("{}/invoices?token=abc", server.uri()))
        .await
        .unwrap();
    let heard = heard.lock().unwrap().clone();
    assert_eq!(
        heard,
        vec![
            Some(format!("waiting for {} (GET /invoices)", host_of(&server))),
            None
        ]
    );
}

/// Issue 8: a stored endpoint with another scheme fails once, not retried
/// five times as VENDOR_DOWN; literal link-local and metadata addresses
/// are refused before anything is sent, even when allow-listed.
#[tokio::test]
async fn other_schemes_and_metadata_addresses_are_refused_once() {
    let client = client_for(
        vec![
            "127.0.0.1:21".into(),
            "169.254.169.254".into(),
            "[fe80::1]".into(),
            "metadata.google.internal".into(),
        ],
        fast_retry(4),
        10,
    );
    for url in [
        "ftp://127.0.0.1:21/file",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let err = client.get(url).await.unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::HostNotAllowed,
            "{url}: {}",
            err.message
        );
        assert!(!err.code.is_retryable());
    }
    let stats = client.stats();
    assert_eq!((stats.requests, stats.retries), (0, 0));
}

/// Issue 8: a redirect to a metadata address is refused like one to a host
/// outside the manifest.
#[tokio::test]
async fn a_redirect_to_a_metadata_address_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "http://169.254.169.254/latest/meta-data/"),
        )
        .mount(&server)
        .await;
    let client = client_for(
        vec![host_of(&server), "169.254.169.254".into()],
        fast_retry(0),
        10,
    );
    let err = client.get(&server.uri()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::HostNotAllowed, "{}", err.message);
    assert!(err.message.contains("never contacts"), "{}", err.message);
}
