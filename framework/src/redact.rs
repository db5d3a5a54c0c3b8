//! Redaction: every secret value the process has seen is masked in text
//! that leaves it (log lines, error messages, job records).
//!
//! [`crate::Secret::new`] registers its value here, so credentials opened
//! from the vault and tokens obtained at run time are covered without the
//! konnector doing anything. [`scrub`] replaces every registered value (and
//! its URL-encoded form) by `[REDACTED]`.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

/// What a masked value becomes.
pub const MASK: &str = "[REDACTED]";

/// Values shorter than this are not registered: masking every `1` or `ab`
/// would garble every log line, and such values are not secrets.
pub const MIN_LEN: usize = 4;

fn registry() -> &'static RwLock<Vec<String>> {
    static REGISTRY: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers a secret value to mask from now on.
pub fn register(value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    let mut forms = vec![value.to_owned()];
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    if encoded != value {
        forms.push(encoded);
    }
    let mut reg = match registry().write() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    for form in forms {
        if !reg.contains(&form) {
            reg.push(form);
        }
    }
    // Longest first, so a secret containing another is masked whole.
    reg.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// The text with every registered secret masked.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let reg = match registry().read() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut out = Cow::Borrowed(text);
    for value in reg.iter() {
        if out.contains(value.as_str()) {
            out = Cow::Owned(out.replace(value.as_str(), MASK));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_plain_and_url_encoded() {
        register("s3cr&t value");
        assert_eq!(scrub("pw=s3cr&t value!"), "pw=[REDACTED]!");
        assert_eq!(scrub("/x?pw=s3cr%26t+value"), "/x?pw=[REDACTED]");
        assert_eq!(scrub("nothing here"), "nothing here");
    }

    #[test]
    fn short_values_are_not_registered() {
        register("ab");
        assert_eq!(scrub("abc"), "abc");
    }
}
