//! The walls every request passes: a session for every page but the login
//! and the static files, a CSRF token on every POST, and the headers on
//! every response (a strict Content-Security-Policy: no inline script, no
//! other origin).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::auth::Session;
use super::render::{self, WebError};
use super::state::WebState;

/// The Content-Security-Policy of every response: this origin's script,
/// styles and images only, no inline script or style, no framing, forms
/// posting only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest form body accepted (a konnector's fields are at most 4 KiB
/// each).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// Lets a request with a live session through (the [`Session`] in its
/// extensions); any other gets the login page, never data.
pub async fn require_session(
    State(state): State<Arc<WebState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.auth.session(request.headers()) {
        Some(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        None if arrived_from_another_site(&request) => bounce(&request),
        None => render::login_page(&state, StatusCode::UNAUTHORIZED, None),
    }
}

/// Whether the browser says this GET is a navigation from another site
/// (`Sec-Fetch-Site: cross-site`): a provider sending the person back after
/// consent, a link in a mail. The `SameSite=Strict` session cookie is not
/// sent with such a request, whoever is logged in.
fn arrived_from_another_site(request: &Request) -> bool {
    request.method() == axum::http::Method::GET
        && request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site")
}

/// Sends the browser to the same URL again from a page of this site: that
/// second request is same-origin, so the session cookie comes with it (and
/// without a session it gets the login page: it is not cross-site any
/// more, so there is no loop). Nothing of the person's data is in this
/// page, only the address the browser asked for.
fn bounce(request: &Request) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("/");
    let escaped = target
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Gleaner</title>\
         <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main>\
         <p><a href=\"{escaped}\">Continue to Gleaner</a></p></main></body></html>"
    );
    let mut response = (StatusCode::OK, axum::response::Html(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("0;url={target}")) {
        response.headers_mut().insert("refresh", value);
    }
    response
}

/// Adds the security headers to every response.
pub async fn headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    // A handler may only set a stricter policy (a downloaded file's
    // `sandbox`, which still starts with `default-src 'none'`).
    let stricter = h
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(CSP));
    if !stricter {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A POSTed form whose `csrf` field matched its session's token, with the
/// session that sent it. Any other POST is refused (403) before its handler
/// runs.
pub struct CsrfForm {
    /// The session that sent the form.
    pub session: Session,
    fields: Vec<(String, String)>,
}

impl CsrfForm {
    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every field but the CSRF token, in the order sent.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .filter(|(k, _)| k != "csrf")
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether a checkbox (or any field) was sent.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<S: Send + Sync> FromRequest<S> for CsrfForm {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(session) = request.extensions().get::<Session>().cloned() else {
            return Err(
                WebError::Forbidden("this form needs a session; log in again".into())
                    .into_response(),
            );
        };
        let urlencoded = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !urlencoded {
            return Err(WebError::BadRequest("expected a form".into()).into_response());
        }
        let body = axum::body::to_bytes(Body::new(request.into_body()), MAX_FORM_BYTES)
            .await
            .map_err(|_| WebError::BadRequest("the form is too large".into()).into_response())?;
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let given = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_bytes())
            .unwrap_or_default();
        if given.is_empty() || !bool::from(given.ct_eq(session.csrf.as_bytes())) {
            return Err(WebError::Forbidden(
                "this form's security token is missing or stale; go back, reload the page and send it again".into(),
            )
            .into_response());
        }
        Ok(Self { session, fields })
    }
}
