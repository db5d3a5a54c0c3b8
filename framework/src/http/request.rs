//! The request builder: any method, headers, query, a JSON, form or bytes
//! body, bearer or basic credentials.
//!
//! ```no_run
//! # async fn f(ctx: &gleaner_framework::RunContext) -> gleaner_framework::Result<()> {
//! # use gleaner_framework::http::Method;
//! let token = ctx.access_token().await?;
//! let resp = ctx
//!     .http()
//!     .request(Method::PUT, &ctx.url("/consents/42")?)
//!     .bearer(&token)
//!     .header("X-Request-ID", "6f1c")
//!     .query(&[("lang", "fr")])
//!     .json(&serde_json::json!({ "access": "allAccounts" }))
//!     .send()
//!     .await?;
//! # let _ = resp; Ok(()) }
//! ```
//!
//! A builder can also be awaited directly (`http.get(url).await`), which is
//! `send()`. Mistakes (a header name that is not one, a value that does not
//! serialize) are kept and returned by `send`, so a chain never panics.
//!
//! Secrets: [`RequestBuilder::bearer`], [`RequestBuilder::basic`] and
//! [`RequestBuilder::secret_header`] register the header's value with
//! [`crate::redact`] and mark it sensitive; the client never logs header
//! values or bodies, and cassettes scrub them (see [`crate::cassette`]).

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::{HttpClient, Response, strip_query};
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::secret::Secret;

/// A request being built; [`RequestBuilder::send`] (or `.await`) sends it
/// through every policy of its [`HttpClient`].
#[must_use = "a request does nothing until it is sent (`.send().await`)"]
pub struct RequestBuilder<'a> {
    client: &'a HttpClient,
    method: Method,
    url: String,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    body: Bytes,
    error: Option<KonnectorError>,
}

impl HttpClient {
    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            url: url.to_owned(),
            headers: HeaderMap::new(),
            query: Vec::new(),
            body: Bytes::new(),
            error: None,
        }
    }

    /// `GET url`: a builder, or the response when awaited directly.
    pub fn get(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::GET, url)
    }

    /// `POST url`.
    pub fn post(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, url)
    }

    /// `PUT url`.
    pub fn put(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::PUT, url)
    }

    /// `PATCH url`.
    pub fn patch(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::PATCH, url)
    }

    /// `DELETE url`.
    pub fn delete(&self, url: &str) -> RequestBuilder<'_> {
        self.request(Method::DELETE, url)
    }
}

fn invalid(message: String) -> KonnectorError {
    KonnectorError::new(ErrorCode::UnknownError, message)
}

impl<'a> RequestBuilder<'a> {
    fn keep(&mut self, e: KonnectorError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn set(&mut self, name: &str, value: HeaderValue, append: bool) {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) if append => {
                self.headers.append(n, value);
            }
            Ok(n) => {
                self.headers.insert(n, value);
            }
            Err(_) => self.keep(invalid(format!("`{name}` is not a header name"))),
        }
    }

    /// Adds a header (a second call with the same name adds another value).
    /// For a secret value use [`RequestBuilder::secret_header`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(v) => self.set(name, v, true),
            Err(_) => self.keep(invalid(format!(
                "the value of header `{name}` is not a valid header value"
            ))),
        }
        self
    }

    /// Sets a header whose value is a secret: registered with
    /// [`crate::redact`], marked sensitive, scrubbed from cassettes by the
    /// run's secrets.
    pub fn secret_header(mut self, name: &str, value: &Secret) -> Self {
        crate::redact::register(value.expose());
        match HeaderValue::from_str(value.expose()) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.set(name, v, false);
            }
            Err(_) => self.keep(invalid(format!(
                "the value of header `{name}` is not a valid header value"
            ))),
        }
        self
    }

    /// Adds several headers at once.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        for (name, value) in &headers {
            self.headers.append(name.clone(), value.clone());
        }
        self
    }

    /// Appends query parameters (encoded) to the URL.
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        self.query.extend(
            pairs
                .iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.body = Bytes::from(body);
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => self.keep(invalid(format!("cannot encode the JSON body: {e}"))),
        }
        self
    }

    /// An `application/x-www-form-urlencoded` body. Values may be secrets:
    /// bodies are never logged.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .finish();
        self.body = Bytes::from(body);
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self
    }

    /// A body of any type.
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> Self {
        self.body = body.into();
        match HeaderValue::from_str(content_type) {
            Ok(v) => {
                self.headers.insert(CONTENT_TYPE, v);
            }
            Err(_) => self.keep(invalid(format!(
                "`{content_type}` is not a valid Content-Type"
            ))),
        }
        self
    }

    /// `Authorization: Bearer <token>`; the token is never logged.
    pub fn bearer(self, token: &Secret) -> Self {
        let value = Secret::new(format!("Bearer {}", token.expose()));
        self.secret_header(AUTHORIZATION.as_str(), &value)
    }

    /// `Authorization: Basic <base64(user:password)>`; the encoded value is
    /// registered with [`crate::redact`] and never logged.
    pub fn basic(self, user: &str, password: Option<&Secret>) -> Self {
        let pair = match password {
            Some(p) => format!("{user}:{}", p.expose()),
            None => format!("{user}:"),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
        let value = Secret::new(format!("Basic {encoded}"));
        crate::redact::register(&encoded);
        self.secret_header(AUTHORIZATION.as_str(), &value)
    }

    /// Sends the request through the client's policies (allow-list, budget,
    /// retries, redirects, cookies) and reads the response whole. See
    /// [`HttpClient::send`] for what is retried.
    pub async fn send(self) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut url = Url::parse(&self.url)
            .map_err(|e| invalid(format!("`{}` is not a URL: {e}", strip_query(&self.url))))?;
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        self.client
            .execute(self.method, url, self.headers, self.body)
            .await
    }
}

impl<'a> IntoFuture for RequestBuilder<'a> {
    type Output = Result<Response>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Response>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
