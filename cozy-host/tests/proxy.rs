//! The egress proxy end to end, on loopback only.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gleaner_cozy_host::proxy::{Contact, EgressProxy, ProxyPolicy};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const BIG: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Deterministic bytes, not a multiple of any chunk size.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A body of `len` pattern bytes in 8191-byte frames, of unknown length
/// (so HTTP/1.1 sends it chunked).
struct Chunks {
    data: Bytes,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.data.len().min(8191);
        let chunk = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

fn chunks(len: usize) -> TestBody {
    Chunks {
        data: Bytes::from(pattern(len)),
    }
    .map_err(|never| match never {})
    .boxed()
}

fn full(s: &'static str) -> TestBody {
    Full::new(Bytes::from_static(s.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}

/// A tiny HTTP origin counting connections and requests.
struct Origin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    _task: JoinHandle<()>,
}

async fn origin_route(req: Request<Incoming>) -> Response<TestBody> {
    let seen = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let echo = [
        ("x-seen-target", req.uri().to_string()),
        ("x-seen-host", seen("host")),
        ("x-seen-proxy-auth", seen("proxy-authorization")),
        ("x-seen-drop-me", seen("x-drop-me")),
        ("x-seen-custom", seen("x-custom")),
    ];
    let mut response = match req.uri().path() {
        "/cookie" => {
            let mut r = Response::new(full("hello"));
            r.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static("session=abc; Path=/; HttpOnly"),
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static("lang=fr; Path=/"),
            );
            r
        }
        "/redirect" => {
            let mut r = Response::new(full(""));
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_static("http://elsewhere.invalid/next?token=x"),
            );
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static("after=login; Path=/"),
            );
            r
        }
        "/big" => {
            let mut r = Response::new(chunks(BIG));
            r.headers_mut().insert(
                header::CONNECTION,
                HeaderValue::from_static("keep-alive, x-origin-private"),
            );
            r.headers_mut()
                .insert("x-origin-private", HeaderValue::from_static("1"));
            r
        }
        "/echo" => Response::new(req.into_body().map_err(Into::into).boxed()),
        _ => {
            let mut r = Response::new(full("not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    for (name, value) in echo {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}

async fn origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let r = Arc::clone(&r);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    r.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, Infallible>(origin_route(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Origin {
        addr,
        connections,
        requests,
        _task: task,
    }
}

/// A TCP echo server counting connections.
async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, count)
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// One keep-alive HTTP/1.1 client connection to the proxy.
async fn client(proxy: &EgressProxy) -> SendRequest<TestBody> {
    let stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(sender: &mut SendRequest<TestBody>, req: Request<TestBody>) -> (Response<()>, Bytes) {
    sender.ready().await.unwrap();
    let response = tokio::time::timeout(TIMEOUT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (Response::from_parts(parts, ()), bytes)
}

/// Reads a response head (up to the blank line) and its Content-Length body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "connection closed inside a response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    (head, String::from_utf8(body).unwrap())
}

async fn connect_request(proxy: &EgressProxy, target: &str) -> (TcpStream, String, String) {
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut stream).await;
    (stream, head, body)
}

fn get(url: &str) -> Request<TestBody> {
    Request::get(url).body(full("")).unwrap()
}

fn contact(host: &str, port: u16, tunnels: u32, requests: u32, refused: u32) -> Contact {
    Contact {
        host: host.into(),
        port,
        tunnels,
        requests,
        refused,
    }
}

fn header<'a>(response: &'a Response<()>, name: &str) -> Vec<&'a str> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn plain_http_is_forwarded_untouched() {
    let origin = origin().await;
    let proxy = EgressProxy::start(ProxyPolicy::default()).await.unwrap();
    let base = format!("http://{}", origin.addr);
    let mut sender = client(&proxy).await;

    // Cookies, Host rewritten, hop-by-hop headers dropped, origin-form.
    let req = Request::get(format!("{base}/cookie?secret=1"))
        .header(header::HOST, "wrong.example")
        .header(header::PROXY_AUTHORIZATION, "Basic Zm9vOmJhcg==")
        .header(header::CONNECTION, "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("x-custom", "kept")
        .body(full(""))
        .unwrap();
    let (response, body) = send(&mut sender, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "set-cookie"),
        ["session=abc; Path=/; HttpOnly", "lang=fr; Path=/"]
    );
    assert_eq!(header(&response, "x-seen-target"), ["/cookie?secret=1"]);
    assert_eq!(header(&response, "x-seen-host"), [origin.addr.to_string()]);
    assert_eq!(header(&response, "x-seen-proxy-auth"), ["-"]);
    assert_eq!(header(&response, "x-seen-drop-me"), ["-"]);
    assert_eq!(header(&response, "x-seen-custom"), ["kept"]);
    assert_eq!(&body[..], b"hello");

    // User information in the URL does not reach Host.
    let url = format!("http://user:pw@{}/cookie", origin.addr);
    let (response, _) = send(&mut sender, get(&url)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-seen-host"), [origin.addr.to_string()]);
    assert_eq!(header(&response, "x-seen-target"), ["/cookie"]);

    // A redirect is returned, not followed.
    let (response, _) = send(&mut sender, get(&format!("{base}/redirect"))).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        header(&response, "location"),
        ["http://elsewhere.invalid/next?token=x"]
    );
    assert_eq!(header(&response, "set-cookie"), ["after=login; Path=/"]);

    // 1 MB streamed (chunked) down, byte-identical; the header the origin's
    // Connection names does not come through.
    let (response, body) = send(&mut sender, get(&format!("{base}/big"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "x-origin-private").is_empty());
    assert_eq!(body.len(), BIG);
    assert!(body[..] == pattern(BIG)[..]);

    // 1 MB chunked up and echoed back.
    let req = Request::post(format!("{base}/echo"))
        .body(chunks(BIG))
        .unwrap();
    let (response, body) = send(&mut sender, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body[..] == pattern(BIG)[..]);

    // A fixed-length body too.
    let req = Request::put(format!("{base}/echo"))
        .header(header::CONTENT_LENGTH, "5")
        .body(full("fixed"))
        .unwrap();
    let (_, body) = send(&mut sender, req).await;
    assert_eq!(&body[..], b"fixed");

    assert_eq!(
        proxy.contacts(),
        [contact("127.0.0.1", origin.addr.port(), 0, 6, 0)]
    );
    assert!(proxy.refused().is_empty());
    assert_eq!(origin.requests.load(Ordering::SeqCst), 6);
    proxy.shutdown().await;
}

#[tokio::test]
async fn connect_tunnels_bytes_both_ways() {
    let (echo, count) = echo_server().await;
    let proxy = EgressProxy::start(ProxyPolicy::default()).await.unwrap();
    let (mut stream, head, _) = connect_request(&proxy, &echo.to_string()).await;
    assert!(
        head.starts_with("HTTP/1.1 200 Connection Established\r\n"),
        "{head}"
    );
    let sent = pattern(200_000);
    let (mut r, mut w) = stream.split();
    let write = async {
        w.write_all(&sent).await.unwrap();
    };
    let mut got = vec![0u8; sent.len()];
    let read = async {
        r.read_exact(&mut got).await.unwrap();
    };
    tokio::time::timeout(TIMEOUT, async { tokio::join!(write, read) })
        .await
        .unwrap();
    assert!(got == sent);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(
        proxy.contacts(),
        [contact("127.0.0.1", echo.port(), 1, 0, 0)]
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn allow_list_refuses_other_hosts() {
    let origin = origin().await;
    let (echo, echo_count) = echo_server().await;
    let proxy = EgressProxy::start(ProxyPolicy {
        allow: Some(vec!["*.example.org".into(), "127.0.0.1:1".into()]),
        always_allow: vec!["localhost:2".into()],
    })
    .await
    .unwrap();

    let target = echo.to_string();
    let (_stream, head, body) = connect_request(&proxy, &target).await;
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-gleaner-refused: {target}\r\n"))
    );
    assert_eq!(
        body,
        format!("Gleaner's proxy refused {target}: the konnector's allow-list does not name it\n")
    );

    let mut sender = client(&proxy).await;
    for _ in 0..2 {
        let (response, body) =
            send(&mut sender, get(&format!("http://{}/cookie", origin.addr))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            header(&response, "x-gleaner-refused"),
            [origin.addr.to_string()]
        );
        assert!(String::from_utf8_lossy(&body).contains(&origin.addr.to_string()));
    }
    // Case is folded in the record.
    let (response, _) = send(&mut sender, get("http://LOCALHOST:3/")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    assert_eq!(echo_count.load(Ordering::SeqCst), 0);
    assert_eq!(origin.connections.load(Ordering::SeqCst), 0);
    let refused = [
        contact("127.0.0.1", origin.addr.port(), 0, 0, 2),
        contact("127.0.0.1", echo.port(), 0, 0, 1),
        contact("localhost", 3, 0, 0, 1),
    ];
    let mut expected = refused.to_vec();
    expected.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    assert_eq!(proxy.refused(), expected);
    assert_eq!(proxy.contacts(), expected);
    proxy.shutdown().await;
}

#[tokio::test]
async fn always_allow_passes_an_allow_list() {
    let origin = origin().await;
    let proxy = EgressProxy::start(ProxyPolicy {
        allow: Some(vec!["api.example.org".into()]),
        always_allow: vec![origin.addr.to_string()],
    })
    .await
    .unwrap();
    let mut sender = client(&proxy).await;
    let (response, _) = send(&mut sender, get(&format!("http://{}/cookie", origin.addr))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(proxy.refused().is_empty());
    proxy.shutdown().await;
}

#[tokio::test]
async fn keep_alive_forwards_every_request_of_a_connection() {
    let origin = origin().await;
    let proxy = EgressProxy::start(ProxyPolicy::default()).await.unwrap();
    let mut sender = client(&proxy).await;
    for _ in 0..2 {
        let (response, body) =
            send(&mut sender, get(&format!("http://{}/cookie", origin.addr))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&body[..], b"hello");
    }
    assert!(!sender.is_closed());
    assert_eq!(origin.requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        proxy.contacts(),
        [contact("127.0.0.1", origin.addr.port(), 0, 2, 0)]
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_tunnels_and_closes_the_port() {
    let (echo, _) = echo_server().await;
    let proxy = EgressProxy::start(ProxyPolicy::default()).await.unwrap();
    let addr = proxy.local_addr();
    let (mut stream, head, _) = connect_request(&proxy, &echo.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");

    tokio::time::timeout(TIMEOUT, proxy.shutdown())
        .await
        .unwrap();

    // The tunnel is gone: EOF or reset, not a hang.
    let read = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drop_aborts_everything() {
    let (echo, _) = echo_server().await;
    let proxy = EgressProxy::start(ProxyPolicy::default()).await.unwrap();
    let addr = proxy.local_addr();
    let (mut stream, head, _) = connect_request(&proxy, &echo.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(proxy);
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Abort is asynchronous: the listener closes soon after.
    let closed = async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, closed).await.unwrap();
}

#[tokio::test]
async fn unreachable_origin_is_bad_gateway() {
    let port = closed_port().await;
    let proxy = EgressProxy::start(ProxyPolicy::default()).await.unwrap();
    let target = format!("127.0.0.1:{port}");

    let (_stream, head, body) = connect_request(&proxy, &target).await;
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head}");
    assert_eq!(body, format!("Gleaner's proxy could not reach {target}\n"));

    let mut sender = client(&proxy).await;
    let (response, body) = send(&mut sender, get(&format!("http://{target}/x"))).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&body).contains(&target));
    assert_eq!(proxy.contacts(), [contact("127.0.0.1", port, 1, 1, 0)]);
    proxy.shutdown().await;
}

#[tokio::test]
async fn origin_form_requests_are_bad_requests() {
    let proxy = EgressProxy::start(ProxyPolicy::default()).await.unwrap();
    let mut sender = client(&proxy).await;
    let req = Request::builder()
        .method(Method::GET)
        .uri("/path")
        .header(header::HOST, "example.org")
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .unwrap();
    let (response, _) = send(&mut sender, req).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(proxy.contacts().is_empty());
    proxy.shutdown().await;
}
