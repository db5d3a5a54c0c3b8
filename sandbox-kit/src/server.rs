//! The loopback server: an axum router on `127.0.0.1`, with request
//! counting and the fault switches in front of it.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::faults::{FaultPages, Faults};

/// Paths under this prefix are the sandbox's own debug routes (an outbox,
/// say): not counted, never faulted.
pub const DEBUG_PREFIX: &str = "/__sandbox/";

/// How long [`SandboxServer::shutdown`] (or a drop) lets open connections
/// finish before the server task is aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Request counters, kept by the server for every non-debug request
/// (faulted ones included).
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    by_route: Mutex<HashMap<(String, String), usize>>,
}

impl Stats {
    /// Requests received.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests received with this method and exact path (`"POST"`,
    /// `"/account/"`).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.by_route
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(method.to_owned(), path.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// The most requests handled at the same time so far.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn record(&self, method: &str, path: &str) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        *self
            .by_route
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((method.to_owned(), path.to_owned()))
            .or_insert(0) += 1;
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Front {
    stats: Arc<Stats>,
    faults: Arc<Faults>,
    pages: FaultPages,
}

async fn front(State(front): State<Arc<Front>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with(DEBUG_PREFIX) {
        return next.run(request).await;
    }
    front.stats.record(request.method().as_str(), &path);
    let _in_flight = InFlight::enter(&front.stats);
    if let Some(fault) = front
        .faults
        .next_fault(front.pages.maintenance_applies(&path))
    {
        tracing::debug!(method = %request.method(), %path, ?fault, "sandbox fault");
        return front.pages.render(fault, front.faults.retry_after());
    }
    next.run(request).await
}

/// A running loopback server; it stops (gracefully, then for good after a
/// few seconds) on [`SandboxServer::shutdown`] or when dropped.
///
/// Handlers may extract `ConnectInfo<SocketAddr>`: the server provides it.
pub struct SandboxServer {
    addr: SocketAddr,
    stats: Arc<Stats>,
    faults: Arc<Faults>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SandboxServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SandboxServer {
    /// Serves `app` on `127.0.0.1:port` (`None`: any free port), fault
    /// answers in the kit's default (JSON) style. Must be called within a
    /// Tokio runtime. A port in use is an `AddrInUse` error.
    pub async fn start(app: Router, port: Option<u16>) -> io::Result<Self> {
        Self::start_with(app, port, FaultPages::default()).await
    }

    /// [`SandboxServer::start`] with the provider's own fault pages.
    pub async fn start_with(app: Router, port: Option<u16>, pages: FaultPages) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port.unwrap_or(0))).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let faults = Arc::new(Faults::default());
        let state = Arc::new(Front {
            stats: Arc::clone(&stats),
            faults: Arc::clone(&faults),
            pages,
        });
        let app = app.layer(middleware::from_fn_with_state(state, front));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // A stop request or the handle being dropped.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "sandbox server stopped with an error");
            }
        });
        tracing::debug!(%addr, "sandbox server started");
        Ok(Self {
            addr,
            stats,
            faults,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The fault switches.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Stops accepting connections, lets in-flight requests finish (for a
    /// few seconds at most) and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for SandboxServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            // Graceful in the background when a runtime is there to wait;
            // otherwise (or after the grace period) the task is aborted.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                            .await
                            .is_err()
                        {
                            task.abort();
                        }
                    });
                }
                Err(_) => task.abort(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    fn app() -> Router {
        Router::new()
            .route("/", get(|| async { "home" }))
            .route("/__sandbox/state", get(|| async { "debug" }))
    }

    #[tokio::test]
    async fn serves_counts_and_faults() {
        let server = SandboxServer::start(app(), None).await.expect("start");
        assert!(server.base_url().starts_with("http://127.0.0.1:"));
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("{}{path}", server.base_url())).send();
        assert_eq!(
            get("/").await.expect("get").text().await.expect("body"),
            "home"
        );
        server.faults().rate_limit_next(1);
        server.faults().set_retry_after(2);
        let limited = get("/").await.expect("get");
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()["retry-after"], "2");
        server.faults().set_maintenance(true);
        assert_eq!(get("/").await.expect("get").status(), 503);
        // Debug routes: never faulted, never counted.
        assert_eq!(get("/__sandbox/state").await.expect("get").status(), 200);
        server.faults().clear();
        assert_eq!(get("/nowhere").await.expect("get").status(), 404);
        assert_eq!(server.stats().requests(), 4);
        assert_eq!(server.stats().count("GET", "/"), 3);
        assert_eq!(server.stats().count("GET", "/nowhere"), 1);
        assert!(server.stats().max_in_flight() >= 1);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_and_drop_free_the_port_and_a_taken_port_is_an_error() {
        let server = SandboxServer::start(app(), None).await.expect("start");
        let addr = server.addr();
        let taken = SandboxServer::start(app(), Some(addr.port()))
            .await
            .expect_err("port in use");
        assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
        server.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        // The same port again, then dropped.
        let again = SandboxServer::start(app(), Some(addr.port()))
            .await
            .expect("port free again");
        drop(again);
        let mut closed = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(closed, "the listener closes after drop");
    }
}
