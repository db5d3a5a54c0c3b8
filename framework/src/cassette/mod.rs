//! Cassettes: a run's HTTP exchanges (and browser DOM snapshots), recorded
//! to one readable JSON file, and replayed offline.
//!
//! - [`record::Recorder`] wraps the run's [`Transport`]s
//!   ([`record::RecordingTransport`]) and keeps every exchange in memory;
//!   at the end of the run (successful **or not**: a failed run's cassette
//!   is the one worth having) the runner scrubs it ([`scrub::Scrubber`])
//!   and writes it. Nothing unscrubbed is ever written.
//! - [`replay::ReplayTransport`] answers from a cassette: a request is
//!   matched on its method, path, sorted query and body, after scrubbing it
//!   with the replaying run's own secrets (so a cassette replays with any
//!   credentials); the first unused match answers. A request with no match
//!   fails with `UNKNOWN_ERROR` and a line diff against the nearest
//!   recorded request; [`replay::ReplayTransport::unused`] lists exchanges
//!   the replay never asked for.
//! - The cassette stores the run clock's start (`recorded_at`); a replay
//!   runs with a clock starting there, so `ctx.today()` is the recorded day.
//!
//! The format (version [`FORMAT_VERSION`]):
//!
//! ```json
//! { "version": 1, "konnector": "free-mobile", "recorded_at": "2026-11-30T02:00:00Z",
//!   "exchanges": [ { "request":  { "method": "POST", "url": "http://127.0.0.1:4000/login",
//!                                  "headers": [["content-type", "application/x-www-form-urlencoded"]],
//!                                  "body": { "text": "login=__FIELD_login__&pwd=__SECRET_password__" } },
//!                    "response": { "status": 302, "url": "http://127.0.0.1:4000/login",
//!                                  "headers": [["set-cookie", "SID=__COOKIE_1__; Path=/"]],
//!                                  "body": null } } ],
//!   "snapshots": [ { "url": "https://…/account", "html": "<html>…" } ] }
//! ```
//!
//! Bodies are `{"text": …}` when they are UTF-8, else `{"base64": …}`
//! (binary bodies, such as PDFs, are stored as they are: only text is
//! scrubbed).

pub mod record;
pub mod replay;
pub mod scrub;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, KonnectorError, Result};
use crate::http::Transport;

pub use record::{Recorder, RecordingTransport};
pub use replay::ReplayTransport;
pub use scrub::Scrubber;

/// The version of the cassette format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One run's recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cassette {
    /// The format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The konnector's slug.
    pub konnector: String,
    /// When the run started, by its clock: a replay runs at this time.
    pub recorded_at: DateTime<Utc>,
    /// The exchanges, in the order they happened.
    #[serde(default)]
    pub exchanges: Vec<Exchange>,
    /// DOM snapshots of pages a browser visited.
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
}

/// One request and its response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// What was sent.
    pub request: RecordedRequest,
    /// What came back.
    pub response: RecordedResponse,
}

/// A request as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The method.
    pub method: String,
    /// The URL.
    pub url: String,
    /// The headers, in order, as `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body; `null` when empty.
    #[serde(default)]
    pub body: Option<Body>,
}

/// A response as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponse {
    /// The status code.
    pub status: u16,
    /// The URL that answered.
    pub url: String,
    /// The headers, in order, as `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body; `null` when empty.
    #[serde(default)]
    pub body: Option<Body>,
}

/// A body: text when it is UTF-8, else base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// A UTF-8 body.
    Text(String),
    /// Any other body, standard base64.
    Base64(String),
}

impl Body {
    /// `None` for an empty body.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return None;
        }
        Some(match std::str::from_utf8(bytes) {
            Ok(text) => Body::Text(text.to_owned()),
            Err(_) => Body::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        })
    }

    /// The bytes (a base64 body that does not decode gives its text).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Body::Text(t) => Bytes::from(t.clone()),
            Body::Base64(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(Bytes::from)
                .unwrap_or_else(|_| Bytes::from(b.clone())),
        }
    }
}

