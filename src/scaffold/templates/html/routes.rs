//! The {{name}} site map: every URL the konnector visits, in one place.
//!
//! All paths are relative to the base URL (the manifest's `base_url`, or a
//! sandbox on loopback).

/// The login form (GET) and where it posts (POST).
pub const LOGIN: &str = "/login";

/// The bills page: the list of invoices, with a link to each PDF.
pub const BILLS: &str = "/bills";

/// The login form's field names.
pub mod form {
    /// The customer identifier.
    pub const LOGIN: &str = "login";
    /// The password.
    pub const PASSWORD: &str = "password";
}
