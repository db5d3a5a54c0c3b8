//! The catalogue and the enable form, end to end: `gleaner serve` on a data
//! directory, chromium driving the pages, the providers' sandboxes in this
//! process. Enabling Free Mobile (a login form, refused then accepted) and
//! Enedis (OAuth: the browser goes to the sandbox's consent page and comes
//! back through `/oauth/callback`), with scripts on and off.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod web_common;

use std::time::{Duration, Instant};

use gleaner_konnectors::energy::enedis::sandbox::{
    CLIENT_SECRET, Sandbox as EnedisSandbox, USAGE_POINT_ID,
};
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use web_common::{Home, Served, Web};

/// The harness's browser.
type Browser = Web;

/// The id of the account whose `gleaner accounts list` row contains
/// `needle` (its label or konnector), if any.
fn account_id(home: &Home, needle: &str) -> Option<String> {
    home.ok(&["accounts", "list"])
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split(['│', '┆']).nth(1))
        .map(|s| s.trim().to_owned())
}

/// The opening tag of the element with `id` in `html`.
fn tag<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in:\n{html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

/// Waits until the browser's URL satisfies `done` (a redirect chain may end
/// after `click` returned).
fn wait_for_url(web: &Browser, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = web.current_url();
        if done(&url) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "the browser never reached {what}; it is at {url}:\n{}",
            web.html()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The account page shows the message of the enable (it stays through the
/// page's own reloads while the first run moves on).
fn expect_flash(web: &Browser, text: &str) {
    web.wait_for(".flash");
    assert!(
        web.html().contains(text),
        "no flash `{text}`:\n{}",
        web.html()
    );
}

/// Waits (at most a minute) until the store holds documents of `doctype`.
fn wait_for_documents(home: &Home, doctype: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = home.ok(&["docs", doctype, "--json", "--limit", "1000"]);
        let n = out.lines().filter(|l| !l.trim().is_empty()).count();
        if n > 0 {
            return n;
        }
        assert!(Instant::now() < deadline, "no {doctype} was imported");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalogue_searches_and_the_free_mobile_form_refuses_then_enables() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let web = Browser::launch(true);
    web.login(&served);

    // The catalogue: the eight konnectors, grouped, in words.
    web.goto(&served.url("/konnectors"));
    web.wait_for("#q");
    let html = web.html();
    let cards = html.matches("class=\"card konnector-card\"").count();
    assert_eq!(cards, 8, "{html}");
    for slug in [
        "alan",
        "ameli",
        "edf",
        "enedis",
        "free-mobile",
        "gocardless",
        "nextgenpsd2",
        "orange",
    ] {
        assert!(
            html.contains(&format!("href=\"/konnectors/{slug}\"")),
            "{slug}"
        );
    }
    for words in [
        "Energy consumption",
        "Bills and their PDF files",
        "May ask for a code sent to you by email",
        "You give your consent on the provider's site",
        "Your bank asks you to approve on its own site",
        "Phone and internet",
    ] {
        assert!(html.contains(words), "no `{words}` in the catalogue");
    }
    web.screenshot("catalogue");

    // Search narrows: by doctype in words, by category, by name.
    web.fill("#q", "energy consumption").click("#search");
    let html = web.html();
    assert_eq!(
        html.matches("class=\"card konnector-card\"").count(),
        2,
        "{html}"
    );
    assert!(html.contains("konnector-enedis") && html.contains("konnector-edf"));
    assert!(html.contains("2 of 8 providers"));
    web.goto(&served.url("/konnectors?category=bank"));
    let html = web.html();
    assert_eq!(html.matches("class=\"card konnector-card\"").count(), 2);
    assert!(html.contains("konnector-gocardless") && html.contains("konnector-nextgenpsd2"));
    web.goto(&served.url("/konnectors?q=FREE"));
    assert_eq!(
        web.html().matches("class=\"card konnector-card\"").count(),
        1
    );
    web.goto(&served.url("/konnectors?q=nothing-like-this"));
    assert!(web.html().contains("No provider matches"));

    // The Free Mobile form, from the manifest.
    web.goto(&served.url("/konnectors?q=free"));
    web.click("a[href=\"/konnectors/free-mobile\"]");
    web.wait_for("#field-login");
    let html = web.html();
    let login = tag(&html, "field-login");
    assert!(login.contains("pattern=\"[0-9]{8}\""), "{login}");
    assert!(login.contains("maxlength=\"8\""), "{login}");
    assert!(login.contains("required"), "{login}");
    assert!(login.contains("aria-describedby=\"hint-login\""), "{login}");
    assert!(tag(&html, "hint-login").contains("class=\"hint\""));
    assert!(html.contains("Exactly 8 digits."));
    assert!(html.contains("<label for=\"field-login\">Identifiant (8 chiffres)</label>"));
    let password = tag(&html, "field-password");
    assert!(password.contains("type=\"password\""), "{password}");
    for id in [
        "field-label",
        "field-endpoint",
        "field-allow_remote_endpoint",
        "enable",
    ] {
        tag(&html, id);
    }
    assert!(
        html.contains("Server address (advanced: a sandbox or another server of this provider)")
    );
    web.screenshot("enable-form");

    // A bad login: the browser itself refuses it...
    web.fill("#field-login", "1234")
        .fill("#field-password", PASSWORD)
        .fill("#field-endpoint", &sandbox.base_url());
    let valid = web
        .tab
        .evaluate(
            "document.getElementById('field-login').checkValidity()",
            false,
        )
        .unwrap();
    assert_eq!(valid.value, Some(serde_json::Value::Bool(false)));
    // ...and so does the server, for a browser that does not check.
    web.tab
        .evaluate(
            "document.getElementById('enable-form').noValidate = true",
            false,
        )
        .unwrap();
    web.click("#enable");
    web.wait_for("#error-login");
    let html = web.html();
    assert!(
        tag(&html, "error-login").contains("class=\"field-error\""),
        "{html}"
    );
    assert!(html.contains("This must be exactly 8 digits."), "{html}");
    let login = tag(&html, "field-login");
    assert!(
        login.contains("value=\"1234\""),
        "the login is kept: {login}"
    );
    assert!(login.contains("aria-invalid=\"true\""), "{login}");
    assert!(!html.contains(PASSWORD), "the password came back");
    assert!(!tag(&html, "field-password").contains("value="));
    assert!(tag(&html, "field-endpoint").contains(&sandbox.base_url()));
    assert!(account_id(&home, "free-mobile").is_none());
    web.screenshot("enable-refused");

    // Corrected: the account exists, its first run is queued, the browser
    // lands on its page with the message.
    web.tab
        .evaluate("document.getElementById('field-login').value = ''", false)
        .unwrap();
    web.fill("#field-login", LOGIN)
        .fill("#field-password", PASSWORD);
    web.click("#enable");
    let id = account_id(&home, "free-mobile").expect("the account was created");
    wait_for_url(&web, &format!("the page of {id}"), |u| {
        u.ends_with(&format!("/accounts/{id}"))
    });
    expect_flash(&web, "first import has started");
    let list = home.ok(&["accounts", "list"]);
    assert!(list.contains(LOGIN), "labelled by its login:\n{list}");
    let jobs = home.ok(&["jobs"]);
    assert!(
        jobs.contains(&id) || jobs.contains(LOGIN),
        "a queued run:\n{jobs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enabling_enedis_goes_through_the_consent_page_and_back() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let sandbox = EnedisSandbox::start().await.unwrap();
    let home = Home::new();
    let served = Served::start(&home, &[], &[]);
    let web = Browser::launch(true);
    web.login(&served);

    // A redirect nobody asked for: plain words, a way back, nothing done.
    web.goto(&served.url("/oauth/callback?code=stolen&state=forged"));
    web.wait_for("#try-again");
    assert!(web.html().contains("This consent link is no longer valid"));
    assert!(account_id(&home, "enedis").is_none());

    // The provider refuses: said in words, no account.
    sandbox.set_deny_consent(true);
    web.goto(&served.url("/konnectors/enedis"));
    web.fill("#field-client_secret", CLIENT_SECRET)
        .fill("#field-endpoint", &sandbox.base_url());
    web.click("#enable");
    wait_for_url(&web, "the refusal", |u| u.contains("/oauth/callback"));
    web.wait_for("#try-again");
    let html = web.html();
    assert!(html.contains("Enedis did not give access"), "{html}");
    assert!(tag(&html, "try-again").contains("href=\"/konnectors/enedis\""));
    assert!(!html.contains(CLIENT_SECRET));
    web.screenshot("consent-refused");
    assert!(account_id(&home, "enedis").is_none());

    // Consent given: the browser goes to the sandbox and comes back.
    sandbox.set_deny_consent(false);
    web.click("#try-again");
    web.fill("#field-client_secret", CLIENT_SECRET)
        .fill("#field-endpoint", &sandbox.base_url())
        .fill("#field-label", "linky");
    web.click("#enable");
    let url = wait_for_url(&web, "the account page", |u| u.contains("/accounts/"));
    let id = account_id(&home, "linky").expect("the account was created");
    assert!(url.ends_with(&format!("/accounts/{id}")), "{url}");
    expect_flash(&web, "Enedis enabled as “linky”");
    // The tokens and the redirect's usage point work: the first run (this
    // server's worker) imports the consumption.
    assert!(wait_for_documents(&home, "io.cozy.timeseries.energy") > 0);

    // The same answer twice: the state was used.
    web.goto(&served.url(&format!(
        "/oauth/callback?code=again&state=whatever&usage_point_id={USAGE_POINT_ID}"
    )));
    assert!(web.html().contains("This consent link is no longer valid"));

    // Consent again, from the account.
    web.goto(&served.url(&format!("/accounts/{id}/consent")));
    web.click("#consent");
    wait_for_url(&web, "the account page", |u| {
        u.ends_with(&format!("/accounts/{id}"))
    });
    expect_flash(&web, "Consent given again for “linky”");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enabling_works_with_scripts_off() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let free = Sandbox::start(Scenario::Normal).await.unwrap();
    let enedis = EnedisSandbox::start().await.unwrap();
    let home = Home::new();
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let web = Browser::launch(false);
    web.login(&served);

    web.goto(&served.url("/konnectors"));
    web.fill("#q", "mobile").click("#search");
    web.click("a[href=\"/konnectors/free-mobile\"]");
    web.fill("#field-login", LOGIN)
        .fill("#field-password", PASSWORD)
        .fill("#field-endpoint", &free.base_url())
        .fill("#field-label", "phone");
    web.click("#enable");
    let id = account_id(&home, "phone").expect("the Free Mobile account");
    wait_for_url(&web, "the account page", |u| {
        u.ends_with(&format!("/accounts/{id}"))
    });
    expect_flash(&web, "Free Mobile enabled as “phone”");

    web.goto(&served.url("/konnectors/enedis"));
    web.fill("#field-client_secret", CLIENT_SECRET)
        .fill("#field-endpoint", &enedis.base_url())
        .fill("#field-label", "meter");
    web.click("#enable");
    let url = wait_for_url(&web, "the account page", |u| u.contains("/accounts/"));
    let id = account_id(&home, "meter").expect("the Enedis account");
    assert!(url.ends_with(&format!("/accounts/{id}")), "{url}");
}
