//! Replaying: a transport that answers from a cassette, offline.

use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{HeaderValue, LOCATION};
use url::Url;

use super::scrub::wildcard;
use super::{Body, Cassette, RecordedRequest, Scrubber, header_map, header_pairs};
use crate::error::{ErrorCode, KonnectorError};
use crate::http::{Transport, TransportError, TransportRequest, TransportResponse};

/// What a request is matched on: method, path with its sorted query, and
/// body, scrubbed, with numbered placeholders as wildcards.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    method: String,
    target: String,
    body: String,
}

impl Key {
    fn of(req: &RecordedRequest) -> Self {
        let target = match Url::parse(&req.url) {
            Ok(u) => {
                let mut pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
                pairs.sort();
                if pairs.is_empty() {
                    u.path().to_owned()
                } else {
                    let q = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish();
                    format!("{}?{q}", u.path())
                }
            }
            Err(_) => req.url.clone(),
        };
        let body = match &req.body {
            None => String::new(),
            Some(Body::Base64(b)) => format!("(binary, base64) {b}"),
            Some(Body::Text(t)) => match serde_json::from_str::<serde_json::Value>(t) {
                // JSON compares by value, printed the same way on both sides.
                Ok(v) if t.trim_start().starts_with(['{', '[']) => {
                    serde_json::to_string_pretty(&v).unwrap_or_else(|_| t.clone())
                }
                _ => t.clone(),
            },
        };
        Self {
            method: req.method.to_ascii_uppercase(),
            target: wildcard(&target),
            body: wildcard(&body),
        }
    }

    /// The request as lines, for diffs.
    fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("{} {}", self.method, self.target)];
        let body_lines: Vec<String> = if self.body.contains('&') && !self.body.contains('\n') {
            self.body.split('&').map(str::to_owned).collect()
        } else {
            self.body.lines().map(str::to_owned).collect()
        };
        lines.extend(body_lines);
        lines
    }
}

struct State {
    used: Vec<bool>,
    scrubber: Scrubber,
}

/// Answers requests from a cassette; nothing leaves the process.
///
/// A request is scrubbed with the replaying run's secrets and fields
/// ([`ReplayTransport::set_scrubber`]; the runner does it), then matched on
/// method, path, sorted query and body; the first unused exchange that
/// matches answers. No match fails the request with `UNKNOWN_ERROR` and a
/// line diff against the nearest recorded request.
pub struct ReplayTransport {
    cassette: Cassette,
    keys: Vec<Key>,
    state: Mutex<State>,
}

impl ReplayTransport {
    /// A replay of `cassette`, scrubbing requests by discovery only until
    /// [`ReplayTransport::set_scrubber`] gives it the run's secrets.
    pub fn new(cassette: Cassette) -> Self {
        let keys = cassette
            .exchanges
            .iter()
            .map(|e| Key::of(&e.request))
            .collect();
        let used = vec![false; cassette.exchanges.len()];
        Self {
            cassette,
            keys,
            state: Mutex::new(State {
                used,
                scrubber: Scrubber::new(),
            }),
        }
    }

    /// Scrubs outgoing requests with `scrubber` (built from the replaying
    /// run's secrets and fields: [`Scrubber::for_run`]).
    pub fn set_scrubber(&self, scrubber: Scrubber) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.scrubber = scrubber;
    }

    /// The cassette replayed.
    pub fn cassette(&self) -> &Cassette {
        &self.cassette
    }

    /// The exchanges no request used, as `#<index> <METHOD> <path?query>`.
    pub fn unused(&self) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .used
            .iter()
            .enumerate()
            .filter(|(_, used)| !**used)
            .map(|(i, _)| format!("#{i} {} {}", self.keys[i].method, self.keys[i].target))
            .collect()
    }

    fn miss(&self, key: &Key, used: &[bool]) -> KonnectorError {
        let sent = key.lines();
        let nearest = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut cost = diff_cost(&k.lines(), &sent);
                if k.method != key.method {
                    cost += 1000;
                }
                if used[i] {
                    cost += 1;
                }
                (cost, i)
            })
            .min();
        let mut msg = format!(
            "the cassette has no exchange left for {} {}",
            key.method, key.target
        );
        match nearest {
            None => msg.push_str(" (the cassette is empty)"),
            Some((_, i)) => {
                let state = if used[i] { "already used" } else { "unused" };
                msg.push_str(&format!(
                    "; the nearest recorded request is exchange #{i} ({state}):\n--- recorded\n+++ sent\n"
                ));
                msg.push_str(&line_diff(&self.keys[i].lines(), &sent));
            }
        }
        KonnectorError::new(ErrorCode::UnknownError, msg)
    }
}

