//! Record and replay: exchanges recorded from wiremock are scrubbed before
//! they are written, replay offline into the same responses with other
//! credentials, and a request the cassette lacks fails with a diff.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use gleaner_framework::cassette::{Cassette, Recorder, ReplayTransport, Scrubber};
use gleaner_framework::http::{HttpClient, HttpConfig, ReqwestTransport, RetryPolicy, Transport};
use gleaner_framework::{ErrorCode, Secret};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LOGIN: &str = "jdupont-8842";
const PASSWORD: &str = "Tr0ub4dor&3 horse";
const COOKIE: &str = "s3ss10n-7f9a2c41";
const ACCESS: &str = "eyJhbGciOi.access-token-value-123";
const REFRESH: &str = "refresh-token-value-456";
const IBAN: &str = "FR76 3000 6000 0112 3456 7890 189";
const ACCOUNT_NUMBER: &str = "00012345678901";

fn config(server: &MockServer) -> HttpConfig {
    HttpConfig {
        allowed_hosts: vec![server.uri().trim_start_matches("http://").to_owned()],
        retry: RetryPolicy {
            max_retries: 0,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_retry_after: Duration::from_secs(1),
        },
        ..HttpConfig::default()
    }
}

fn run_secrets(password: &str) -> BTreeMap<String, Secret> {
    BTreeMap::from([("password".to_owned(), Secret::new(password))])
}

fn run_fields() -> BTreeMap<String, String> {
    BTreeMap::from([("login".to_owned(), LOGIN.to_owned())])
}

