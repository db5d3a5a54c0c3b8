//! Fault switches every sandbox gets for free: rate limiting (429 with
//! `Retry-After`), server errors (500/503) and a maintenance page, set at
//! run time ([`Faults`]' methods) or by scenario name
//! ([`Faults::apply_scenario`]). [`crate::SandboxServer`] checks them before
//! the sandbox's own handlers; [`FaultPages`] says what the answers look
//! like for a given provider.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::def::ScenarioInfo;

/// The fault scenarios the kit implements, by name; a sandbox lists the
/// ones it offers in its [`crate::SandboxDef`].
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "rate-limited",
        about: "every third request answers 429 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "unavailable",
        about: "every request answers 503 with Retry-After: 0",
    },
    ScenarioInfo {
        name: "maintenance",
        about: "the site shows its maintenance page; nobody can log in",
    },
];

/// One fault the server answers with instead of the sandbox's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 Too Many Requests, with `Retry-After`.
    RateLimited,
    /// A 5xx (503 comes with `Retry-After`).
    ServerError(StatusCode),
    /// The maintenance page.
    Maintenance,
}

/// The switches. All of them are off by default; each can change while the
/// server runs and applies from the next request on.
#[derive(Debug, Default)]
pub struct Faults {
    rate_limit_next: AtomicUsize,
    rate_limit_every: AtomicUsize,
    rate_limit_seen: AtomicUsize,
    server_error_next: AtomicUsize,
    server_error_status: AtomicU16,
    unavailable: AtomicBool,
    maintenance: AtomicBool,
    retry_after: AtomicU64,
}

impl Faults {
    /// The next `n` requests answer 429.
    pub fn rate_limit_next(&self, n: usize) {
        self.rate_limit_next.store(n, Ordering::SeqCst);
    }

    /// Every `n`th request from now on answers 429 (0: off).
    pub fn rate_limit_every(&self, n: usize) {
        self.rate_limit_seen.store(0, Ordering::SeqCst);
        self.rate_limit_every.store(n, Ordering::SeqCst);
    }

    /// The next `n` requests answer `status` (a 5xx).
    pub fn server_error_next(&self, n: usize, status: StatusCode) {
        self.server_error_status
            .store(status.as_u16(), Ordering::SeqCst);
        self.server_error_next.store(n, Ordering::SeqCst);
    }

    /// Every request answers 503 while on.
    pub fn set_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::SeqCst);
    }

    /// The maintenance page answers while on.
    pub fn set_maintenance(&self, on: bool) {
        self.maintenance.store(on, Ordering::SeqCst);
    }

    /// The `Retry-After` value, in seconds (default 0).
    pub fn set_retry_after(&self, secs: u64) {
        self.retry_after.store(secs, Ordering::SeqCst);
    }

    /// The `Retry-After` value, in seconds.
    pub fn retry_after(&self) -> u64 {
        self.retry_after.load(Ordering::SeqCst)
    }

    /// Every switch off.
    pub fn clear(&self) {
        self.rate_limit_next(0);
        self.rate_limit_every(0);
        self.server_error_next(0, StatusCode::SERVICE_UNAVAILABLE);
        self.set_unavailable(false);
        self.set_maintenance(false);
    }

    /// Sets the switches for one of the kit's [`SCENARIOS`] (or `normal`,
    /// which clears them); `false` for a name the kit does not know (a
    /// sandbox's own scenario), leaving the switches cleared.
    pub fn apply_scenario(&self, name: &str) -> bool {
        self.clear();
        match name {
            "normal" => {}
            "rate-limited" => self.rate_limit_every(3),
            "unavailable" => self.set_unavailable(true),
            "maintenance" => self.set_maintenance(true),
            _ => return false,
        }
        true
    }

    /// The fault the next request gets, if any, counting it against the
    /// switches. `maintenance_applies` says whether the request's path is
    /// one the maintenance page covers.
    pub fn next_fault(&self, maintenance_applies: bool) -> Option<Fault> {
        let take = |counter: &AtomicUsize| {
            counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if self.unavailable.load(Ordering::SeqCst) {
            return Some(Fault::ServerError(StatusCode::SERVICE_UNAVAILABLE));
        }
        if take(&self.server_error_next) {
            let status = StatusCode::from_u16(self.server_error_status.load(Ordering::SeqCst))
                .ok()
                .filter(StatusCode::is_server_error)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Some(Fault::ServerError(status));
        }
        if take(&self.rate_limit_next) {
            return Some(Fault::RateLimited);
        }
        let every = self.rate_limit_every.load(Ordering::SeqCst);
        if every > 0
            && (self.rate_limit_seen.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(every)
        {
            return Some(Fault::RateLimited);
        }
        if maintenance_applies && self.maintenance.load(Ordering::SeqCst) {
            return Some(Fault::Maintenance);
        }
        None
    }
}

/// What fault answers look like for one provider: bodies, content type,
/// the maintenance page's status and paths, headers added to each.
#[derive(Debug, Clone)]
pub struct FaultPages {
    /// `Content-Type` of every fault answer.
    pub content_type: &'static str,
    /// Body of a 429.
    pub too_many_requests: &'static str,
    /// Body of a 503.
    pub unavailable: &'static str,
    /// Body of another 5xx.
    pub server_error: &'static str,
    /// Body of the maintenance page.
    pub maintenance: &'static str,
    /// Status of the maintenance page (sites often say 200, APIs 503).
    pub maintenance_status: StatusCode,
    /// Path prefixes the maintenance page covers; empty: every path.
    pub maintenance_paths: &'static [&'static str],
    /// Headers added to every fault answer (e.g. `Server`).
    pub headers: &'static [(&'static str, &'static str)],
}

