//! The Free Mobile site map: every URL the konnector visits, in one place.
//!
//! All paths are relative to the base URL (`https://mobile.free.fr`, or a
//! sandbox on loopback).

/// The customer area: the login form when logged out, the home page (with
/// the current line's invoices) when logged in. The login form posts here.
pub const ACCOUNT: &str = "/account/";

/// The new-device verification form posts the emailed code here.
pub const VERIFY: &str = "/account/verification";

/// The invoices page: the home page when the session is alive, a redirect
/// to the login form when it is dead. A cheap session test.
pub const INVOICES: &str = "/account/conso-et-factures";

/// Ends the session (not used: the session is kept for the next run).
pub const LOGOUT: &str = "/account/?logout";

/// Makes another line of the account current and shows its home page.
pub fn switch_user(line_id: &str) -> String {
    format!("/account/?switch-user={line_id}")
}

/// The login form's field names.
pub mod form {
    /// The 8-digit customer id.
    pub const LOGIN: &str = "login-ident";
    /// The password.
    pub const PASSWORD: &str = "login-pwd";
    /// The submit button, sent as the browser does.
    pub const SUBMIT: (&str, &str) = ("bt-login", "1");
    /// The verification code (6 digits).
    pub const OTP: &str = "otp";
    /// The verification form's hidden anti-forgery token.
    pub const OTP_TOKEN: &str = "otp-token";
    /// "Trust this device", ticked as the page has it, so later logins are
    /// not asked for a code again.
    pub const OTP_TRUST: (&str, &str) = ("otp-trust", "1");
    /// The verification form's submit button.
    pub const OTP_SUBMIT: (&str, &str) = ("bt-otp", "1");
}
