//! Reading `Cookie` headers and building `Set-Cookie` values.

use std::fmt;

use axum::http::{HeaderMap, HeaderValue, header};

/// The values of every cookie called `name` the request carries, in order
/// (a request may carry several, e.g. a stale and a fresh session).
pub fn values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim())
}

/// The first value of the cookie `name`, if the request carries it.
pub fn get<'a>(headers: &'a HeaderMap, name: &'a str) -> Option<&'a str> {
    values(headers, name).next()
}

/// A `Set-Cookie` header value, built attribute by attribute.
///
/// ```
/// use gleaner_sandbox_kit::cookies::SetCookie;
/// let c = SetCookie::new("sid", "abc").path("/").http_only().max_age(60);
/// assert_eq!(c.to_string(), "sid=abc; Max-Age=60; Path=/; HttpOnly");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    name: String,
    value: String,
    expires: Option<String>,
    max_age: Option<u64>,
    path: Option<String>,
    http_only: bool,
    secure: bool,
    same_site: Option<&'static str>,
}

impl SetCookie {
    /// `name=value`, no attributes yet.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            expires: None,
            max_age: None,
            path: None,
            http_only: false,
            secure: false,
            same_site: None,
        }
    }

    /// A cookie that deletes `name` (as PHP writes it: value `deleted`,
    /// expired in 1970, `Max-Age=0`).
    pub fn removal(name: impl Into<String>) -> Self {
        let mut cookie = Self::new(name, "deleted").max_age(0);
        cookie.expires = Some("Thu, 01 Jan 1970 00:00:01 GMT".to_owned());
        cookie
    }

    /// `Max-Age=secs`.
    pub fn max_age(mut self, secs: u64) -> Self {
        self.max_age = Some(secs);
        self
    }

    /// `Path=path`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// `HttpOnly`.
    pub fn http_only(mut self) -> Self {
        self.http_only = true;
        self
    }

    /// `Secure`.
    pub fn secure(mut self) -> Self {
        self.secure = true;
        self
    }

    /// `SameSite=Lax|Strict|None`.
    pub fn same_site(mut self, value: &'static str) -> Self {
        self.same_site = Some(value);
        self
    }

    /// The header value; `None` when the name or value holds characters a
    /// header cannot carry.
    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.to_string()).ok()
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)?;
        if let Some(expires) = &self.expires {
            write!(f, "; expires={expires}")?;
        }
        if let Some(max_age) = self.max_age {
            write!(f, "; Max-Age={max_age}")?;
        }
        if let Some(path) = &self.path {
            write!(f, "; Path={path}")?;
        }
        if self.http_only {
            f.write_str("; HttpOnly")?;
        }
        if self.secure {
            f.write_str("; Secure")?;
        }
        if let Some(same_site) = self.same_site {
            write!(f, "; SameSite={same_site}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_reads_every_cookie_header_and_pair() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; sid=old"));
        headers.append(header::COOKIE, HeaderValue::from_static(" sid = new ;b=2"));
        assert_eq!(values(&headers, "sid").collect::<Vec<_>>(), ["old", "new"]);
        assert_eq!(get(&headers, "b"), Some("2"));
        assert_eq!(get(&headers, "c"), None);
    }

    #[test]
    fn set_cookie_builder() {
        let cookie = SetCookie::new("PHPSESSID", "x").path("/").http_only();
        assert_eq!(cookie.to_string(), "PHPSESSID=x; Path=/; HttpOnly");
        assert_eq!(
            SetCookie::removal("PHPSESSID")
                .path("/")
                .http_only()
                .to_string(),
            "PHPSESSID=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; Path=/; HttpOnly"
        );
        assert_eq!(
            SetCookie::new("t", "1")
                .secure()
                .same_site("Lax")
                .to_string(),
            "t=1; Secure; SameSite=Lax"
        );
        assert!(SetCookie::new("bad", "a\nb").header_value().is_none());
    }
}
