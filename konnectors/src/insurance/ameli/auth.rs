//! Logging in to the compte ameli.
//!
//! As Cozy's konnector (`classicLogin`) and Woob's (`direct_login`) do it:
//! `GET` the login page (session cookie), ask the token servlet for the
//! anti-CSRF token `_ct` (`POST /PortailAS/JavaScriptServlet` with
//! `FETCH-CSRF-TOKEN: 1`, answer `_ct:<token>`), then post the form with
//! the social security number (13 characters: a 15-digit NIR loses its
//! key, as Cozy does), the password and `_ct`. The outcome is read from the
//! page: the logout link means success; the visible `div.zone-alerte` names
//! a refusal; `div.compte_bloque` is a lockout.
//!
//! A **new device** is answered with the form at step `OTP_NECESSAIRE`
//! (Woob: `otp_step()`): the konnector posts `authStep=ENVOI_OTP` so that
//! a security code is emailed, the form comes back at `SAISIE_OTP` with
//! the masked address, the konnector asks the person through
//! [`RunContext::two_factor`] (`email`) and posts the six digits
//! (`numOTP1`..`numOTP6`) with `enrolerDevice=on`, so the site remembers
//! the device (`trustConnect0` cookie) and does not ask again through the
//! same cookie jar. A wrong code (`KO_SAISIE_OTP`) asks again; the context
//! gives up after three with `USER_ACTION_NEEDED.WRONG_TWOFA_CODE`.

use gleaner_framework::http::{Response, display_url};
use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, Secret, TwoFactorKind};

use super::pages::{LoginForm, PageKind, classify};
use super::routes::{self, form};

/// Where a login post (or a code post) led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Logged in.
    LoggedIn,
    /// A new device: a code must be asked for (`OTP_NECESSAIRE`).
    CodeNeeded,
    /// The code was sent; type it (`SAISIE_OTP`, or `KO_SAISIE_OTP` after a
    /// wrong one), with the masked address.
    CodeEntry {
        /// Where the code went.
        hint: Option<String>,
        /// Whether the last code was refused.
        refused: bool,
    },
}

/// Logs in and returns a fresh anti-CSRF token for the logged-in session.
pub async fn login(ctx: &mut RunContext) -> Result<String> {
    let nir = nir13(ctx.field("login")?)?;
    let first = fetch(ctx, &ctx.url(routes::LOGIN_PAGE)?).await?;
    {
        let page = HtmlPage::parse(first.url.as_str(), &first.text());
        match classify(&page)? {
            PageKind::Login(_) | PageKind::LoggedIn => {}
            other => return Err(unexpected(other, "the login page")),
        }
    }
    let ct = csrf_token(ctx).await?;
    let post_url = ctx.url(routes::LOGIN_POST)?;
    let resp = {
        let password = ctx.secret("password")?;
        ctx.http()
            .post_form(
                &post_url,
                &[
                    (form::NIR, nir.as_str()),
                    (form::PASSWORD, password.expose()),
                    form::ACTION,
                    form::SUBMIT,
                    (routes::CT, ct.as_str()),
                ],
            )
            .await?
    };
    check_status(&resp, "the login form")?;
    let step = {
        let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
        after_login(&page)?
    };
    match step {
        Step::LoggedIn => {}
        Step::CodeNeeded => verify_device(ctx, &post_url, &ct).await?,
        Step::CodeEntry { hint, .. } => answer_codes(ctx, &post_url, &ct, hint).await?,
    }
    tracing::info!("logged in to the compte ameli");
    // The session id changed at login: its token too.
    csrf_token(ctx).await
}

