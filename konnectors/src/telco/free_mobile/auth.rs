//! Logging in to the Free Mobile customer area.
//!
//! The site answers a login with the same URL whatever happens, so the
//! outcome is read from the page: the home page (a logout link) means
//! success; the form with a flash message names the failure.
//!
//! A login from a device the site does not know yet may be answered with
//! the **new-device verification** page: a code was emailed, and the form
//! asks for it. The konnector asks the person through
//! [`RunContext::two_factor`] (`email`, with the masked address as hint),
//! posts the code with "trust this device" ticked, and asks again after a
//! wrong code; the context gives up after three codes with
//! `USER_ACTION_NEEDED.WRONG_TWOFA_CODE`. The trusted-device cookie lives in
//! the HTTP client's jar, so later logins through the same jar are not asked.

use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, TwoFactorKind};

use gleaner_framework::http::Response;

use super::pages::{HomePage, PageKind, Verification, classify, parse_home};
use super::routes;

/// Where a login or a code submission led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Logged in: the home page, parsed.
    Home(Box<HomePage>),
    /// The verification form: a code is wanted (again, after a wrong one).
    Verify(Verification),
}

/// How long the customer area keeps an idle session (PHP's default
/// `session.gc_maxlifetime` is 24 min; the site keeps sessions about
/// 30 min, and the sandbox expires them after 30 min too).
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Returns the logged-in home page: through the session the last run saved
/// when it is still alive (no login request at all), else by logging in.
/// Either way the session (with the trusted-device cookie, if the site set
/// one) is saved for the next run.
pub async fn open_session(ctx: &mut RunContext) -> Result<HomePage> {
    if ctx.restore_session().await? {
        let url = ctx.url(routes::INVOICES)?;
        let resp = fetch(ctx, &url).await?;
        {
            let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
            match classify(&page)? {
                PageKind::Home => {
                    tracing::info!("saved session still alive: no login");
                    let home = parse_home(&page);
                    ctx.save_session(SESSION_TTL, serde_json::json!({}));
                    return home;
                }
                PageKind::Maintenance { message } => return Err(maintenance(&message)),
                PageKind::VerificationLocked { message } => return Err(locked_error(&message)),
                PageKind::Login { .. } | PageKind::Verification(_) => {
                    tracing::info!("saved session is dead: logging in again");
                }
            }
        }
        // Only the session is dead: the jar keeps the trusted-device
        // cookie, so the new login is not asked for a code again.
    }
    let home = login(ctx).await?;
    ctx.save_session(SESSION_TTL, serde_json::json!({}));
    Ok(home)
}

/// Logs in and returns the home page it lands on, parsed.
///
/// (A parsed `HtmlPage` is not `Send`, so pages never live across an
/// `.await`: each is parsed and read in one synchronous step.)
pub async fn login(ctx: &mut RunContext) -> Result<HomePage> {
    let url = ctx.url(routes::ACCOUNT)?;
    let first = fetch(ctx, &url).await?;
    {
        let page = HtmlPage::parse(first.url.as_str(), &first.text());
        match classify(&page)? {
            PageKind::Home => return parse_home(&page),
            PageKind::Maintenance { message } => return Err(maintenance(&message)),
            PageKind::Login { .. } | PageKind::Verification(_) => {}
            PageKind::VerificationLocked { message } => return Err(locked_error(&message)),
        }
    }
    let resp = {
        let login = ctx.field("login")?;
        let password = ctx.secret("password")?;
        ctx.http()
            .post_form(
                &url,
                &[
                    (routes::form::LOGIN, login),
                    (routes::form::PASSWORD, password.expose()),
                    routes::form::SUBMIT,
                ],
            )
            .await?
    };
    let (step, logged_in) = {
        let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
        let logged_in = matches!(classify(&page), Ok(PageKind::Home));
        (after_login(&page, resp.status.as_u16()), logged_in)
    };
    if logged_in {
        // A login that worked is kept for the next run even if reading
        // the page fails now.
        ctx.save_session(SESSION_TTL, serde_json::json!({}));
    }
    match step? {
        Step::Home(home) => Ok(*home),
        Step::Verify(challenge) => verify_device(ctx, challenge).await,
    }
}

/// Answers the new-device verification: asks the person for the emailed
/// code, posts it, and asks again while the site says the code is wrong.
async fn verify_device(ctx: &mut RunContext, mut challenge: Verification) -> Result<HomePage> {
    let url = ctx.url(routes::VERIFY)?;
    loop {
        tracing::info!("Free Mobile asks for the code it emailed");
        let code = ctx
            .two_factor(TwoFactorKind::Email, challenge.hint.as_deref())
            .await?;
        let resp = ctx
            .http()
            .post_form(
                &url,
                &[
                    (routes::form::OTP_TOKEN, challenge.token.as_str()),
                    (routes::form::OTP, code.expose().trim()),
                    routes::form::OTP_TRUST,
                    routes::form::OTP_SUBMIT,
                ],
            )
            .await?;
        if !resp.status.is_success() {
            return Err(KonnectorError::vendor_down(format!(
                "{} answered {} to the verification code",
                gleaner_framework::http::display_url(&resp.url),
                resp.status
            )));
        }
        let step = {
            let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
            after_code(&page)?
        };
        match step {
            Step::Home(home) => return Ok(*home),
            Step::Verify(next) => {
                tracing::info!("Free Mobile refused the code");
                challenge = next;
            }
        }
    }
}

