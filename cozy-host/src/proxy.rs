//! The egress proxy a konnector run talks through.
//!
//! A Node konnector runs as a child process with `HTTP_PROXY`/`HTTPS_PROXY`
//! pointing at an [`EgressProxy`] on loopback. The proxy records every host
//! the run contacts ([`Contact`]) and, when the installed konnector names an
//! allow-list ([`ProxyPolicy::allow`]), refuses every other host with
//! `403 Forbidden` and an `X-Gleaner-Refused: HOST:PORT` header.
//!
//! - `CONNECT host:port` (HTTPS) is answered `200 Connection Established` and
//!   spliced byte for byte: TLS is never intercepted, so the proxy sees the
//!   host and port, nothing else.
//! - Absolute-form plain HTTP (`GET http://host/path HTTP/1.1`) is forwarded
//!   in origin-form with hop-by-hop headers removed; redirects are returned
//!   as they are, bodies are streamed both ways.
//! - Anything else is `400 Bad Request`.
//!
//! Nothing of a request but its host and port is logged: paths, query
//! strings, headers and bodies carry the konnector's secrets.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

/// How long the proxy waits for a TCP connection to a target host.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The header a refusal carries, naming the refused `HOST:PORT`.
pub const REFUSED_HEADER: &str = "x-gleaner-refused";

/// Headers that concern one hop only and are never forwarded (RFC 9110
/// §7.6.1), besides those the `Connection` header names.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Which hosts a run may reach through the proxy.
///
/// Entries are `host` (any port) or `host:port` (an IPv6 literal is written
/// in brackets: `[::1]:8080`), compared case-insensitively; `*.example.org`
/// matches every subdomain of `example.org` at any depth, not `example.org`
/// itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyPolicy {
    /// The konnector's allow-list; `None` records every contact and refuses
    /// none.
    pub allow: Option<Vec<String>>,
    /// Hosts allowed whatever the allow-list says (Gleaner's own API, for
    /// one), in the same syntax.
    pub always_allow: Vec<String>,
}

/// One host as the proxy saw it during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// The host, lowercased, as the konnector named it (a name or an IP
    /// literal; IPv6 in brackets).
    pub host: String,
    /// The port (443 for a `CONNECT` without one, 80 for `http://`).
    pub port: u16,
    /// Allowed `CONNECT` requests (HTTPS tunnels), including those whose
    /// target could not be reached.
    pub tunnels: u32,
    /// Allowed plain HTTP requests, including those whose origin failed.
    pub requests: u32,
    /// Requests refused because the allow-list does not name the host.
    pub refused: u32,
}

/// Whether `policy` lets a run reach `host:port` (pure; `host` may carry
/// IPv6 brackets and any case).
pub fn host_allowed(policy: &ProxyPolicy, host: &str, port: u16) -> bool {
    let host = normalize_host(host);
    let matches = |entries: &[String]| entries.iter().any(|e| entry_matches(e, &host, port));
    match &policy.allow {
        None => true,
        Some(allow) => matches(allow) || matches(&policy.always_allow),
    }
}

/// Lowercased, without a trailing root dot.
fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn entry_matches(entry: &str, host: &str, port: u16) -> bool {
    let entry = entry.trim();
    let (pattern, entry_port) = match entry.rsplit_once(':') {
        // "[::1]" alone has a colon inside the brackets but no port.
        Some((h, p)) if !p.contains(']') => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => return false,
        },
        _ => (entry, None),
    };
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    let pattern = normalize_host(pattern);
    match pattern.strip_prefix("*.") {
        Some(domain) => {
            !domain.is_empty()
                && host.len() > domain.len() + 1
                && host.ends_with(domain)
                && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        }
        None => !pattern.is_empty() && pattern == host,
    }
}

/// What a contact was, for the counters and the log.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Tunnel,
    Request,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;
type Tunnel = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Where a connection's `CONNECT` leaves its tunnel for the connection's task.
type TunnelSlot = Mutex<Option<oneshot::Sender<Tunnel>>>;

/// What every connection of one proxy shares.
struct Shared {
    policy: ProxyPolicy,
    contacts: Mutex<BTreeMap<(String, u16), Contact>>,
    client: Client<HttpConnector, Incoming>,
}