/// Has the security code emailed, then answers it.
async fn verify_device(ctx: &mut RunContext, post_url: &str, ct: &str) -> Result<()> {
    tracing::info!("ameli does not know this device: asking for a security code by email");
    let resp = ctx
        .http()
        .post_form(
            post_url,
            &[
                (form::AUTH_STEP, form::SEND_CODE_STEP),
                form::SEND_CODE,
                (routes::CT, ct),
            ],
        )
        .await?;
    check_status(&resp, "the security code request")?;
    let step = {
        let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
        after_login(&page)?
    };
    match step {
        Step::CodeEntry { hint, .. } => answer_codes(ctx, post_url, ct, hint).await,
        Step::LoggedIn => Ok(()),
        Step::CodeNeeded => Err(KonnectorError::vendor_down(
            "ameli showed the security code request again instead of sending a code",
        )),
    }
}

/// Asks the person for the emailed code and posts it, again after a wrong
/// one.
async fn answer_codes(
    ctx: &mut RunContext,
    post_url: &str,
    ct: &str,
    mut hint: Option<String>,
) -> Result<()> {
    loop {
        let code = ctx.two_factor(TwoFactorKind::Email, hint.as_deref()).await?;
        let resp = post_code(ctx, post_url, ct, &code).await?;
        check_status(&resp, "the security code")?;
        let step = {
            let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
            after_code(&page)?
        };
        match step {
            Step::LoggedIn => return Ok(()),
            Step::CodeEntry { hint: next, .. } => {
                tracing::info!("ameli refused the security code");
                hint = next.or(hint);
            }
            Step::CodeNeeded => {
                return Err(KonnectorError::new(
                    ErrorCode::UserActionNeededTwofaExpired,
                    "ameli dropped the security code and asks for a new one",
                ));
            }
        }
    }
}

async fn post_code(
    ctx: &RunContext,
    post_url: &str,
    ct: &str,
    code: &Secret,
) -> Result<Response> {
    let digits: Vec<char> = code
        .expose()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let names: Vec<String> = (1..=digits.len())
        .map(|i| format!("{}{i}", form::CODE_DIGIT_PREFIX))
        .collect();
    let values: Vec<String> = digits.iter().map(char::to_string).collect();
    let mut fields: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(values.iter().map(String::as_str))
        .collect();
    fields.push((form::AUTH_STEP, "SAISIE_OTP"));
    fields.push(form::TRUST_DEVICE);
    fields.push((routes::CT, ct));
    ctx.http().post_form(post_url, &fields).await
}

/// Reads the page a login post (or a code request) led to.
pub fn after_login(page: &HtmlPage) -> Result<Step> {
    match classify(page)? {
        PageKind::LoggedIn => Ok(Step::LoggedIn),
        PageKind::Login(form) => form_step(form, page),
        other => Err(unexpected(other, "the login")),
    }
}

/// Reads the page a code post led to.
pub fn after_code(page: &HtmlPage) -> Result<Step> {
    match classify(page)? {
        PageKind::LoggedIn => Ok(Step::LoggedIn),
        PageKind::Login(form) => match form.step.as_str() {
            "KO_SAISIE_OTP" | "SAISIE_OTP" => {
                if form.step == "SAISIE_OTP" && form.alert.is_none() {
                    return Err(KonnectorError::vendor_down(
                        "ameli showed the code form again with no message",
                    ));
                }
                Ok(Step::CodeEntry {
                    hint: form.hint,
                    refused: true,
                })
            }
            _ => form_step(form, page),
        },
        other => Err(unexpected(other, "the security code")),
    }
}

fn form_step(form: LoginForm, page: &HtmlPage) -> Result<Step> {
    match form.step.as_str() {
        "OTP_NECESSAIRE" => Ok(Step::CodeNeeded),
        "SAISIE_OTP" => Ok(Step::CodeEntry {
            hint: form.hint,
            refused: false,
        }),
        "KO_SAISIE_OTP" => Ok(Step::CodeEntry {
            hint: form.hint,
            refused: true,
        }),
        _ => match form.alert {
            Some(alert) => Err(alert_error(&alert)),
            None => Err(KonnectorError::vendor_down(format!(
                "{} showed the login form again with no message",
                page.url()
            ))),
        },
    }
}

