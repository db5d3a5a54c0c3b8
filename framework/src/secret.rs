//! The secret type: credentials and tokens that must never be printed.
//!
//! [`Secret`] has no `Debug` and no `Display`, so a secret cannot end up in a
//! log line, an error message or a snapshot by accident: the only way to read
//! it is [`Secret::expose`], which is easy to find in review. Its memory is
//! zeroed on drop (through `secrecy`).

use secrecy::{ExposeSecret, SecretString};

/// A secret string: a password, a token, a session cookie.
///
/// Deliberately implements neither `Debug`, `Display` nor `Serialize`.
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value and registers it with [`crate::redact`], so it is
    /// masked in every log line and error message from now on.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::redact::register(&value);
        Self(SecretString::from(value))
    }

    /// Reads the value. Every call site is a place where a secret leaves its
    /// box: keep them few (request bodies, the vault).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Self::new(self.expose())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}
