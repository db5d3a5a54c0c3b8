//! `application/x-www-form-urlencoded` bodies and query strings.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};

/// Decodes form pairs; when a name repeats, the first value wins (as PHP's
/// `$_POST` does not, but as the sites the sandboxes imitate are read).
pub fn parse(input: &[u8]) -> HashMap<String, String> {
    let mut pairs = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(input) {
        pairs
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    pairs
}

/// Every pair, in order, repeats kept.
pub fn parse_all(input: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(input)
        .into_owned()
        .collect::<Vec<_>>()
}

/// Whether the request says its body is a URL-encoded form.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn parse_decodes_and_keeps_the_first_value() {
        let form = parse(b"login-ident=12345678&login-pwd=a%26b+c&login-ident=other&empty=");
        assert_eq!(form["login-ident"], "12345678");
        assert_eq!(form["login-pwd"], "a&b c");
        assert_eq!(form["empty"], "");
        assert_eq!(parse_all(b"a=1&a=2").len(), 2);
        assert!(parse(b"").is_empty());
    }

    #[test]
    fn content_type_check() {
        let mut headers = HeaderMap::new();
        assert!(!is_form(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        );
        assert!(is_form(&headers));
    }
}