async fn provider() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header(
                    "set-cookie",
                    format!("SID={COOKIE}; Path=/; HttpOnly").as_str(),
                )
                .insert_header("location", "/home"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/home"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string(format!("<p>Hello {LOGIN}</p><p>Your bills</p>")),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": ACCESS, "refresh_token": REFRESH, "token_type": "Bearer",
            "expires_in": 3600
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/accounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "accounts": [{"iban": IBAN, "number": ACCOUNT_NUMBER, "balance": "12.50"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/bills"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "bills": [{"id": "b1", "amount": "42.00", "date": "2026-10-01"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/b1.pdf"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/pdf")
                .set_body_bytes(b"%PDF-1.4\n\xff\xfe binary".to_vec()),
        )
        .mount(&server)
        .await;
    server
}

/// What a konnector does: log in, get a token, call the API, download.
/// Returns each response as (status, final path, body).
async fn session(http: &HttpClient, base: &str, password: &str) -> Vec<(u16, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push = |r: gleaner_framework::http::Response| {
        out.push((r.status.as_u16(), r.url.path().to_owned(), r.body.to_vec()));
    };
    let r = http
        .post(&format!("{base}/login"))
        .form(&[("login", LOGIN), ("password", password)])
        .send()
        .await
        .unwrap();
    push(r);
    let r = http
        .post(&format!("{base}/oauth/token"))
        .form(&[("grant_type", "password"), ("username", LOGIN)])
        .send()
        .await
        .unwrap();
    let token: serde_json::Value = r.json().unwrap();
    push(r);
    let token = Secret::new(token["access_token"].as_str().unwrap());
    for p in ["/api/accounts", "/api/bills?page=1&size=20"] {
        let r = http
            .get(&format!("{base}{p}"))
            .bearer(&token)
            .send()
            .await
            .unwrap();
        push(r);
    }
    let r = http.get(&format!("{base}/files/b1.pdf")).await.unwrap();
    push(r);
    out
}

async fn record(server: &MockServer) -> (Vec<(u16, String, Vec<u8>)>, Cassette, String) {
    let recorder = Recorder::new();
    let inner: Arc<dyn Transport> = Arc::new(ReqwestTransport::new(Default::default()).unwrap());
    let http = HttpClient::with_transport(config(server), recorder.wrap(inner));
    let live = session(&http, &server.uri(), PASSWORD).await;
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
    let mut scrubber = Scrubber::for_run(&run_secrets(PASSWORD), &run_fields());
    let cassette = recorder.cassette("demo", at, &mut scrubber);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.json");
    cassette.save(&file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let loaded = Cassette::load(&file).unwrap();
    assert_eq!(loaded, cassette);
    (live, loaded, text)
}

#[tokio::test]
async fn a_recorded_cassette_holds_no_secret() {
    let server = provider().await;
    let (_, cassette, text) = record(&server).await;
    assert_eq!(cassette.exchanges.len(), 6, "302 hop included");
    let iban_compact: String = IBAN.chars().filter(|c| *c != ' ').collect();
    for secret in [
        LOGIN,
        PASSWORD,
        "Tr0ub4dor%263",
        COOKIE,
        ACCESS,
        REFRESH,
        IBAN,
        &iban_compact,
        ACCOUNT_NUMBER,
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` is in the cassette:\n{text}"
        );
    }
    for placeholder in [
        "__SECRET_password__",
        "__FIELD_login__",
        "SID=__COOKIE_1__",
        r#"access_token\":\"__TOKEN_"#,
        "Bearer __TOKEN_",
        "__IBAN_1__",
        "__ACCOUNT_1__",
    ] {
        assert!(text.contains(placeholder), "no `{placeholder}` in:\n{text}");
    }
    assert_eq!(
        cassette.recorded_at.to_rfc3339(),
        "2026-11-30T08:00:00+00:00"
    );
    // The PDF is kept byte for byte.
    assert!(text.contains("\"base64\""), "{text}");
}

#[tokio::test]
async fn a_cassette_replays_offline_with_other_credentials() {
    let server = provider().await;
    let (live, cassette, _) = record(&server).await;
    let base = server.uri();
    // Offline: the provider is gone.
    drop(server);
    let replay = Arc::new(ReplayTransport::new(cassette.clone()));
    replay.set_scrubber(Scrubber::for_run(
        &run_secrets("another password"),
        &run_fields(),
    ));
    let dummy = MockServer::start().await;
    let mut cfg = config(&dummy);
    cfg.allowed_hosts = vec![base.trim_start_matches("http://").to_owned()];
    let http = HttpClient::with_transport(cfg, Arc::clone(&replay) as Arc<dyn Transport>);
    let replayed = session(&http, &base, "another password").await;
    assert_eq!(replayed.len(), live.len());
    for (i, (l, r)) in live.iter().zip(&replayed).enumerate() {
        assert_eq!((l.0, &l.1), (r.0, &r.1), "response {i}");
        let scrubbed_expected = match &cassette
            .exchanges
            .iter()
            .filter(|e| e.response.status != 302)
            .nth(i)
            .unwrap()
            .response
            .body
        {
            Some(b) => b.to_bytes().to_vec(),
            None => Vec::new(),
        };
        assert_eq!(r.2, scrubbed_expected, "response {i} is the recorded one");
    }
    // Responses without secrets are identical to the live ones.
    assert_eq!(live[3].2, replayed[3].2, "the bills");
    assert_eq!(live[4].2, replayed[4].2, "the PDF");
    assert!(replay.unused().is_empty(), "{:?}", replay.unused());
    // The cookie came back from the cassette, as its placeholder.
    assert!(http.export_cookies().unwrap().contains("__COOKIE_1__"));
    assert_eq!(dummy.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn a_request_missing_from_the_cassette_fails_with_a_diff() {
    let server = provider().await;
    let (_, cassette, _) = record(&server).await;
    let replay = Arc::new(ReplayTransport::new(cassette));
    replay.set_scrubber(Scrubber::for_run(&run_secrets(PASSWORD), &run_fields()));
    let http =
        HttpClient::with_transport(config(&server), Arc::clone(&replay) as Arc<dyn Transport>);
    let base = server.uri();
    let err = http
        .post(&format!("{base}/login"))
        .form(&[("login", "someone-else"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownError);
    let m = &err.message;
    assert!(m.contains("no exchange left for POST /login"), "{m}");
    assert!(m.contains("nearest recorded request is exchange #0"), "{m}");
    assert!(m.contains("- login=__FIELD_login__"), "{m}");
    assert!(m.contains("+ login=someone-else"), "{m}");
    assert!(m.contains("  password=__SECRET_password__"), "{m}");
    assert!(!m.contains(PASSWORD), "{m}");
    // Nothing was used, everything is reported unused.
    let unused = replay.unused();
    assert_eq!(unused.len(), 6, "{unused:?}");
    assert_eq!(unused[0], "#0 POST /login");
    assert!(
        unused
            .iter()
            .any(|u| u == "#4 GET /api/bills?page=1&size=20"),
        "{unused:?}"
    );
    // A used exchange is not used twice.
    http.get(&format!("{base}/files/b1.pdf")).await.unwrap();
    let err = http.get(&format!("{base}/files/b1.pdf")).await.unwrap_err();
    assert!(err.message.contains("(already used)"), "{}", err.message);
    assert_eq!(replay.unused().len(), 5);
}

/// OAuth token calls go through the seam: recorded, client secret and
/// tokens scrubbed.
#[tokio::test]
async fn an_oauth_token_call_is_recorded_and_scrubbed() {
    use gleaner_framework::manifest::OAuthGrant;
    use gleaner_framework::oauth::{OAuthConfig, client};
    use oauth2::TokenResponse as _;
    let server = provider().await;
    let recorder = Recorder::new();
    let http = client::OAuthHttp(recorder.wrap(client::token_transport().unwrap()));
    let config = OAuthConfig {
        grant: OAuthGrant::ClientCredentials,
        authorize_url: None,
        token_url: url::Url::parse(&format!("{}/oauth/token", server.uri())).unwrap(),
        client_id: "gleaner-client".into(),
        client_secret: Some(Secret::new("client-s3cret-value")),
        scopes: vec![],
        pkce: false,
        authorize_params: BTreeMap::new(),
        callback_fields: vec![],
    };
    let token = client::token_client(&config)
        .exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(token.access_token().secret(), ACCESS);
    assert_eq!(recorder.len(), 1);
    let mut scrubber = Scrubber::for_run(
        &BTreeMap::from([(
            "client_secret".to_owned(),
            Secret::new("client-s3cret-value"),
        )]),
        &BTreeMap::new(),
    );
    let cassette = recorder.cassette("demo", Utc::now(), &mut scrubber);
    let text = serde_json::to_string(&cassette).unwrap();
    assert!(text.contains("/oauth/token"), "{text}");
    assert!(text.contains("grant_type=client_credentials"), "{text}");
    for secret in ["client-s3cret-value", ACCESS, REFRESH] {
        assert!(!text.contains(secret), "`{secret}` in {text}");
    }
    assert!(text.contains("Basic __TOKEN_1__"), "{text}");
}
