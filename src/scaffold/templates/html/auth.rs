//! Logging in to the {{name}} customer area.
//!
//! The outcome is read from the page the login post leads to: a logged-in
//! page (a logout link) means success; the form again with a message
//! names the failure. An unknown page is never a wrong password: it is
//! `UNKNOWN_ERROR.PAGE_CHANGED` (from [`pages::classify`]).

use gleaner_framework::http::{Response, display_url};
use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::{KonnectorError, Result, RunContext};

use super::pages::{self, PageKind};
use super::routes;

/// Logs in with the account's `login` and `password`.
pub async fn login(ctx: &RunContext) -> Result<()> {
    let url = ctx.url(routes::LOGIN)?;
    // The form first, as a browser does: the site may set a cookie there.
    fetch(ctx, &url).await?;
    let resp = {
        let login = ctx.field("login")?;
        let password = ctx.secret("password")?;
        ctx.http()
            .post(&url)
            .form(&[
                (routes::form::LOGIN, login),
                (routes::form::PASSWORD, password.expose()),
            ])
            .send()
            .await?
    };
    let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
    match pages::classify(&page)? {
        PageKind::LoggedIn => Ok(()),
        PageKind::Maintenance { message } => Err(KonnectorError::maintenance(format!(
            "{{name}} is in maintenance: \"{message}\""
        ))),
        PageKind::Login { flash: Some(flash) } => Err(login_error(&flash)),
        PageKind::Login { flash: None } => Err(KonnectorError::vendor_down(format!(
            "{} showed the login form again with no message (HTTP {})",
            page.url(),
            resp.status
        ))),
    }
}

/// Turns the login form's message into a typed error.
pub fn login_error(flash: &str) -> KonnectorError {
    if flash.to_lowercase().contains("incorrect") {
        KonnectorError::login_failed(format!(
            "{{name}} refused the login or password: \"{flash}\""
        ))
    } else {
        KonnectorError::vendor_down(format!(
            "{{name}} showed an unexpected message at login: \"{flash}\""
        ))
    }
}

/// GETs a page; a non-2xx answer is `VENDOR_DOWN`.
pub async fn fetch(ctx: &RunContext, url: &str) -> Result<Response> {
    let resp = ctx.http().get(url).send().await?;
    if !resp.status.is_success() {
        return Err(KonnectorError::vendor_down(format!(
            "{} answered {}",
            display_url(&resp.url),
            resp.status
        )));
    }
    Ok(resp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gleaner_framework::ErrorCode;

    #[test]
    fn login_messages_map_to_codes() {
        assert_eq!(
            login_error("Identifiant ou mot de passe incorrect").code,
            ErrorCode::LoginFailed
        );
        assert_eq!(login_error("Erreur inconnue").code, ErrorCode::VendorDown);
    }
}
