//! `TwoFactorKind::Redirect` and `LoopbackLinks`: a sandbox's link on
//! loopback is followed with one GET; anything else goes to the inner
//! channel.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use gleaner_framework::twofa::{LoopbackLinks, Unattended};
use gleaner_framework::{ErrorCode, TwoFactorChannel, TwoFactorKind, TwoFactorRequest};

fn request(kind: TwoFactorKind, hint: &str) -> TwoFactorRequest {
    TwoFactorRequest {
        account_id: "a".into(),
        account_label: "a".into(),
        konnector: "k".into(),
        kind,
        hint: Some(hint.into()),
        attempt: 1,
    }
}

#[test]
fn only_plain_http_loopback_links_are_followed() {
    assert!(LoopbackLinks::is_loopback_link(
        "http://127.0.0.1:4010/psd2/start/1/X"
    ));
    for other in [
        "https://127.0.0.1:4010/x",
        "http://127.0.0.1/x",
        "http://localhost:4010/x",
        "http://10.0.0.1:80/x",
        "https://ob.gocardless.com/psd2/start/1/X",
        "not a url",
    ] {
        assert!(!LoopbackLinks::is_loopback_link(other), "{other}");
    }
    assert_eq!(
        TwoFactorKind::parse("redirect"),
        Some(TwoFactorKind::Redirect)
    );
    assert_eq!(TwoFactorKind::Redirect.as_str(), "redirect");
}

#[tokio::test]
async fn a_loopback_link_is_fetched_and_the_rest_goes_inside() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = Router::new().route(
        "/consent",
        get(move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "approved"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/consent", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let channel = LoopbackLinks::new(Arc::new(Unattended));
    channel
        .ask(&request(TwoFactorKind::Redirect, &url))
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    for r in [
        request(TwoFactorKind::Sms, &url),
        request(TwoFactorKind::Redirect, "https://bank.example/consent"),
    ] {
        let code = channel.ask(&r).await.err().map(|e| e.code);
        assert_eq!(code, Some(ErrorCode::UserActionNeededTwofaExpired));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // A link that fails is the person's problem, said as such.
    let dead = url.replace("/consent", "/nothing-here");
    let code = channel
        .ask(&request(TwoFactorKind::Redirect, &dead))
        .await
        .err()
        .map(|e| e.code);
    assert_eq!(code, Some(ErrorCode::UserActionNeededTwofaExpired));
}