impl Shared {
    fn contacts(&self) -> MutexGuard<'_, BTreeMap<(String, u16), Contact>> {
        self.contacts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a contact and tells whether it is allowed.
    fn admit(&self, host: &str, port: u16, kind: Kind) -> bool {
        let host = normalize_host(host);
        let allowed = host_allowed(&self.policy, &host, port);
        let mut contacts = self.contacts();
        let contact = contacts
            .entry((host.clone(), port))
            .or_insert_with(|| Contact {
                host: host.clone(),
                port,
                ..Contact::default()
            });
        let counter = match (allowed, kind) {
            (false, _) => &mut contact.refused,
            (true, Kind::Tunnel) => &mut contact.tunnels,
            (true, Kind::Request) => &mut contact.requests,
        };
        *counter = counter.saturating_add(1);
        drop(contacts);
        debug!(%host, port, kind = ?kind, allowed, "egress contact");
        if !allowed {
            warn!(%host, port, kind = ?kind, "egress refused: not in the konnector's allow-list");
        }
        allowed
    }
}

/// A recording, optionally filtering, HTTP proxy on `127.0.0.1` for one
/// konnector run. Dropping it aborts every task it started, as
/// [`EgressProxy::shutdown`] does (without waiting for them).
pub struct EgressProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EgressProxy {
    /// Binds `127.0.0.1:0` and starts serving in a spawned task (so it must
    /// be called inside a Tokio runtime).
    pub async fn start(policy: ProxyPolicy) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .set_host(false)
            .build(connector);
        let shared = Arc::new(Shared {
            policy,
            contacts: Mutex::new(BTreeMap::new()),
            client,
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The proxy's address, for the run's environment: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every host contacted so far, allowed or refused, sorted by host then
    /// port.
    pub fn contacts(&self) -> Vec<Contact> {
        self.shared.contacts().values().cloned().collect()
    }

    /// The contacts with at least one refusal, sorted by host then port.
    pub fn refused(&self) -> Vec<Contact> {
        let mut contacts = self.contacts();
        contacts.retain(|c| c.refused > 0);
        contacts
    }

    /// Stops accepting, aborts every open connection and tunnel, and waits
    /// for them to end; the port is closed when this returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // The loop may already be gone (it ends if accepting fails).
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
            && err.is_panic()
        {
            warn!("egress proxy task panicked");
        }
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Dropping the loop's JoinSet aborts the connections' tasks.
            task.abort();
        }
    }
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off, go on.
                    warn!(error = %err, "egress proxy could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves one client connection: requests until it closes, then, if the
/// last one was a `CONNECT`, the tunnel it opened.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (tunnel_tx, mut tunnel_rx) = oneshot::channel::<Tunnel>();
    let tunnel_tx = Arc::new(Mutex::new(Some(tunnel_tx)));
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let tunnel_tx = Arc::clone(&tunnel_tx);
        async move { Ok::<_, Infallible>(handle(req, &shared, &tunnel_tx).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(err) = conn.await {
        debug!(error = %err, "egress proxy client connection ended with an error");
    }
    // The connection has handed its socket over to the upgrade, if any.
    if let Ok(tunnel) = tunnel_rx.try_recv() {
        tunnel.await;
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: &Shared,
    tunnel_tx: &TunnelSlot,
) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        return connect(req, shared, tunnel_tx).await;
    }
    let uri = req.uri();
    if uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http"))
        && uri.host().is_some()
    {
        return forward(req, shared).await;
    }
    let line = "Gleaner's proxy forwards CONNECT host:port and absolute http:// URLs only";
    text(StatusCode::BAD_REQUEST, line.into())
}

/// `CONNECT host:port`: check, connect, answer 200, and hand the tunnel to
/// the connection's task.
async fn connect(
    mut req: Request<Incoming>,
    shared: &Shared,
    tunnel_tx: &TunnelSlot,
) -> Response<ProxyBody> {
    let Some(authority) = req.uri().authority().cloned() else {
        return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port".into());
    };
    let host = authority.host().to_owned();
    let port = authority.port_u16().unwrap_or(443);
    let name = format!("{}:{port}", normalize_host(&host));
    if !shared.admit(&host, port, Kind::Tunnel) {
        return refusal(&name);
    }
    let connect_host = host.trim_start_matches('[').trim_end_matches(']');
    let connecting =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((connect_host, port)));
    let timed_out = |_| Err(std::io::ErrorKind::TimedOut.into());
    let target = match connecting.await.unwrap_or_else(timed_out) {
        Ok(target) => target,
        Err(err) => {
            debug!(host = %name, error = %err, "egress tunnel target unreachable");
            return bad_gateway(&name);
        }
    };
    let _ = target.set_nodelay(true);
    let upgrade = hyper::upgrade::on(&mut req);
    let tunnel_name = name.clone();
    let tunnel: Tunnel = Box::pin(async move {
        let mut target = target;
        match upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                match tokio::io::copy_bidirectional(&mut client, &mut target).await {
                    Ok((up, down)) => debug!(host = %tunnel_name, up, down, "egress tunnel closed"),
                    Err(err) => {
                        debug!(host = %tunnel_name, error = %err, "egress tunnel ended with an error")
                    }
                }
            }
            Err(err) => debug!(host = %tunnel_name, error = %err, "egress tunnel upgrade failed"),
        }
    });
    let sender = tunnel_tx
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match sender.map(|sender| sender.send(tunnel)) {
        Some(Ok(())) => {
            let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
            response
                .extensions_mut()
                .insert(ReasonPhrase::from_static(b"Connection Established"));
            response
        }
        _ => text(StatusCode::BAD_REQUEST, "one CONNECT per connection".into()),
    }
}

