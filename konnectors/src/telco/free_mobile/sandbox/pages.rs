//! The site's pages: the fixtures of `fixtures/free-mobile/` (embedded at
//! compile time, so the binary works from any directory), how they are
//! served (the headers of a PHP site behind nginx) and filled in.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use gleaner_sandbox_kit::FaultPages;

use super::Scenario;

pub(super) const LOGIN_HTML: &str = include_str!("../../../../../fixtures/free-mobile/login.html");
pub(super) const LOGIN_FAILED_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/login_failed.html");
pub(super) const LOGIN_BLOCKED_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/login_blocked.html");
pub(super) const MAINTENANCE_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/maintenance.html");
pub(super) const HOME_LINE1_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/home_line1.html");
pub(super) const HOME_LINE2_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/home_line2.html");
pub(super) const HOME_CHANGED_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/home_changed.html");
pub(super) const NOT_FOUND_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/not_found.html");
pub(super) const VERIFICATION_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/verification.html");
pub(super) const VERIFICATION_WRONG_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/verification_wrong.html");
pub(super) const VERIFICATION_LOCKED_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/verification_locked.html");
pub(super) const LOGIN_CODE_EXPIRED_HTML: &str =
    include_str!("../../../../../fixtures/free-mobile/login_code_expired.html");

const UNAVAILABLE_HTML: &str = "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request. Please try again later.</p></body></html>\n";
const TOO_MANY_HTML: &str = "<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head>\n<body><h1>Too Many Requests</h1><p>Trop de requêtes, veuillez réessayer dans quelques instants.</p></body></html>\n";
pub(super) const BAD_REQUEST_HTML: &str = "<!DOCTYPE html>\n<html><head><title>400 Bad Request</title></head>\n<body><h1>Bad Request</h1></body></html>\n";
pub(super) const METHOD_NOT_ALLOWED_HTML: &str = "<!DOCTYPE html>\n<html><head><title>405 Not Allowed</title></head>\n<body><h1>405 Not Allowed</h1></body></html>\n";
pub(super) const INTERNAL_ERROR_HTML: &str = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n<body><h1>Internal Server Error</h1></body></html>\n";

/// Value of the `Server` header.
pub(super) const SERVER: &str = "nginx";

/// The headers a PHP site behind nginx sends with every page.
const PAGE_HEADERS: &[(&str, &str)] = &[
    ("server", SERVER),
    ("cache-control", "no-store, no-cache, must-revalidate"),
    ("pragma", "no-cache"),
    ("expires", "Thu, 19 Nov 1981 08:52:00 GMT"),
    ("x-frame-options", "SAMEORIGIN"),
];

/// The account's lines: (switch-user id, home page when that line is current).
/// The first one is current right after login.
pub(super) const LINES: [(&str, &str); 2] =
    [("12345678", HOME_LINE1_HTML), ("87654321", HOME_LINE2_HTML)];

/// How the kit's fault switches look on this site: nginx's 429 and 503
/// pages, and the maintenance page (a 200) over the customer area.
pub(super) fn fault_pages() -> FaultPages {
    FaultPages {
        content_type: "text/html; charset=UTF-8",
        too_many_requests: TOO_MANY_HTML,
        unavailable: UNAVAILABLE_HTML,
        server_error: INTERNAL_ERROR_HTML,
        maintenance: MAINTENANCE_HTML,
        maintenance_status: StatusCode::OK,
        maintenance_paths: &["/account"],
        headers: PAGE_HEADERS,
    }
}

/// An HTML response with the headers a PHP site behind nginx sends.
pub(super) fn html(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = gleaner_sandbox_kit::respond::html(status, body);
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

/// A `302` to `location` (a 400 page if it cannot be a header).
pub(super) fn redirect(location: &str) -> Response {
    gleaner_sandbox_kit::respond::redirect(location)
        .unwrap_or_else(|| html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML))
}

/// The home page of `line`, or the redesigned one.
pub(super) fn home_page(scenario: Scenario, line: &str) -> Response {
    if scenario == Scenario::ChangedMarkup {
        return html(StatusCode::OK, HOME_CHANGED_HTML);
    }
    let page = LINES
        .iter()
        .find(|(id, _)| *id == line)
        .map_or(HOME_LINE1_HTML, |(_, page)| page);
    html(StatusCode::OK, page)
}

/// A verification page with its token and remaining tries filled in.
pub(super) fn verification_page(template: &str, token: &str, remaining: u32) -> Response {
    html(
        StatusCode::OK,
        template
            .replace("{{token}}", token)
            .replace("{{remaining}}", &remaining.to_string()),
    )
}

/// `405 Not Allowed` with `Allow: GET, POST`.
pub(super) fn method_not_allowed() -> Response {
    let mut response = html(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED_HTML);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    response
}
