//! The layout every page extends, and errors as pages.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::auth::{self, Session};
use super::state::WebState;

/// Which part of the site a page belongs to (the highlighted link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The accounts (home).
    Accounts,
    /// The catalogue of konnectors.
    Catalogue,
    /// The documents and files.
    Documents,
    /// None (login, errors).
    None,
}

/// What the layout (`base.html`) needs from every page: a field named
/// `layout` of this type.
pub struct Layout {
    /// The page's title (before " · Gleaner").
    pub title: String,
    /// The session's CSRF token, for every form of the page.
    pub csrf: String,
    /// The highlighted navigation link.
    pub nav: Nav,
    /// A one-time message from the previous action ("account enabled").
    pub flash: Option<String>,
    /// Whether the navigation and the logout button are shown.
    pub logged_in: bool,
}

impl Layout {
    /// The layout of a page seen in `session` (takes its pending message).
    pub fn new(state: &WebState, session: &Session, title: impl Into<String>, nav: Nav) -> Self {
        Self {
            title: title.into(),
            csrf: session.csrf.clone(),
            nav,
            flash: state.auth.take_flash(session),
            logged_in: true,
        }
    }

    /// The layout of a page seen without a session.
    pub fn anonymous(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            csrf: String::new(),
            nav: Nav::None,
            flash: None,
            logged_in: false,
        }
    }

    /// Whether `nav` is this page's part of the site (for `aria-current`).
    pub fn is(&self, nav: Nav) -> bool {
        self.nav == nav
    }
}

/// Renders a page, or the error page if its template fails.
pub fn page<T: Template>(template: &T) -> Response {
    page_with_status(StatusCode::OK, template)
}

/// Renders a page with a status (a form sent back with its refusals is
/// 422).
pub fn page_with_status<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            WebError::Internal(anyhow::anyhow!("the page failed to render: {e}")).into_response()
        }
    }
}

/// What a handler can fail with; each is an error page with its status.
#[derive(Debug)]
pub enum WebError {
    /// No such page, account, document or file.
    NotFound(String),
    /// The request makes no sense (a form without its fields).
    BadRequest(String),
    /// Refused: no CSRF token, a stale one, a form from elsewhere.
    Forbidden(String),
    /// Gleaner failed; the message names the cause (secrets masked).
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

impl From<gleaner_framework::KonnectorError> for WebError {
    fn from(e: gleaner_framework::KonnectorError) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

impl From<gleaner_scheduler::SchedulerError> for WebError {
    fn from(e: gleaner_scheduler::SchedulerError) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "Refused", m),
            Self::Internal(e) => {
                let text = crate::describe(&e, 0);
                tracing::error!(error = %gleaner_framework::redact::scrub(&text), "a page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    text,
                )
            }
        };
        let page = ErrorPage {
            layout: Layout::anonymous(heading),
            status: status.as_u16(),
            heading,
            message: gleaner_framework::redact::scrub(&message).into_owned(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, message).into_response(),
        }
    }
}

/// The fallback: a 404 page for any other path (with no data, session or
/// not).
pub async fn not_found() -> Response {
    WebError::NotFound("there is no such page".into()).into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    passphrase: bool,
    login_csrf: String,
    problem: Option<&'static str>,
}

/// The login page (what any request without a session gets), with the
/// double-submit cookie of its passphrase form.
pub fn login_page(state: &WebState, status: StatusCode, problem: Option<&'static str>) -> Response {
    let (token, cookie) = auth::login_form_token(state);
    let page = LoginPage {
        layout: Layout::anonymous("Log in"),
        passphrase: state.auth.has_passphrase(),
        login_csrf: token,
        problem,
    };
    let mut response = page_with_status(status, &page);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}
