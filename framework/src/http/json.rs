//! Typed JSON decoding whose error names the JSON path and the URL.
//!
//! [`Response::json`] decodes through `serde_path_to_error` (the crate
//! axum uses for the same purpose; already in the dependency tree), which
//! records where in the document the decoder was when it failed:
//!
//! - a body that is not JSON (cut, an HTML error page) is `VENDOR_DOWN`:
//!   the provider answered badly, a retry may help;
//! - JSON that parses but does not fit the konnector's type (a field
//!   renamed, a number become a string) is
//!   `UNKNOWN_ERROR.SCHEMA_CHANGED`, not retried: the message names the
//!   path (`data.items[3].amount`), the URL without its query, and the
//!   decoder's complaint with any registered secret masked.

use super::{Response, display_url};
use crate::error::{ErrorCode, KonnectorError, Locator, Result};

impl Response {
    /// The body decoded as `T`. Malformed JSON is `VENDOR_DOWN`; JSON that
    /// does not fit `T` is `UNKNOWN_ERROR.SCHEMA_CHANGED` naming the JSON
    /// path and the URL.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        decode(&self.body, &self.url)
    }
}

/// Decodes `body` (from `url`, for messages) as `T`.
///
/// The plain decoder first: tracking the path costs about a fifth of the
/// decoding time (`benches/bank_decode.rs`), and only a failure needs it.
/// A body that fails is decoded again with the path tracked, for the
/// error; both decoders accept and refuse exactly the same input.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(body: &[u8], url: &url::Url) -> Result<T> {
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value =
        serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| path_error::<T>(e, url))?;
    de.end().map_err(|e| {
        KonnectorError::vendor_down(format!("{} answered malformed JSON: {e}", display_url(url)))
    })?;
    Ok(value)
}

fn path_error<T>(
    e: serde_path_to_error::Error<serde_json::Error>,
    url: &url::Url,
) -> KonnectorError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        return KonnectorError::vendor_down(format!(
            "{} answered malformed JSON: {inner}",
            display_url(url)
        ));
    }
    let ty = short_type(std::any::type_name::<T>());
    let at = if path == "." {
        "at the top level".to_owned()
    } else {
        format!("at `{path}`")
    };
    // The decoder's complaint can quote a value: registered secrets are
    // masked by KonnectorError::new.
    KonnectorError::new(
        ErrorCode::SchemaChanged,
        format!(
            "{} answered JSON that does not fit {ty} {at}: {inner}",
            display_url(url)
        ),
    )
    .with_locator(Locator::JsonPath {
        path,
        url: display_url(url),
    })
}

/// A type name without module paths: `Vec<Bill>`, not
/// `alloc::vec::Vec<my_konnector::api::Bill>`.
fn short_type(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut ident = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            ident.clear();
        } else if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else {
            out.push_str(&ident);
            ident.clear();
            out.push(c);
        }
    }
    out.push_str(&ident);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(
            super::short_type("alloc::vec::Vec<my_k::api::Bill>"),
            "Vec<Bill>"
        );
        assert_eq!(super::short_type("u64"), "u64");
    }
}