/// A browser page's DOM, as HTML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The page's URL.
    pub url: String,
    /// Its DOM serialized as HTML.
    pub html: String,
}

/// What a run does with cassettes ([`crate::RunOptions::cassette`]).
#[derive(Clone)]
pub enum CassetteMode {
    /// Record the run and write its scrubbed cassette at the end of the
    /// run, successful or not. An existing directory gets
    /// `<slug>-<run id>.json` ([`file_name`]); any other path is the file.
    Record(PathBuf),
    /// Answer every request (token calls included) from a cassette; nothing
    /// leaves the process. Keep a clone to ask
    /// [`ReplayTransport::unused`] after the run.
    Replay(Arc<ReplayTransport>),
}

impl CassetteMode {
    /// Replays `cassette`.
    pub fn replay(cassette: Cassette) -> Self {
        Self::Replay(Arc::new(ReplayTransport::new(cassette)))
    }
}

/// A cassette's file name: `<slug>-<run id>.json`.
pub fn file_name(slug: &str, run_id: &str) -> String {
    format!("{slug}-{run_id}.json")
}

fn cassette_error(message: String) -> KonnectorError {
    KonnectorError::new(ErrorCode::UnknownError, message)
}

impl Cassette {
    /// An empty cassette.
    pub fn new(konnector: &str, recorded_at: DateTime<Utc>) -> Self {
        Self {
            version: FORMAT_VERSION,
            konnector: konnector.to_owned(),
            recorded_at,
            exchanges: Vec::new(),
            snapshots: Vec::new(),
        }
    }

    /// Adds a browser page's DOM snapshot.
    pub fn add_snapshot(&mut self, url: &str, html: &str) {
        self.snapshots.push(Snapshot {
            url: url.to_owned(),
            html: html.to_owned(),
        });
    }

    /// Reads a cassette file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            cassette_error(format!("cannot read the cassette {}: {e}", path.display()))
        })?;
        let cassette: Cassette = serde_json::from_str(&text)
            .map_err(|e| cassette_error(format!("{} is not a cassette: {e}", path.display())))?;
        if cassette.version != FORMAT_VERSION {
            return Err(cassette_error(format!(
                "{} is a cassette of format {}; this build reads format {FORMAT_VERSION}",
                path.display(),
                cassette.version
            )));
        }
        Ok(cassette)
    }

    /// Writes the cassette as pretty JSON (through a temporary file renamed
    /// over `path`). The caller scrubs it first: [`Scrubber::scrub_cassette`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| cassette_error(format!("cannot encode the cassette: {e}")))?;
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, text.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                cassette_error(format!("cannot write the cassette {}: {e}", path.display()))
            })
    }

    /// `path` itself when it is a file; when it is a directory, its newest
    /// cassette of konnector `slug` (by `recorded_at`).
    pub fn find(path: &Path, slug: &str) -> Result<PathBuf> {
        if !path.is_dir() {
            return Ok(path.to_owned());
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| cassette_error(format!("cannot list {}: {e}", path.display())))?;
        let prefix = format!("{slug}-");
        let mut best: Option<(DateTime<Utc>, PathBuf)> = None;
        for entry in entries.flatten() {
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || !name.ends_with(".json") {
                continue;
            }
            let Ok(c) = Cassette::load(&p) else { continue };
            if c.konnector != slug {
                continue;
            }
            if best.as_ref().is_none_or(|(at, _)| c.recorded_at > *at) {
                best = Some((c.recorded_at, p));
            }
        }
        best.map(|(_, p)| p).ok_or_else(|| {
            cassette_error(format!(
                "no cassette of konnector `{slug}` in {}",
                path.display()
            ))
        })
    }

    /// A transport answering from this cassette.
    pub fn replayer(self) -> Arc<dyn Transport> {
        Arc::new(ReplayTransport::new(self))
    }
}

/// Headers as recorded pairs (non-UTF-8 values lossily).
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Recorded pairs as headers (pairs that are not valid headers are
/// skipped).
pub(crate) fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in pairs {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(n, v);
        }
    }
    map
}