/// Turns the login form's alert into a typed error (Cozy's and Woob's
/// message lists).
pub fn alert_error(alert: &str) -> KonnectorError {
    let lower = alert.to_lowercase();
    if lower.contains("ne correspondent pas")
        || lower.contains("doit contenir des chiffres")
        || lower.contains("informations saisies sont erronées")
    {
        KonnectorError::login_failed(format!(
            "ameli refused the social security number or the password: \"{alert}\""
        ))
    } else if lower.contains("bloqué")
        || lower.contains("verrouillé")
        || lower.contains("maximum de demandes de code")
    {
        KonnectorError::new(
            ErrorCode::LoginFailedTooManyAttempts,
            format!("ameli blocked the account: \"{alert}\""),
        )
    } else if lower.contains("code") && lower.contains("expiré") {
        KonnectorError::new(
            ErrorCode::UserActionNeededTwofaExpired,
            format!("ameli's security code expired: \"{alert}\""),
        )
    } else if lower.contains("ne dépendez plus du régime général") {
        KonnectorError::new(
            ErrorCode::UserActionNeededAccountRemoved,
            format!("ameli says the account is no longer covered: \"{alert}\""),
        )
    } else {
        KonnectorError::vendor_down(format!(
            "ameli showed an unexpected message at login: \"{alert}\""
        ))
    }
}

/// The error for a page that is not where the run should be.
pub fn unexpected(kind: PageKind, during: &str) -> KonnectorError {
    match kind {
        PageKind::Unavailable { message } => unavailable(&message),
        PageKind::Blocked { message } => KonnectorError::new(
            ErrorCode::LoginFailedTooManyAttempts,
            format!("ameli says the account is blocked (\"Compte bloqué\"): \"{message}\""),
        ),
        PageKind::TermsToAccept => KonnectorError::new(
            ErrorCode::UserActionNeededCguForm,
            "ameli asks to accept its new terms of use on assure.ameli.fr",
        ),
        PageKind::Login(_) => KonnectorError::vendor_down(format!(
            "ameli sent the login form back during {during}: the session was dropped"
        )),
        PageKind::LoggedIn => KonnectorError::page_changed(format!(
            "ameli showed a logged-in page where {during} was expected"
        )),
    }
}

/// The "compte indisponible" page: maintenance when it says so, else the
/// site is down.
pub fn unavailable(message: &str) -> KonnectorError {
    if message.to_lowercase().contains("maintenance") {
        KonnectorError::maintenance(format!("the compte ameli is in maintenance: \"{message}\""))
    } else {
        KonnectorError::vendor_down(format!("the compte ameli is unavailable: \"{message}\""))
    }
}

/// The first 13 characters of the social security number (the key of a
/// 15-digit NIR is not typed), as Cozy's `checkLogin` does.
pub fn nir13(login: &str) -> Result<String> {
    let digits: String = login.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() < 13 {
        return Err(KonnectorError::login_failed(
            "the social security number has fewer than 13 characters",
        ));
    }
    Ok(digits.chars().take(13).collect())
}

/// Asks the token servlet for a fresh anti-CSRF token.
pub async fn csrf_token(ctx: &RunContext) -> Result<String> {
    let url = ctx.url(routes::CSRF)?;
    let resp = ctx
        .http()
        .post(&url)
        .header(routes::CSRF_HEADER, "1")
        .send()
        .await?;
    check_status(&resp, "the token servlet")?;
    parse_csrf(&resp.text()).ok_or_else(|| {
        KonnectorError::page_changed(format!(
            "{} did not answer `_ct:<token>`",
            display_url(&resp.url)
        ))
    })
}

/// Reads `_ct:<token>`.
pub fn parse_csrf(body: &str) -> Option<String> {
    let token = body.trim().strip_prefix("_ct:")?.trim();
    (!token.is_empty() && token.chars().all(|c| c.is_ascii_graphic())).then(|| token.to_owned())
}

