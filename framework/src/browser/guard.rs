//! The browser's host guard: which requests a page may send.
//!
//! Every request of every tab the session opens is paused by the CDP
//! `Fetch` domain before it leaves chromium, and [`verdict`] decides:
//! `data:`, `blob:` and `about:` URLs stay inside the browser and pass;
//! `http(s)` URLs pass only when [`crate::endpoint::check_target`] accepts
//! them (no link-local or cloud metadata address) **and** their host (with
//! its port, when the manifest gives one) is in the allow-list, with the
//! same semantics as the HTTP client's. Anything else (another host,
//! `ws:`, `file:`, `chrome:`...) is failed with `BlockedByClient` and
//! listed.

use std::sync::{Arc, Mutex};

use url::Url;

use crate::http::display_url;

/// The hosts the browser may contact: `host` or `host:port`, matched as
/// the HTTP client matches them (a copy of its private list, so the two
/// modules evolve independently; `tests` pin the shared semantics).
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowList(Vec<(String, Option<u16>)>);

impl AllowList {
    /// Parses manifest entries such as `mobile.free.fr` or `127.0.0.1:8080`.
    pub(crate) fn new(entries: &[String]) -> Self {
        Self(
            entries
                .iter()
                .map(|e| match e.rsplit_once(':') {
                    Some((host, port)) if port.parse::<u16>().is_ok() => {
                        (host.to_ascii_lowercase(), port.parse().ok())
                    }
                    _ => (e.to_ascii_lowercase(), None),
                })
                .collect(),
        )
    }

    /// Whether `url`'s host (and port, when the entry names one) is listed.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.0
            .iter()
            .any(|(h, p)| *h == host && (p.is_none() || *p == port))
    }

    /// Whether a cookie of `domain` (CDP's form: a leading dot for a
    /// domain cookie) belongs to an allowed host.
    pub(crate) fn allows_cookie_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        self.0
            .iter()
            .any(|(h, _)| *h == domain || h.ends_with(&format!(".{domain}")))
    }

    /// The host names alone (ports dropped), for chromium's resolver rules.
    pub(crate) fn host_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// What the guard does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let it go.
    Allow,
    /// Fail it before it leaves; the reason is for the log.
    Refuse(String),
}

/// Decides about one request URL.
pub(crate) fn verdict(allow: &AllowList, raw: &str) -> Verdict {
    let Ok(url) = Url::parse(raw) else {
        return Verdict::Refuse("not a URL".to_owned());
    };
    match url.scheme() {
        "data" | "blob" | "about" => return Verdict::Allow,
        "http" | "https" => {}
        other => return Verdict::Refuse(format!("the `{other}:` scheme is not http or https")),
    }
    if let Err(e) = crate::endpoint::check_target(&url) {
        return Verdict::Refuse(e.message);
    }
    if allow.allows(&url) {
        Verdict::Allow
    } else {
        Verdict::Refuse("the host is not in the konnector's manifest".to_owned())
    }
}

/// The URL as the refusal list and the logs show it: no query, no
/// fragment, no user information (see [`display_url`]).
pub(crate) fn shown(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) => display_url(&u),
        Err(_) => crate::http::strip_query(raw),
    }
}

/// The guard shared by every tab of a session: the allow-list and the
/// requests it refused.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    pub(crate) allow: AllowList,
    refused: Mutex<Vec<String>>,
}

impl Guard {
    /// A guard over `allowed_hosts`.
    pub(crate) fn new(allowed_hosts: &[String]) -> Arc<Self> {
        Arc::new(Self {
            allow: AllowList::new(allowed_hosts),
            refused: Mutex::new(Vec::new()),
        })
    }

    /// Decides about `url` (a request of type `kind`), recording and
    /// logging a refusal. Returns whether the request may go.
    pub(crate) fn check(&self, url: &str, kind: &str) -> bool {
        match verdict(&self.allow, url) {
            Verdict::Allow => true,
            Verdict::Refuse(why) => {
                let shown = shown(url);
                tracing::warn!(url = %shown, resource = kind, reason = %why, "browser request refused");
                if let Ok(mut r) = self.refused.lock() {
                    r.push(shown);
                }
                false
            }
        }
    }

    /// The URLs refused so far, in order (no query strings).
    pub(crate) fn refused(&self) -> Vec<String> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::new(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn hosts_match_like_the_http_client() {
        let allow = list(&["Mobile.Free.fr", "127.0.0.1:8080"]);
        for ok in [
            "https://mobile.free.fr/account",
            "http://MOBILE.free.fr:81/x?y=1",
            "http://127.0.0.1:8080/",
        ] {
            assert_eq!(verdict(&allow, ok), Verdict::Allow, "{ok}");
        }
        for bad in [
            "http://127.0.0.1:8081/",
            "http://127.0.0.2:8080/",
            "https://free.fr/",
            "https://evil.mobile.free.fr/",
            "http://other.invalid/",
        ] {
            assert!(
                matches!(verdict(&allow, bad), Verdict::Refuse(ref why) if why.contains("manifest")),
                "{bad}"
            );
        }
    }

    #[test]
    fn in_browser_schemes_pass_and_others_fail() {
        let allow = list(&["example.com"]);
        for ok in [
            "data:image/png;base64,AAAA",
            "blob:https://example.com/5f0c",
            "about:blank",
        ] {
            assert_eq!(verdict(&allow, ok), Verdict::Allow, "{ok}");
        }
        for bad in [
            "ws://example.com/socket",
            "file:///etc/passwd",
            "chrome://settings",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(matches!(verdict(&allow, bad), Verdict::Refuse(_)), "{bad}");
        }
    }

    #[test]
    fn metadata_addresses_fail_even_when_listed() {
        let allow = list(&["169.254.169.254", "metadata.google.internal"]);
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/",
        ] {
            assert!(
                matches!(verdict(&allow, bad), Verdict::Refuse(ref why) if why.contains("never contacts")),
                "{bad}"
            );
        }
    }

    #[test]
    fn refusals_are_listed_without_queries() {
        let guard = Guard::new(&["example.com".to_owned()]);
        assert!(guard.check("https://example.com/a?t=1", "Document"));
        assert!(!guard.check("https://tracker.invalid/p?token=abc#x", "Image"));
        assert_eq!(
            guard.refused(),
            vec!["https://tracker.invalid/p".to_owned()]
        );
    }

    #[test]
    fn cookie_domains_and_resolver_names() {
        let allow = list(&["www.example.com", "127.0.0.1:9000", "[::1]:80"]);
        assert!(allow.allows_cookie_domain(".example.com"));
        assert!(allow.allows_cookie_domain("www.example.com"));
        assert!(allow.allows_cookie_domain("127.0.0.1"));
        assert!(!allow.allows_cookie_domain("other.com"));
        assert!(!allow.allows_cookie_domain("ample.com"));
        assert_eq!(
            allow.host_names(),
            vec!["127.0.0.1", "::1", "www.example.com"]
        );
    }
}