#[async_trait::async_trait]
impl Transport for ReplayTransport {
    async fn exchange(
        &self,
        request: TransportRequest,
    ) -> std::result::Result<TransportResponse, TransportError> {
        let mut recorded = RecordedRequest {
            method: request.method.to_string(),
            url: request.url.to_string(),
            headers: header_pairs(&request.headers),
            body: Body::from_bytes(&request.body),
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (_, value) in request
            .headers
            .iter()
            .filter(|(n, v)| v.is_sensitive() && *n != reqwest::header::COOKIE)
        {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let cred = value.split_once(' ').map_or(value.as_str(), |(_, c)| c);
            state.scrubber.learn(cred, "TOKEN");
        }
        state.scrubber.discover_request(&recorded);
        state.scrubber.scrub_request(&mut recorded);
        let key = Key::of(&recorded);
        let found = (0..self.keys.len()).find(|&i| !state.used[i] && self.keys[i] == key);
        let Some(i) = found else {
            return Err(TransportError::Rejected(self.miss(&key, &state.used)));
        };
        state.used[i] = true;
        drop(state);
        let ex = &self.cassette.exchanges[i];
        let mut headers = header_map(&ex.response.headers);
        // A redirect to the recorded origin goes to the live one (a sandbox
        // on another port).
        if let (Some(loc), Ok(rec_url)) = (
            headers.get(LOCATION).and_then(|v| v.to_str().ok()),
            Url::parse(&ex.request.url),
        ) && let Ok(mut target) = Url::parse(loc)
            && target.origin() == rec_url.origin()
            && target.origin() != request.url.origin()
        {
            let _ = target.set_scheme(request.url.scheme());
            let _ = target.set_host(request.url.host_str());
            let _ = target.set_port(request.url.port());
            if let Ok(v) = HeaderValue::from_str(target.as_str()) {
                headers.insert(LOCATION, v);
            }
        }
        Ok(TransportResponse {
            status: StatusCode::from_u16(ex.response.status).unwrap_or(StatusCode::OK),
            headers,
            body: ex
                .response
                .body
                .as_ref()
                .map(Body::to_bytes)
                .unwrap_or_default(),
            url: request.url,
        })
    }
}

/// The LCS table of two line lists.
fn lcs(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            t[i][j] = if a[i] == b[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    t
}

fn diff_cost(a: &[String], b: &[String]) -> usize {
    let a = &a[..a.len().min(200)];
    let b = &b[..b.len().min(200)];
    let common = lcs(a, b)[0][0];
    a.len() + b.len() - 2 * common
}

/// A unified-style line diff (`-` recorded, `+` sent, ` ` both), at most
/// 60 lines.
fn line_diff(a: &[String], b: &[String]) -> String {
    let a = &a[..a.len().min(200)];
    let b = &b[..b.len().min(200)];
    let t = lcs(a, b);
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || t[i + 1][j] >= t[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    if out.len() > 60 {
        let more = out.len() - 60;
        out.truncate(60);
        out.push(format!("… {more} more lines"));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_diff_marks_what_changed() {
        let d = line_diff(
            &lines(&["POST /login", "user=a", "pwd=b"]),
            &lines(&["POST /login", "user=c", "pwd=b"]),
        );
        assert_eq!(d, "  POST /login\n- user=a\n+ user=c\n  pwd=b");
    }
}