/// GETs a portal page; a non-2xx answer is `VENDOR_DOWN`.
pub async fn fetch(ctx: &RunContext, url: &str) -> Result<Response> {
    let resp = ctx.http().get(url).await?;
    check_status(&resp, "a page")?;
    Ok(resp)
}

/// A non-2xx answer is `VENDOR_DOWN` naming the URL and the status.
pub fn check_status(resp: &Response, what: &str) -> Result<()> {
    if resp.status.is_success() {
        return Ok(());
    }
    Err(KonnectorError::vendor_down(format!(
        "{} answered {} to {what}",
        display_url(&resp.url),
        resp.status
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::insurance::ameli::pages::testing::{login, page};

    const WRONG: &str = "Le numéro de sécurité sociale et le code personnel ne correspondent pas.";

    #[test]
    fn a_login_post_leads_to_a_step_or_a_typed_error() {
        assert_eq!(after_login(&page("accueil.html")).unwrap(), Step::LoggedIn);
        assert_eq!(
            after_login(&login("OTP_NECESSAIRE", None)).unwrap(),
            Step::CodeNeeded
        );
        assert_eq!(
            after_login(&login("SAISIE_OTP", None)).unwrap(),
            Step::CodeEntry {
                hint: Some("c***n@example.org".into()),
                refused: false
            }
        );
        let code = |p| after_login(&p).unwrap_err().code;
        assert_eq!(code(login("", Some(WRONG))), ErrorCode::LoginFailed);
        assert_eq!(code(login("", None)), ErrorCode::VendorDown);
        assert_eq!(code(page("blocked.html")), ErrorCode::LoginFailedTooManyAttempts);
        assert_eq!(code(page("maintenance.html")), ErrorCode::Maintenance);
    }

    #[test]
    fn a_code_post_leads_home_or_asks_again() {
        assert_eq!(after_code(&page("accueil.html")).unwrap(), Step::LoggedIn);
        assert_eq!(
            after_code(&login("KO_SAISIE_OTP", Some("Le code de sécurité saisi est incorrect."))).unwrap(),
            Step::CodeEntry {
                hint: Some("c***n@example.org".into()),
                refused: true
            }
        );
        // The same form with no message is not "wrong code".
        assert_eq!(
            after_code(&login("SAISIE_OTP", None)).unwrap_err().code,
            ErrorCode::VendorDown
        );
        assert_eq!(
            after_code(&page("maintenance.html")).unwrap_err().code,
            ErrorCode::Maintenance
        );
    }

    #[test]
    fn alerts_map_to_codes() {
        let code = |s| alert_error(s).code;
        assert_eq!(code(WRONG), ErrorCode::LoginFailed);
        assert_eq!(
            code("Votre numéro de Sécurité sociale doit contenir des chiffres, A ou B"),
            ErrorCode::LoginFailed
        );
        assert_eq!(
            code("L'accès à votre compte ameli est bloqué."),
            ErrorCode::LoginFailedTooManyAttempts
        );
        assert_eq!(
            code("Vous avez atteint le maximum de demandes de code."),
            ErrorCode::LoginFailedTooManyAttempts
        );
        assert_eq!(
            code("Vous ne dépendez plus du régime général de l'Assurance Maladie"),
            ErrorCode::UserActionNeededAccountRemoved
        );
        assert_eq!(code("Erreur technique"), ErrorCode::VendorDown);
    }

    #[test]
    fn the_nir_loses_its_key_and_the_token_is_read() {
        assert_eq!(nir13("285037511234567").unwrap(), "2850375112345");
        assert_eq!(nir13("2 85 03 75 112 345").unwrap(), "2850375112345");
        assert_eq!(nir13("12345").unwrap_err().code, ErrorCode::LoginFailed);
        assert_eq!(parse_csrf("_ct:abc123\n").as_deref(), Some("abc123"));
        assert_eq!(parse_csrf("<html>"), None);
        assert_eq!(parse_csrf("_ct:"), None);
    }
}