impl Default for FaultPages {
    /// JSON error bodies, as an API answers; maintenance is a 503.
    fn default() -> Self {
        Self {
            content_type: "application/json",
            too_many_requests: r#"{"error":"too_many_requests","error_description":"Quota exceeded, retry later"}"#,
            unavailable: r#"{"error":"service_unavailable","error_description":"The service is temporarily unavailable"}"#,
            server_error: r#"{"error":"server_error","error_description":"Internal server error"}"#,
            maintenance: r#"{"error":"maintenance","error_description":"The service is under maintenance"}"#,
            maintenance_status: StatusCode::SERVICE_UNAVAILABLE,
            maintenance_paths: &[],
            headers: &[],
        }
    }
}

impl FaultPages {
    /// Whether the maintenance page covers `path`.
    pub fn maintenance_applies(&self, path: &str) -> bool {
        self.maintenance_paths.is_empty()
            || self
                .maintenance_paths
                .iter()
                .any(|prefix| path.starts_with(prefix))
    }

    /// The answer for `fault`.
    pub fn render(&self, fault: Fault, retry_after: u64) -> Response {
        let (status, body, retry) = match fault {
            Fault::RateLimited => (StatusCode::TOO_MANY_REQUESTS, self.too_many_requests, true),
            Fault::ServerError(StatusCode::SERVICE_UNAVAILABLE) => {
                (StatusCode::SERVICE_UNAVAILABLE, self.unavailable, true)
            }
            Fault::ServerError(status) => (status, self.server_error, false),
            Fault::Maintenance => (
                self.maintenance_status,
                self.maintenance,
                self.maintenance_status == StatusCode::SERVICE_UNAVAILABLE,
            ),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if retry {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        for (name, value) in self.headers {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_switches_run_out() {
        let faults = Faults::default();
        assert_eq!(faults.next_fault(true), None);
        faults.rate_limit_next(2);
        faults.server_error_next(1, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            faults.next_fault(true),
            Some(Fault::ServerError(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert_eq!(faults.next_fault(true), Some(Fault::RateLimited));
        assert_eq!(faults.next_fault(true), Some(Fault::RateLimited));
        assert_eq!(faults.next_fault(true), None);
    }

    #[test]
    fn every_third_and_scenarios() {
        let faults = Faults::default();
        assert!(faults.apply_scenario("rate-limited"));
        let got: Vec<bool> = (0..7).map(|_| faults.next_fault(true).is_some()).collect();
        assert_eq!(got, [false, false, true, false, false, true, false]);
        assert!(faults.apply_scenario("maintenance"));
        assert_eq!(faults.next_fault(false), None);
        assert_eq!(faults.next_fault(true), Some(Fault::Maintenance));
        assert!(faults.apply_scenario("unavailable"));
        assert_eq!(
            faults.next_fault(false),
            Some(Fault::ServerError(StatusCode::SERVICE_UNAVAILABLE))
        );
        assert!(faults.apply_scenario("normal"));
        assert_eq!(faults.next_fault(true), None);
        assert!(!faults.apply_scenario("changed-markup"));
        assert_eq!(faults.next_fault(true), None);
    }

    #[test]
    fn pages_render_status_retry_after_and_headers() {
        let pages = FaultPages {
            headers: &[("server", "nginx")],
            maintenance_paths: &["/account"],
            maintenance_status: StatusCode::OK,
            ..FaultPages::default()
        };
        let r = pages.render(Fault::RateLimited, 7);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert_eq!(r.headers()["server"], "nginx");
        let r = pages.render(Fault::ServerError(StatusCode::INTERNAL_SERVER_ERROR), 7);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        let r = pages.render(Fault::Maintenance, 0);
        assert_eq!(r.status(), StatusCode::OK);
        assert!(pages.maintenance_applies("/account/"));
        assert!(!pages.maintenance_applies("/"));
        assert!(FaultPages::default().maintenance_applies("/anything"));
    }
}
