//! Orange pages: extraction and classification only, no HTTP, no browser.
//!
//! The login application is built by scripts, so the konnector reads it
//! from the browser's DOM (`BrowserSession::html`); plain HTTP only sees
//! its shell, or the maintenance page that replaces it.

use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::{ErrorCode, KonnectorError, Result};

use super::routes::sel;

/// The maintenance page's message, when `page` is the maintenance page.
pub fn maintenance(page: &HtmlPage) -> Result<Option<String>> {
    if !page.exists("div.maintenance")? {
        return Ok(None);
    }
    let title = page.text_of("div.maintenance h1").unwrap_or_default();
    let detail = page.text_of("div.maintenance p").unwrap_or_default();
    Ok(Some(
        [title, detail]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

/// The error the login form shows (`[role="alert"]`), if any.
pub fn alert(page: &HtmlPage) -> Result<Option<String>> {
    if !page.exists(sel::ALERT)? {
        return Ok(None);
    }
    let text = page.text_of(sel::ALERT)?;
    Ok((!text.is_empty()).then_some(text))
}

/// What a refusal shown by the login form means.
///
/// Orange blocks an account for a while after several wrong passwords
/// ("compte bloqué", "trop de tentatives"); every other refusal of the
/// identifier or the password is a wrong credential.
pub fn refusal(message: &str) -> KonnectorError {
    let lower = message.to_lowercase();
    if lower.contains("bloqu") || lower.contains("trop de tentatives") {
        KonnectorError::new(
            ErrorCode::LoginFailedTooManyAttempts,
            format!("Orange blocked the login for now: {message}"),
        )
    } else if lower.contains("maintenance") {
        KonnectorError::maintenance(format!("Orange's login is under maintenance: {message}"))
    } else {
        KonnectorError::login_failed(format!("Orange refused the login: {message}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAINTENANCE: &str = include_str!("../../../../fixtures/orange/maintenance.html");
    const REFUSED: &str = include_str!("../../../../fixtures/orange/login_refused.html");

    #[test]
    fn the_maintenance_page_is_recognised() {
        let page = HtmlPage::parse("https://login.orange.fr/", MAINTENANCE);
        let msg = maintenance(&page).unwrap().unwrap();
        assert!(msg.contains("maintenance"), "{msg}");
        let refused = HtmlPage::parse("https://login.orange.fr/", REFUSED);
        assert_eq!(maintenance(&refused).unwrap(), None);
    }

    #[test]
    fn a_refused_password_is_login_failed() {
        let page = HtmlPage::parse("https://login.orange.fr/", REFUSED);
        let msg = alert(&page).unwrap().unwrap();
        let err = refusal(&msg);
        assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
        let blocked = refusal("Votre compte est bloqué pour 15 minutes : trop de tentatives.");
        assert_eq!(blocked.code, ErrorCode::LoginFailedTooManyAttempts);
    }
}
