//! Copying the browser's cookies into an [`HttpClient`]'s jar.
//!
//! After a scripted login the session cookies live in chromium. CDP's
//! `Network.getAllCookies` gives every cookie of the browser (the tab's
//! `getCookies` only those of its current URL); those of allowed hosts are
//! written into the client's `cookie_store` as if the host had sent them
//! in a `Set-Cookie` header: a domain cookie (CDP shows it with a leading
//! dot) keeps its `Domain`, a host-only cookie gets none, and `Path`,
//! `Secure`, `HttpOnly` and the expiry are kept. Every value is registered
//! with [`crate::redact`] first.

use chrono::{DateTime, Utc};
use cookie_store::{CookieStore, RawCookie};
use url::Url;

use super::guard::AllowList;
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::http::HttpClient;

/// A cookie as the browser reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BrowserCookie {
    pub name: String,
    pub value: String,
    /// `.example.com` for a domain cookie, `example.com` for a host-only one.
    pub domain: String,
    pub path: String,
    /// Seconds since the epoch; `None` for a session cookie.
    pub expires: Option<f64>,
    pub secure: bool,
    pub http_only: bool,
}

impl BrowserCookie {
    /// The `Set-Cookie` line and the URL it is "received" from.
    fn as_set_cookie(&self) -> Option<(String, Url)> {
        let host = self.domain.trim_start_matches('.');
        let host_for_url = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let scheme = if self.secure { "https" } else { "http" };
        let path = if self.path.starts_with('/') {
            self.path.as_str()
        } else {
            "/"
        };
        let url = Url::parse(&format!("{scheme}://{host_for_url}{path}")).ok()?;
        let mut line = format!("{}={}; Path={path}", self.name, self.value);
        if self.domain.starts_with('.') {
            line.push_str(&format!("; Domain={host}"));
        }
        if self.secure {
            line.push_str("; Secure");
        }
        if self.http_only {
            line.push_str("; HttpOnly");
        }
        if let Some(expires) = self.expires {
            #[allow(clippy::cast_possible_truncation)]
            let secs = expires.floor() as i64;
            let at = DateTime::<Utc>::from_timestamp(secs, 0)?;
            line.push_str(&format!(
                "; Expires={}",
                at.format("%a, %d %b %Y %H:%M:%S GMT")
            ));
        }
        Some((line, url))
    }
}

/// Writes the cookies of allowed hosts into `store`; returns how many
/// were taken.
pub(crate) fn insert_all(
    store: &mut CookieStore,
    allow: &AllowList,
    cookies: &[BrowserCookie],
) -> usize {
    let mut taken = 0;
    for c in cookies {
        if !allow.allows_cookie_domain(&c.domain) {
            tracing::debug!(domain = %c.domain, "browser cookie of another host not copied");
            continue;
        }
        let Some((line, url)) = c.as_set_cookie() else {
            tracing::warn!(domain = %c.domain, name = %c.name, "browser cookie not copied: bad domain or path");
            continue;
        };
        match RawCookie::parse(line) {
            Ok(raw) => match store.insert_raw(&raw, &url) {
                Ok(_) => taken += 1,
                Err(e) => {
                    tracing::warn!(domain = %c.domain, name = %c.name, error = %e, "browser cookie refused by the jar");
                }
            },
            Err(e) => {
                tracing::warn!(domain = %c.domain, name = %c.name, error = %e, "browser cookie not copied");
            }
        }
    }
    taken
}

/// Copies `cookies` into `http`'s jar (see the module doc).
pub(crate) fn copy_into(
    http: &HttpClient,
    allow: &AllowList,
    cookies: &[BrowserCookie],
) -> Result<usize> {
    crate::redact::register_all(cookies.iter().map(|c| c.value.as_str()));
    let mut jar = http
        .cookie_jar()
        .lock()
        .map_err(|_| KonnectorError::new(ErrorCode::UnknownError, "the cookie jar is poisoned"))?;
    Ok(insert_all(&mut jar, allow, cookies))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cookie(name: &str, domain: &str, path: &str, secure: bool) -> BrowserCookie {
        BrowserCookie {
            name: name.into(),
            value: format!("v-{name}"),
            domain: domain.into(),
            path: path.into(),
            expires: None,
            secure,
            http_only: true,
        }
    }

    fn sent(store: &CookieStore, url: &str) -> Vec<String> {
        let mut v: Vec<String> = store
            .get_request_values(&Url::parse(url).unwrap())
            .map(|(n, _)| n.to_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn host_only_domain_path_and_secure_cookies_land_where_the_browser_sends_them() {
        let allow = AllowList::new(&["127.0.0.1:8080".to_owned(), "www.example.com".to_owned()]);
        let cookies = vec![
            cookie("sid", "127.0.0.1", "/", false),
            cookie("deep", "127.0.0.1", "/account", false),
            cookie("dom", ".example.com", "/", true),
            cookie("host", "www.example.com", "/", false),
            cookie("foreign", ".tracker.invalid", "/", false),
        ];
        let mut store = CookieStore::default();
        assert_eq!(insert_all(&mut store, &allow, &cookies), 4);
        assert_eq!(sent(&store, "http://127.0.0.1:8080/"), vec!["sid"]);
        assert_eq!(
            sent(&store, "http://127.0.0.1:8080/account/bills"),
            vec!["deep", "sid"]
        );
        assert_eq!(
            sent(&store, "https://www.example.com/"),
            vec!["dom", "host"]
        );
        // Secure cookies are not sent over http; the domain cookie covers
        // sibling hosts, the host-only one does not.
        assert_eq!(sent(&store, "http://www.example.com/"), vec!["host"]);
        assert_eq!(sent(&store, "https://api.example.com/"), vec!["dom"]);
        assert!(sent(&store, "http://tracker.invalid/").is_empty());
    }

    #[test]
    fn expiry_is_kept_and_expired_cookies_are_dropped() {
        let allow = AllowList::new(&["example.com".to_owned()]);
        let mut live = cookie("live", "example.com", "/", false);
        live.expires = Some(4_102_444_800.0); // 2100-01-01
        let mut dead = cookie("dead", "example.com", "/", false);
        dead.expires = Some(946_684_800.0); // 2000-01-01
        let mut store = CookieStore::default();
        insert_all(&mut store, &allow, &[live, dead]);
        assert_eq!(sent(&store, "http://example.com/"), vec!["live"]);
        let kept = store.iter_unexpired().next().unwrap();
        assert!(kept.is_persistent());
    }
}
