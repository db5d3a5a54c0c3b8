//! The HTTP client verifies TLS certificates: a self-signed certificate on
//! loopback is refused at once (no retry), with a message that says so.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gleaner_framework::ErrorCode;
use gleaner_framework::http::{HttpClient, HttpConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CERT: &[u8] = include_bytes!("../../fixtures/tls/self-signed.crt");
const KEY: &[u8] = include_bytes!("../../fixtures/tls/self-signed.key");

#[tokio::test]
async fn a_self_signed_certificate_is_refused_without_retries() {
    let cert = CertificateDer::from_pem_slice(CERT).unwrap();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&handshakes);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The client aborts the handshake: this fails, as it should.
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    let client = HttpClient::new(HttpConfig {
        allowed_hosts: vec![format!("localhost:{port}")],
        ..HttpConfig::default()
    })
    .unwrap();
    let err = client
        .get(&format!("https://localhost:{port}/account/"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown);
    assert!(err.message.contains("certificate"), "{}", err.message);
    assert!(err.message.contains("was refused"), "{}", err.message);
    assert_eq!(
        handshakes.load(Ordering::SeqCst),
        1,
        "a refused certificate is not retried"
    );
}
