//! The request builder, redirects and cookies above the transport seam,
//! and typed JSON errors, against wiremock.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use gleaner_framework::http::{HttpClient, HttpConfig, Method, RetryPolicy};
use gleaner_framework::{ErrorCode, Secret};
use serde::Deserialize;
use wiremock::matchers::{body_json, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn host_of(server: &MockServer) -> String {
    server.uri().trim_start_matches("http://").to_owned()
}

fn client_for(hosts: Vec<String>) -> HttpClient {
    HttpClient::new(HttpConfig {
        allowed_hosts: hosts,
        request_budget: 50,
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_retry_after: Duration::from_secs(1),
        },
        ..HttpConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn every_method_with_headers_query_and_bodies() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/consents/42"))
        .and(header("x-request-id", "6f1c"))
        .and(header("consent-id", "c-1"))
        .and(query_param("lang", "fr"))
        .and(query_param("q", "a b&c"))
        .and(header("content-type", "application/json"))
        .and(body_json(
            serde_json::json!({"access": "allAccounts", "n": 3}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_string("put"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/p"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("a=1&b=x+y"))
        .respond_with(ResponseTemplate::new(200).set_body_string("patch"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bytes"))
        .and(header("content-type", "application/octet-stream"))
        .and(body_string("\u{1}\u{2}raw"))
        .respond_with(ResponseTemplate::new(200).set_body_string("post"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/d"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let http = client_for(vec![host_of(&server)]);
    let base = server.uri();
    let r = http
        .put(&format!("{base}/consents/42"))
        .header("X-Request-ID", "6f1c")
        .header("Consent-ID", "c-1")
        .query(&[("lang", "fr"), ("q", "a b&c")])
        .json(&serde_json::json!({"access": "allAccounts", "n": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (201, "put"));
    let r = http
        .patch(&format!("{base}/p"))
        .form(&[("a", "1"), ("b", "x y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text(), "patch");
    let r = http
        .request(Method::POST, &format!("{base}/bytes"))
        .body(b"\x01\x02raw".to_vec(), "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text(), "post");
    // A builder awaited directly is sent.
    let r = http.delete(&format!("{base}/d")).await.unwrap();
    assert_eq!(r.status.as_u16(), 204);
}

#[tokio::test]
async fn bearer_and_basic_credentials() {
    let server = MockServer::start().await;
    Mock::given(path("/bearer"))
        .and(header("authorization", "Bearer t0k3n-abc"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    // base64("alice:s3cr3t!") and base64("bob:")
    Mock::given(path("/basic"))
        .and(header("authorization", "Basic YWxpY2U6czNjcjN0IQ=="))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/basic-nopass"))
        .and(header("authorization", "Basic Ym9iOg=="))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let http = client_for(vec![host_of(&server)]);
    let base = server.uri();
    let token = Secret::new("t0k3n-abc");
    let pw = Secret::new("s3cr3t!");
    for r in [
        http.get(&format!("{base}/bearer"))
            .bearer(&token)
            .send()
            .await,
        http.get(&format!("{base}/basic"))
            .basic("alice", Some(&pw))
            .send()
            .await,
        http.get(&format!("{base}/basic-nopass"))
            .basic("bob", None)
            .send()
            .await,
    ] {
        assert_eq!(r.unwrap().status.as_u16(), 200);
    }
    // The encoded credentials are masked in logs.
    assert_eq!(
        gleaner_framework::redact::scrub("h: YWxpY2U6czNjcjN0IQ=="),
        "h: [REDACTED]"
    );
}

#[tokio::test]
async fn a_bad_header_name_is_an_error_not_a_panic() {
    let http = client_for(vec!["example.invalid".into()]);
    let err = http
        .get("http://example.invalid/")
        .header("bad header", "x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownError);
    assert!(err.message.contains("bad header"), "{}", err.message);
    assert_eq!(http.stats().requests, 0);
}

/// Redirects are followed by the client: a cookie set on the 302 hop is
/// kept and sent to the next hop; a POST becomes a GET after a 302.
#[tokio::test]
async fn cookies_set_on_a_redirect_hop_are_kept() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("set-cookie", "SID=hop-cookie-1; Path=/")
                .insert_header("location", "/account"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/account"))
        .and(header("cookie", "SID=hop-cookie-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("welcome"))
        .expect(2)
        .mount(&server)
        .await;
    let http = client_for(vec![host_of(&server)]);
    let r = http
        .post_form(&format!("{}/login", server.uri()), &[("u", "x")])
        .await
        .unwrap();
    assert_eq!(r.text(), "welcome");
    assert_eq!(r.url.path(), "/account");
    // Two hops, two requests.
    assert_eq!(http.stats().requests, 2);
    // The jar keeps it for later requests.
    let r = http
        .get(&format!("{}/account", server.uri()))
        .await
        .unwrap();
    assert_eq!(r.text(), "welcome");
    assert!(http.export_cookies().unwrap().contains("hop-cookie-1"));
}

#[tokio::test]
async fn a_redirect_to_an_undeclared_host_is_refused_with_nothing_sent_there() {
    let allowed = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(path("/go"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", format!("{}/x", other.uri())),
        )
        .mount(&allowed)
        .await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&other)
        .await;
    let http = client_for(vec![host_of(&allowed)]);
    let err = http
        .get(&format!("{}/go?token=abc", allowed.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::HostNotAllowed);
    assert!(
        err.message
            .contains("redirect to a host outside the manifest"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("token=abc"), "{}", err.message);
}

#[tokio::test]
async fn a_redirect_loop_stops_after_ten_hops() {
    let server = MockServer::start().await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .mount(&server)
        .await;
    let http = client_for(vec![host_of(&server)]);
    let err = http
        .get(&format!("{}/loop", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::HostNotAllowed);
    assert!(
        err.message.contains("too many redirects"),
        "{}",
        err.message
    );
    assert_eq!(http.stats().requests, 11);
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Page {
    data: Data,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Data {
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Item {
    amount: f64,
}

#[tokio::test]
async fn json_that_does_not_fit_names_the_path_and_the_url() {
    let server = MockServer::start().await;
    let items: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            if i == 3 {
                serde_json::json!({"amount": "12,50"})
            } else {
                serde_json::json!({"amount": i})
            }
        })
        .collect();
    Mock::given(path("/api/bills"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": {"items": items}})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/cut"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"data\": {\"ite"))
        .mount(&server)
        .await;
    let http = client_for(vec![host_of(&server)]);
    let r = http
        .get(&format!("{}/api/bills?session=xyz", server.uri()))
        .await
        .unwrap();
    let err = r.json::<Page>().unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaChanged, "{}", err.message);
    assert_eq!(err.code.as_str(), "UNKNOWN_ERROR.SCHEMA_CHANGED");
    assert!(!err.code.is_retryable());
    assert!(
        err.message.contains("data.items[3].amount"),
        "{}",
        err.message
    );
    assert!(err.message.contains("/api/bills"), "{}", err.message);
    assert!(!err.message.contains("session=xyz"), "{}", err.message);
    assert!(err.message.contains("Page"), "{}", err.message);
    let r = http
        .get(&format!("{}/api/cut", server.uri()))
        .await
        .unwrap();
    let err = r.json::<Page>().unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert!(err.message.contains("malformed JSON"), "{}", err.message);
}