/// Reads the page a login post led to.
pub fn after_login(page: &HtmlPage, status: u16) -> Result<Step> {
    match classify(page)? {
        PageKind::Home => Ok(Step::Home(Box::new(parse_home(page)?))),
        PageKind::Verification(challenge) => Ok(Step::Verify(challenge)),
        PageKind::VerificationLocked { message } => Err(locked_error(&message)),
        PageKind::Maintenance { message } => Err(maintenance(&message)),
        PageKind::Login { flash: Some(flash) } => Err(login_error(&flash)),
        PageKind::Login { flash: None } => Err(KonnectorError::vendor_down(format!(
            "the login form came back with no message (HTTP {status}); the site may be failing"
        ))),
    }
}

/// Reads the page a verification code post led to: the home page (code
/// accepted), the form again with a "wrong code" error (ask again), or a
/// typed error.
pub fn after_code(page: &HtmlPage) -> Result<Step> {
    match classify(page)? {
        PageKind::Home => Ok(Step::Home(Box::new(parse_home(page)?))),
        PageKind::Verification(challenge) => match &challenge.flash {
            Some(flash) if is_wrong_code(flash) => Ok(Step::Verify(challenge)),
            Some(flash) => Err(KonnectorError::vendor_down(format!(
                "Free Mobile showed an unexpected message about the code: \"{flash}\""
            ))),
            None => Err(KonnectorError::vendor_down(
                "Free Mobile showed the verification form again with no message",
            )),
        },
        PageKind::VerificationLocked { message } => Err(locked_error(&message)),
        PageKind::Maintenance { message } => Err(maintenance(&message)),
        PageKind::Login { flash: Some(flash) } => Err(login_error(&flash)),
        PageKind::Login { flash: None } => Err(KonnectorError::new(
            ErrorCode::UserActionNeededTwofaExpired,
            "Free Mobile dropped the verification and showed the login form again",
        )),
    }
}

/// Whether the verification form's error says the code was wrong.
pub fn is_wrong_code(flash: &str) -> bool {
    let lower = flash.to_lowercase();
    lower.contains("incorrect") || lower.contains("erroné") || lower.contains("invalide")
}

/// The error for the lockout page (too many wrong codes).
pub fn locked_error(message: &str) -> KonnectorError {
    KonnectorError::new(
        ErrorCode::LoginFailedTooManyAttempts,
        format!(
            "Free Mobile locked the device verification after too many wrong codes: \"{message}\""
        ),
    )
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
        PageKind::Login { .. }
        | PageKind::Verification(_)
        | PageKind::VerificationLocked { .. } => Err(KonnectorError::vendor_down(format!(
            "{} sent the login form back: the session was dropped",
            page.url()
        ))),
    }
}

/// Turns the login form's flash message into a typed error.
pub fn login_error(flash: &str) -> KonnectorError {
    let lower = flash.to_lowercase();
    if lower.contains("code") && lower.contains("expir") {
        KonnectorError::new(
            ErrorCode::UserActionNeededTwofaExpired,
            format!("Free Mobile's verification code expired before it was given: \"{flash}\""),
        )
    } else if lower.contains("bloqu") {
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = "https://mobile.free.fr/account/";

    fn fixture(name: &str) -> HtmlPage {
        let path = format!(
            "{}/../fixtures/free-mobile/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        HtmlPage::parse(BASE, &std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn a_login_may_lead_to_the_verification_form() {
        match after_login(&fixture("verification.html"), 200).unwrap() {
            Step::Verify(v) => {
                assert_eq!(v.hint.as_deref(), Some("j***@example.org"));
                assert_eq!(v.flash, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            after_login(&fixture("home_line1.html"), 200).unwrap(),
            Step::Home(_)
        ));
        let code = |f| after_login(&fixture(f), 200).unwrap_err().code;
        assert_eq!(code("login_failed.html"), ErrorCode::LoginFailed);
        assert_eq!(
            code("verification_locked.html"),
            ErrorCode::LoginFailedTooManyAttempts
        );
        assert_eq!(code("login.html"), ErrorCode::VendorDown);
        assert_eq!(code("maintenance.html"), ErrorCode::Maintenance);
    }

    #[test]
    fn code_answers_map_to_steps_and_codes() {
        assert!(matches!(
            after_code(&fixture("home_line1.html")).unwrap(),
            Step::Home(_)
        ));
        match after_code(&fixture("verification_wrong.html")).unwrap() {
            Step::Verify(v) => {
                assert_eq!(v.token, "{{token}}");
                assert!(v.flash.unwrap().contains("incorrect"));
            }
            other => panic!("{other:?}"),
        }
        let code = |f| after_code(&fixture(f)).unwrap_err().code;
        // The form again with no error is not "wrong code": something else.
        assert_eq!(code("verification.html"), ErrorCode::VendorDown);
        assert_eq!(
            code("verification_locked.html"),
            ErrorCode::LoginFailedTooManyAttempts
        );
        assert_eq!(
            code("login_code_expired.html"),
            ErrorCode::UserActionNeededTwofaExpired
        );
        assert_eq!(code("login.html"), ErrorCode::UserActionNeededTwofaExpired);
        assert_eq!(code("maintenance.html"), ErrorCode::Maintenance);
        assert_eq!(code("not_found.html"), ErrorCode::PageChanged);
    }

    #[test]
    fn wrong_code_messages_are_recognised() {
        assert!(is_wrong_code(
            "Le code saisi est incorrect. Il vous reste 4 essai(s)."
        ));
        assert!(is_wrong_code("Code invalide"));
        assert!(!is_wrong_code("Votre session a expiré"));
    }

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
