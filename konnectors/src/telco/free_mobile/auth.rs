//! Logging in to the Free Mobile customer area.
//!
//! The site answers a login with the same URL whatever happens, so the
//! outcome is read from the page: the home page (a logout link) means
//! success; the form with a flash message names the failure.

use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext};

use gleaner_framework::http::Response;

use super::pages::{HomePage, PageKind, classify, parse_home};
use super::routes;

/// How long the customer area keeps an idle session (PHP's default
/// `session.gc_maxlifetime` is 24 min; the site keeps sessions about
/// 30 min, and the sandbox expires them after 30 min too).
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Returns the logged-in home page: through the session the last run saved
/// when it is still alive (no login request at all), else by logging in.
/// Either way the session is saved for the next run.
pub async fn open_session(ctx: &mut RunContext) -> Result<HomePage> {
    if ctx.restore_session().await? {
        let url = ctx.url(routes::INVOICES)?;
        let resp = fetch(ctx, &url).await?;
        let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
        match classify(&page)? {
            PageKind::Home => {
                tracing::info!("saved session still alive: no login");
                ctx.save_session(SESSION_TTL, serde_json::json!({}));
                return parse_home(&page);
            }
            PageKind::Maintenance { message } => return Err(maintenance(&message)),
            PageKind::Login { .. } => {
                tracing::info!("saved session is dead: logging in again");
            }
        }
        ctx.clear_session();
    }
    login(ctx).await
}

/// Logs in and returns the home page it lands on, parsed. Once the site
/// shows the logged-in page, the session is kept for the next run, even if
/// reading the page then fails (a login that worked is worth keeping).
///
/// (A parsed `HtmlPage` is not `Send`, so pages never live across an
/// `.await`: each is parsed and read in one synchronous step.)
pub async fn login(ctx: &mut RunContext) -> Result<HomePage> {
    let url = ctx.url(routes::ACCOUNT)?;
    let first = fetch(ctx, &url).await?;
    {
        let page = HtmlPage::parse(first.url.as_str(), &first.text());
        match classify(&page)? {
            PageKind::Home => {
                ctx.save_session(SESSION_TTL, serde_json::json!({}));
                return parse_home(&page);
            }
            PageKind::Maintenance { message } => return Err(maintenance(&message)),
            PageKind::Login { .. } => {}
        }
    }
    let login = ctx.field("login")?;
    let password = ctx.secret("password")?;
    let resp = ctx
        .http()
        .post_form(
            &url,
            &[
                (routes::form::LOGIN, login),
                (routes::form::PASSWORD, password.expose()),
                routes::form::SUBMIT,
            ],
        )
        .await?;
    let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
    match classify(&page)? {
        PageKind::Home => {
            ctx.save_session(SESSION_TTL, serde_json::json!({}));
            parse_home(&page)
        }
        PageKind::Maintenance { message } => Err(maintenance(&message)),
        PageKind::Login { flash: Some(flash) } => Err(login_error(&flash)),
        PageKind::Login { flash: None } => Err(KonnectorError::vendor_down(format!(
            "the login form came back with no message (HTTP {}); the site may be failing",
            resp.status
        ))),
    }
}

/// GETs a customer-area page; a non-2xx answer is `VENDOR_DOWN`.
pub async fn fetch(ctx: &RunContext, url: &str) -> Result<Response> {
    let resp = ctx.http().get(url).await?;
    if !resp.status.is_success() {
        return Err(KonnectorError::vendor_down(format!(
            "{} answered {}",
            gleaner_framework::http::display_url(&resp.url),
            resp.status
        )));
    }
    Ok(resp)
}

/// GETs a page that must be the logged-in home page, and parses it.
pub async fn fetch_home(ctx: &RunContext, url: &str) -> Result<HomePage> {
    let resp = fetch(ctx, url).await?;
    let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
    match classify(&page)? {
        PageKind::Home => parse_home(&page),
        PageKind::Maintenance { message } => Err(maintenance(&message)),
        PageKind::Login { .. } => Err(KonnectorError::vendor_down(format!(
            "{} sent the login form back: the session was dropped",
            page.url()
        ))),
    }
}

/// Turns the login form's flash message into a typed error.
pub fn login_error(flash: &str) -> KonnectorError {
    let lower = flash.to_lowercase();
    if lower.contains("bloqu") {
        KonnectorError::new(
            ErrorCode::LoginFailedTooManyAttempts,
            format!("Free Mobile blocked logins for now: \"{flash}\""),
        )
    } else if lower.contains("incorrect") {
        KonnectorError::login_failed(format!(
            "Free Mobile refused the login or password: \"{flash}\""
        ))
    } else if lower.contains("restreint") {
        KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("Free Mobile restricted the customer area: \"{flash}\""),
        )
    } else {
        KonnectorError::vendor_down(format!(
            "Free Mobile showed an unexpected message at login: \"{flash}\""
        ))
    }
}

fn maintenance(message: &str) -> KonnectorError {
    KonnectorError::maintenance(format!(
        "Free Mobile's customer area is in maintenance: \"{message}\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_messages_map_to_codes() {
        let code = |s| login_error(s).code;
        assert_eq!(
            code("Votre nom d'utilisateur ou mot de passe incorrect"),
            ErrorCode::LoginFailed
        );
        assert_eq!(
            code("Les connexions à votre compte sont temporairement bloquées"),
            ErrorCode::LoginFailedTooManyAttempts
        );
        assert_eq!(
            code("Accès restreint suite à un impayé"),
            ErrorCode::UserActionNeeded
        );
        assert_eq!(code("Erreur inconnue"), ErrorCode::VendorDown);
    }
}