/// An absolute-form plain HTTP request: check, then forward in origin-form.
async fn forward(mut req: Request<Incoming>, shared: &Shared) -> Response<ProxyBody> {
    let Some(authority) = req.uri().authority().cloned() else {
        return text(StatusCode::BAD_REQUEST, "no host in the URL".into());
    };
    let host = authority.host().to_owned();
    let port = authority.port_u16().unwrap_or(80);
    let name = format!("{}:{port}", normalize_host(&host));
    if !shared.admit(&host, port, Kind::Request) {
        return refusal(&name);
    }
    // The client sends the absolute URI in origin-form; Host is the URI's
    // authority without user information (RFC 9112 §3.2.2).
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, hp)| hp);
    strip_hop_by_hop(req.headers_mut());
    if let Ok(value) = HeaderValue::from_str(host_port) {
        req.headers_mut().insert(header::HOST, value);
    }
    match shared.client.request(req).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(err) => {
            debug!(host = %name, error = %err, "egress origin failed");
            bad_gateway(&name)
        }
    }
}

/// Removes the headers `Connection` names, then the fixed hop-by-hop ones.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn refusal(name: &str) -> Response<ProxyBody> {
    let mut response = text(
        StatusCode::FORBIDDEN,
        format!("Gleaner's proxy refused {name}: the konnector's allow-list does not name it"),
    );
    if let Ok(value) = HeaderValue::from_str(name) {
        response.headers_mut().insert(REFUSED_HEADER, value);
    }
    response
}

fn bad_gateway(name: &str) -> Response<ProxyBody> {
    text(
        StatusCode::BAD_GATEWAY,
        format!("Gleaner's proxy could not reach {name}"),
    )
}

/// A one-line `text/plain` answer from the proxy itself.
fn text(status: StatusCode, line: String) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(line + "\n"))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], always: &[&str]) -> ProxyPolicy {
        ProxyPolicy {
            allow: Some(allow.iter().map(|s| s.to_string()).collect()),
            always_allow: always.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn none_allows_everything() {
        let p = ProxyPolicy::default();
        assert!(host_allowed(&p, "anything.example", 1));
        assert!(host_allowed(&p, "[::1]", 443));
    }

    #[test]
    fn exact_host_any_port_and_case() {
        let p = policy(&["API.Example.org"], &[]);
        assert!(host_allowed(&p, "api.example.org", 443));
        assert!(host_allowed(&p, "Api.EXAMPLE.org", 80));
        assert!(host_allowed(&p, "api.example.org.", 80));
        assert!(!host_allowed(&p, "example.org", 443));
        assert!(!host_allowed(&p, "x.api.example.org", 443));
        assert!(!host_allowed(&p, "api.example.org.evil", 443));
    }

    #[test]
    fn host_and_port() {
        let p = policy(&["api.example.org:8443", "[::1]:8080", "[::2]"], &[]);
        assert!(host_allowed(&p, "api.example.org", 8443));
        assert!(!host_allowed(&p, "api.example.org", 443));
        assert!(host_allowed(&p, "[::1]", 8080));
        assert!(!host_allowed(&p, "[::1]", 80));
        assert!(host_allowed(&p, "[::2]", 1));
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = policy(&["*.Example.org", "*.other.net:443"], &[]);
        assert!(host_allowed(&p, "a.example.org", 1));
        assert!(host_allowed(&p, "a.b.EXAMPLE.org", 1));
        assert!(!host_allowed(&p, "example.org", 1));
        assert!(!host_allowed(&p, "badexample.org", 1));
        assert!(!host_allowed(&p, "example.org.evil", 1));
        assert!(host_allowed(&p, "x.other.net", 443));
        assert!(!host_allowed(&p, "x.other.net", 80));
    }

    #[test]
    fn always_allow_and_empty_list() {
        let p = policy(&[], &["127.0.0.1:8080"]);
        assert!(host_allowed(&p, "127.0.0.1", 8080));
        assert!(!host_allowed(&p, "127.0.0.1", 8081));
        assert!(!host_allowed(&p, "example.org", 443));
        let p = policy(&["", "*.", ":443", "host:notaport"], &[]);
        assert!(!host_allowed(&p, "host", 443));
        assert!(!host_allowed(&p, "", 443));
    }
}
