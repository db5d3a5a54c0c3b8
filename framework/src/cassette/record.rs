//! Recording: a transport that keeps every exchange it passes on.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{Body, Cassette, Exchange, RecordedRequest, RecordedResponse, Scrubber, header_pairs};
use crate::http::{Transport, TransportError, TransportRequest, TransportResponse};

/// What a recorder kept: exchanges as they happened (unscrubbed, in memory
/// only), the values of headers marked sensitive, and DOM snapshots.
#[derive(Default)]
struct Log {
    exchanges: Vec<Exchange>,
    sensitive: Vec<String>,
    snapshots: Vec<(String, String)>,
}

/// Collects a run's exchanges from any number of transports it wraps (the
/// konnector's client and the OAuth token calls share one recorder).
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Log>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// `inner`, recording every exchange into this recorder.
    pub fn wrap(&self, inner: Arc<dyn Transport>) -> Arc<dyn Transport> {
        Arc::new(RecordingTransport {
            inner,
            recorder: self.clone(),
        })
    }

    /// Adds a browser page's DOM snapshot.
    pub fn add_snapshot(&self, url: &str, html: &str) {
        if let Ok(mut log) = self.log.lock() {
            log.snapshots.push((url.to_owned(), html.to_owned()));
        }
    }

    /// Exchanges recorded so far.
    pub fn len(&self) -> usize {
        self.log.lock().map(|l| l.exchanges.len()).unwrap_or(0)
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cassette of everything recorded, **scrubbed** by `scrubber`
    /// (which also learns every header value marked sensitive).
    pub fn cassette(
        &self,
        konnector: &str,
        recorded_at: DateTime<Utc>,
        scrubber: &mut Scrubber,
    ) -> Cassette {
        let mut cassette = Cassette::new(konnector, recorded_at);
        if let Ok(log) = self.log.lock() {
            for value in &log.sensitive {
                let cred = value.split_once(' ').map_or(value.as_str(), |(_, c)| c);
                scrubber.learn(cred, "TOKEN");
            }
            cassette.exchanges = log.exchanges.clone();
            for (url, html) in &log.snapshots {
                cassette.add_snapshot(url, html);
            }
        }
        scrubber.scrub_cassette(cassette)
    }

    fn push(&self, request: &TransportRequest, response: &TransportResponse) {
        let sensitive: Vec<String> = request
            .headers
            .iter()
            // Cookies are scrubbed value by value, by name.
            .filter(|(n, v)| v.is_sensitive() && *n != reqwest::header::COOKIE)
            .map(|(_, v)| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let exchange = Exchange {
            request: RecordedRequest {
                method: request.method.to_string(),
                url: request.url.to_string(),
                headers: header_pairs(&request.headers),
                body: Body::from_bytes(&request.body),
            },
            response: RecordedResponse {
                status: response.status.as_u16(),
                url: response.url.to_string(),
                headers: header_pairs(&response.headers),
                body: Body::from_bytes(&response.body),
            },
        };
        if let Ok(mut log) = self.log.lock() {
            log.sensitive.extend(sensitive);
            log.exchanges.push(exchange);
        }
    }
}

/// A transport that records every exchange its inner transport completes
/// (failures, such as timeouts, are not recorded: a replay cannot
/// reproduce them).
pub struct RecordingTransport {
    inner: Arc<dyn Transport>,
    recorder: Recorder,
}

impl RecordingTransport {
    /// Records `inner`'s exchanges into `recorder`.
    pub fn new(inner: Arc<dyn Transport>, recorder: Recorder) -> Self {
        Self { inner, recorder }
    }
}

#[async_trait::async_trait]
impl Transport for RecordingTransport {
    async fn exchange(
        &self,
        request: TransportRequest,
    ) -> std::result::Result<TransportResponse, TransportError> {
        let response = self.inner.exchange(request.clone()).await?;
        self.recorder.push(&request, &response);
        Ok(response)
    }
}
