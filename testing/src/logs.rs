//! Log capture: a per-test tracing subscriber at `TRACE` that writes every
//! event, formatted as the CLI formats it (without colours and **without**
//! the redaction the CLI's writer applies), into a buffer a test can
//! search.
//!
//! The capture is deliberately unredacted: [`crate::assert_conforms`]
//! checks that no secret reaches a log line at all, not only that the last
//! line of defence ([`gleaner_framework::redact`]) masks it.
//!
//! It is not installed globally, so tests running in parallel threads keep
//! their logs apart: [`LogCapture::set_default`] scopes it to the current
//! thread, and [`LogCapture::dispatch`] can be attached to one future with
//! [`tracing::instrument::WithSubscriber`] (which [`crate::Harness::run`]
//! does), whichever thread polls it.

use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::Dispatch;
use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use url::Url;

#[derive(Default)]
struct Shared {
    text: Vec<u8>,
    urls: BTreeSet<String>,
}

/// Captured logs. Cheap to clone: clones share one buffer.
#[derive(Clone)]
pub struct LogCapture {
    shared: Arc<Mutex<Shared>>,
    dispatch: Dispatch,
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture")
            .field("bytes", &self.lock().text.len())
            .finish_non_exhaustive()
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer the fmt layer writes each event into.
struct BufferWriter(Arc<Mutex<Shared>>);

impl io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
struct MakeBuffer(Arc<Mutex<Shared>>);

impl<'a> MakeWriter<'a> for MakeBuffer {
    type Writer = BufferWriter;

    fn make_writer(&'a self) -> Self::Writer {
        BufferWriter(Arc::clone(&self.0))
    }
}

/// Keeps the value of every event field named `url` (the HTTP client and
/// the OAuth token calls log the URL of each exchange under that name).
struct UrlLayer(Arc<Mutex<Shared>>);

struct UrlVisitor<'a>(&'a mut Vec<String>);

impl Visit for UrlVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "url" {
            self.0.push(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "url" {
            self.0.push(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for UrlLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut found = Vec::new();
        event.record(&mut UrlVisitor(&mut found));
        if !found.is_empty() {
            lock(&self.0).urls.extend(found);
        }
    }
}

impl Default for LogCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl LogCapture {
    /// A new, empty capture at `TRACE`.
    pub fn new() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(true)
            .with_writer(MakeBuffer(Arc::clone(&shared)));
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::TRACE)
            .with(fmt)
            .with(UrlLayer(Arc::clone(&shared)));
        Self {
            shared,
            dispatch: Dispatch::new(subscriber),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// The subscriber, to attach to a future
    /// (`fut.with_subscriber(logs.dispatch().clone())`).
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Makes this capture the current thread's subscriber until the guard
    /// is dropped (`tracing::subscriber::set_default`).
    pub fn set_default(&self) -> DefaultGuard {
        tracing::dispatcher::set_default(&self.dispatch)
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().text).into_owned()
    }

    /// Whether the logs contain `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    /// The captured lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Every distinct URL logged under a `url` field: what the run
    /// contacted (the HTTP client logs each exchange, the OAuth client each
    /// token call). Values that do not parse as URLs are left out.
    pub fn urls(&self) -> Vec<Url> {
        self.lock()
            .urls
            .iter()
            .filter_map(|u| Url::parse(u).ok())
            .collect()
    }

    /// Empties the buffer and the URL list.
    pub fn clear(&self) {
        let mut shared = self.lock();
        shared.text.clear();
        shared.urls.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracing::instrument::WithSubscriber;

    #[test]
    fn captures_trace_events_and_urls_on_this_thread_only() {
        let logs = LogCapture::new();
        {
            let _guard = logs.set_default();
            tracing::trace!(url = "https://example.org/a?b=1", "fetched");
            tracing::debug!(url = %"not a url", "odd");
        }
        tracing::info!("outside the capture");
        let text = logs.text();
        assert!(text.contains("TRACE"), "{text}");
        assert!(text.contains("fetched"));
        assert!(!text.contains("outside the capture"));
        let urls = logs.urls();
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].host_str(), Some("example.org"));
        logs.clear();
        assert!(logs.text().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_future_carries_its_capture_across_threads() {
        let logs = LogCapture::new();
        tokio::spawn(
            async {
                tokio::task::yield_now().await;
                tracing::info!("from a task");
            }
            .with_subscriber(logs.dispatch().clone()),
        )
        .await
        .unwrap();
        assert_eq!(logs.lines_with("from a task").len(), 1);
    }
}
