//! The login: a saved session when it still works, else Orange's scripted
//! two-step form in the run's headless browser, whose cookies then go to
//! the plain HTTP client.
//!
//! The order, so that chromium starts only when it is needed:
//! 1. restore the session the last run saved and ask for the contracts
//!    over plain HTTP: when the customer area answers, no login at all;
//! 2. fetch the login page over plain HTTP first: the HTTP client's
//!    retries handle a 429 or a 5xx, and the maintenance page is
//!    recognised, without starting a browser;
//! 3. in the browser: the identifier (`#login`), `#btnSubmit`, then the
//!    password (`#password`), `#btnSubmit`; the page's scripts build the
//!    form and sign each step with a token they compute, so plain HTTP
//!    cannot log in. A refusal shows in `[role="alert"]`; success sends
//!    the browser to the customer area's home (`.o-ribbon-is-connected`).
//!
//! The real login has no second factor in this flow (Cozy's and Woob's
//! konnectors handle none; Cozy's asks the person to solve a captcha when
//! one shows): a captcha here is `CHALLENGE_ASKED`.

use std::time::Duration;

use gleaner_framework::http::{Response, strip_query};
use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::{ErrorCode, KonnectorError, Locator, Result, RunContext};

use super::api::Contracts;
use super::pages;
use super::routes::{self, Site, sel};

/// How long a saved session is reused.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// How long the login form's first step may take to be built.
const FORM_WAIT: Duration = Duration::from_secs(5);

/// How long a submitted step may take to answer.
const SUBMIT_WAIT: Duration = Duration::from_secs(15);

/// How often the page is looked at while waiting.
const PROBE_EVERY: Duration = Duration::from_millis(25);

/// Opens a session (saved or new) and returns the customer's contracts.
pub async fn open_session(ctx: &mut RunContext, site: &Site) -> Result<Contracts> {
    if ctx.restore_session().await? {
        match fetch_contracts(ctx, site).await? {
            Some(contracts) => {
                tracing::info!("saved session still alive: no login");
                ctx.save_session(SESSION_TTL, serde_json::json!({}));
                return Ok(contracts);
            }
            None => {
                tracing::info!("saved session is dead: logging in again");
                ctx.clear_session();
            }
        }
    }
    preflight(ctx, site).await?;
    browser_login(ctx, site).await?;
    ctx.save_session(SESSION_TTL, serde_json::json!({}));
    fetch_contracts(ctx, site).await?.ok_or_else(|| {
        KonnectorError::new(
            ErrorCode::UnknownError,
            "the customer area refused the session the login opened",
        )
    })
}

/// `GET` on the customer area's API, with the headers it wants.
pub async fn api_get(ctx: &RunContext, url: &str) -> Result<Response> {
    let mut request = ctx.http().get(url);
    for (name, value) in routes::API_HEADERS {
        request = request.header(name, value);
    }
    request.await
}

/// Checks an API answer: `Ok(None)` when the session is refused (401,
/// 403), the maintenance page as `MAINTENANCE`, another status as
/// `VENDOR_DOWN`.
pub fn api_answer(resp: Response) -> Result<Option<Response>> {
    let shown = strip_query(resp.url.as_str());
    if resp.status.as_u16() == 401 || resp.status.as_u16() == 403 {
        return Ok(None);
    }
    if resp.content_type().as_deref() == Some("text/html") {
        let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
        if let Some(message) = pages::maintenance(&page)? {
            return Err(KonnectorError::maintenance(format!(
                "Orange's customer area is under maintenance: {message}"
            )));
        }
        return Err(KonnectorError::vendor_down(format!(
            "{shown} answered an HTML page ({}) instead of JSON",
            resp.status
        )));
    }
    if !resp.status.is_success() {
        return Err(KonnectorError::vendor_down(format!(
            "{shown} answered {}",
            resp.status
        )));
    }
    Ok(Some(resp))
}

/// The contracts, or `None` when the session is refused.
async fn fetch_contracts(ctx: &RunContext, site: &Site) -> Result<Option<Contracts>> {
    let url = site.ec(routes::CONTRACTS)?;
    match api_answer(api_get(ctx, &url).await?)? {
        Some(resp) => Ok(Some(resp.json()?)),
        None => Ok(None),
    }
}

/// The login page over plain HTTP: 429 and 5xx are the HTTP client's
/// (retried, then `VENDOR_DOWN`), the maintenance page is `MAINTENANCE`.
async fn preflight(ctx: &RunContext, site: &Site) -> Result<()> {
    let url = site.login_page()?;
    let resp = ctx.http().get(&url).await?;
    let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
    if let Some(message) = pages::maintenance(&page)? {
        return Err(KonnectorError::maintenance(format!(
            "Orange's login is under maintenance: {message}"
        )));
    }
    if !resp.status.is_success() {
        return Err(KonnectorError::vendor_down(format!(
            "the login page {} answered {}",
            strip_query(&url),
            resp.status
        )));
    }
    Ok(())
}

