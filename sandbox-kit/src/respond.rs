//! Small response builders.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// A `text/html; charset=UTF-8` answer.
pub fn html(status: StatusCode, body: impl Into<Body>) -> Response {
    with_type(status, "text/html; charset=UTF-8", body)
}

/// An `application/json` answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    with_type(status, "application/json", value.to_string())
}

/// An answer with the given `Content-Type`.
pub fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A `302 Found` to `location`; `None` when it cannot be a header value.
pub fn redirect(location: &str) -> Option<Response> {
    let location = HeaderValue::from_str(location).ok()?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(header::LOCATION, location);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_status_and_headers() {
        let r = html(StatusCode::OK, "<p>");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=UTF-8"
        );
        let r = json(StatusCode::BAD_REQUEST, &serde_json::json!({"a": 1}));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = redirect("/account/").expect("valid");
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[header::LOCATION], "/account/");
        assert!(redirect("a\nb").is_none());
    }
}