/// The scripted login in the run's browser; its cookies end in the HTTP
/// client's jar.
async fn browser_login(ctx: &mut RunContext, site: &Site) -> Result<()> {
    let login = ctx.field("login")?.to_owned();
    let password = ctx.secret("password")?.clone();
    let http = ctx.http().clone();
    let start = site.login_page()?;

    let browser = ctx.browser().await?;
    browser.goto(&start).await?;
    tracing::debug!("login page loaded");
    let first = [sel::LOGIN, sel::PASSWORD, sel::CAPTCHA, sel::KEEP_CONNECTED];
    let mut step = first_of(browser, &first, FORM_WAIT).await;
    tracing::debug!(?step, "login form shown");
    if step == Some(sel::KEEP_CONNECTED) {
        // A remembered account (never in a fresh profile): log in afresh.
        browser.click("#changeAccountLink").await?;
        step = first_of(browser, &first, FORM_WAIT).await;
    }
    match step {
        Some(s) if s == sel::LOGIN => {
            // The identifier is not a secret: set by a script (one round
            // trip); the password is typed with `fill`, never in a script.
            type_in(browser, sel::LOGIN, &login).await?;
            press(browser, sel::SUBMIT).await?;
            tracing::debug!("identifier submitted");
            let next = [sel::PASSWORD, sel::ALERT, sel::CAPTCHA];
            match first_of(browser, &next, SUBMIT_WAIT).await {
                Some(s) if s == sel::PASSWORD => {}
                Some(s) if s == sel::ALERT => return Err(refused(browser).await),
                Some(_) => return Err(captcha()),
                None => return Err(missing(browser, sel::PASSWORD)),
            }
        }
        Some(s) if s == sel::PASSWORD => {}
        Some(s) if s == sel::CAPTCHA => return Err(captcha()),
        _ => return Err(missing(browser, sel::LOGIN)),
    }
    tracing::debug!("password step shown");
    browser.fill(sel::PASSWORD, &password).await?;
    press(browser, sel::SUBMIT).await?;
    tracing::debug!("password submitted");
    let done = [sel::CONNECTED, sel::ALERT, sel::CAPTCHA];
    match first_of(browser, &done, SUBMIT_WAIT).await {
        Some(s) if s == sel::CONNECTED => {}
        Some(s) if s == sel::ALERT => return Err(refused(browser).await),
        Some(_) => return Err(captcha()),
        None => return Err(missing(browser, sel::CONNECTED)),
    }
    tracing::debug!("logged in");
    browser.snapshot().await?;
    let copied = browser.cookies_into(&http).await?;
    tracing::debug!(cookies = copied, "browser session handed to plain HTTP");
    Ok(())
}

/// Which of `selectors` the page shows first, looking every few
/// milliseconds for at most `limit`; `None` when none showed. A look that
/// fails (the page is being replaced) is simply tried again.
async fn first_of(
    browser: &gleaner_framework::browser::BrowserSession,
    selectors: &[&'static str],
    limit: Duration,
) -> Option<&'static str> {
    let list = serde_json::to_string(selectors).unwrap_or_else(|_| "[]".to_owned());
    let alert = serde_json::to_string(sel::ALERT).unwrap_or_default();
    // An alert counts once it says something (the form keeps an empty one).
    let probe = format!(
        "(() => {{ for (const s of {list}) {{ const e = document.querySelector(s); \
         if (e && (s !== {alert} || e.textContent.trim() !== '')) return s; }} \
         return null; }})()"
    );
    let look = async {
        loop {
            if let Ok(serde_json::Value::String(found)) = browser.evaluate(&probe).await
                && let Some(s) = selectors.iter().find(|s| **s == found)
            {
                return *s;
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    };
    tokio::time::timeout(limit, look).await.ok()
}

/// Sets a (non-secret) field's value with a script and fires its `input`
/// event, as typing does.
async fn type_in(
    browser: &gleaner_framework::browser::BrowserSession,
    selector: &str,
    value: &str,
) -> Result<()> {
    let quoted = serde_json::to_string(selector).unwrap_or_default();
    let text = serde_json::to_string(value).unwrap_or_default();
    let js = format!(
        "(() => {{ const e = document.querySelector({quoted}); if (!e) return false; e.focus(); \
         e.value = {text}; e.dispatchEvent(new Event('input', {{ bubbles: true }})); return true; }})()"
    );
    match browser.evaluate(&js).await? {
        serde_json::Value::Bool(true) => Ok(()),
        _ => Err(missing(browser, selector)),
    }
}

/// Clicks `selector` with a script click (`element.click()`): the form's
/// submit handler runs as for a mouse click, without the mouse events'
/// layout round trips (which cost about a second each on a busy machine).
async fn press(
    browser: &gleaner_framework::browser::BrowserSession,
    selector: &str,
) -> Result<()> {
    let quoted = serde_json::to_string(selector).unwrap_or_default();
    let js = format!(
        "(() => {{ const e = document.querySelector({quoted}); if (!e) return false; e.click(); return true; }})()"
    );
    match browser.evaluate(&js).await? {
        serde_json::Value::Bool(true) => Ok(()),
        _ => Err(missing(browser, selector)),
    }
}

/// The refusal the form shows, as a typed error.
async fn refused(browser: &gleaner_framework::browser::BrowserSession) -> KonnectorError {
    let url = browser.url();
    let message = match browser.html().await {
        Ok(html) => {
            let page = HtmlPage::parse(url, &html);
            pages::alert(&page).ok().flatten()
        }
        Err(e) => return e,
    };
    pages::refusal(message.as_deref().unwrap_or("no reason given"))
}

fn captcha() -> KonnectorError {
    KonnectorError::new(
        ErrorCode::ChallengeAsked,
        "Orange asks to solve a captcha before logging in: log in once on login.orange.fr from this network, then run again",
    )
}

/// `selector` never showed: the login application changed.
fn missing(browser: &gleaner_framework::browser::BrowserSession, selector: &str) -> KonnectorError {
    let page = strip_query(&browser.url());
    KonnectorError::page_changed(format!(
        "the login form shows no `{selector}` on {page}"
    ))
    .with_locator(Locator::Selector {
        selector: selector.to_owned(),
        page,
    })
}
