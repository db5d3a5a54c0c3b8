//! The web interface's walls, checked over plain HTTP against a real
//! `gleaner serve`: the one-time link, pages without a session, CSRF on
//! POST, the CSP on every response, secrets never served, the login rate
//! limit.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod web_common;

use gleaner_konnectors::telco::free_mobile::sandbox::{PASSWORD, Sandbox, Scenario};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use web_common::{Home, Served};

/// The pages a logged-in person can reach (what each check walks).
fn pages(account: &str) -> Vec<String> {
    [
        "/",
        "/konnectors",
        "/konnectors/free-mobile",
        "/konnectors/enedis",
        "/documents",
        "/documents/io.cozy.bills",
        "/documents/io.cozy.files",
        "/documents/io.cozy.timeseries.energy",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .chain([
        format!("/accounts/{account}"),
        format!("/accounts/{account}/edit"),
        format!("/accounts/{account}/remove"),
    ])
    .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Logs `client` in with the one-time link; returns the session's CSRF
/// token read from the home page.
async fn login(client: &reqwest::Client, served: &Served) -> String {
    let r = client.get(&served.login_link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the link logs in");
    let set_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("gleaner_session="))
        .expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let home = client
        .get(served.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = home.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    home[at..at + 64].to_owned()
}

/// One Free Mobile account (its password is what must never be served).
async fn home_with_account() -> (Home, Sandbox, String) {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    home.add_free_mobile(&sandbox.base_url(), PASSWORD, "phone");
    let list = home.ok(&["accounts", "list"]);
    let id = list
        .lines()
        .find(|l| l.contains("phone"))
        .and_then(|l| l.split(['│', '┆']).nth(1))
        .map(|s| s.trim().to_owned())
        .expect("the account's id");
    (home, sandbox, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_session_every_page_is_the_login_page_and_no_data() {
    let (home, _sandbox, id) = home_with_account().await;
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let anonymous = client();
    for path in pages(&id) {
        let r = anonymous.get(served.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Log in to Gleaner"), "{path}: {body}");
        assert!(!body.contains("phone"), "{path} shows the account");
        assert!(!body.contains(&id), "{path} shows the account id");
    }
    // A forged cookie is no session either.
    let r = anonymous
        .get(served.url("/"))
        .header("cookie", "gleaner_session=0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_one_time_link_works_once() {
    let home = Home::new();
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let first = client();
    login(&first, &served).await;
    let second = client();
    let r = second.get(&served.login_link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("not valid"));
    let r = second.get(served.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_without_the_csrf_token_is_refused() {
    let (home, _sandbox, id) = home_with_account().await;
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let c = client();
    let csrf = login(&c, &served).await;
    for path in [
        format!("/accounts/{id}/run"),
        format!("/accounts/{id}/remove"),
        format!("/accounts/{id}/pause"),
        "/konnectors/free-mobile/enable".to_owned(),
        "/logout".to_owned(),
    ] {
        for body in [
            "",
            "csrf=",
            "csrf=0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let r = c
                .post(served.url(&path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("purge=on&{body}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "POST {path} with `{body}`"
            );
        }
    }
    // Nothing happened: the account is still there, with no job.
    assert!(home.ok(&["accounts", "list"]).contains("phone"));
    // And the right token passes the wall (logging out).
    let r = c
        .post(served.url("/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c.get(served.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "logged out");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_csp_and_no_page_shows_the_password() {
    let (home, _sandbox, id) = home_with_account().await;
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let c = client();
    login(&c, &served).await;
    let mut paths = pages(&id);
    paths.extend(
        [
            "/login",
            "/static/app.css",
            "/static/app.js",
            "/no/such/page",
        ]
        .map(str::to_owned),
    );
    for path in paths {
        let r = c.get(served.url(&path)).send().await.unwrap();
        let csp = r
            .headers()
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path} has no CSP"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(PASSWORD), "{path} serves the password");
        // No inline script: every <script> has a src.
        for tag in body.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src="),
                "{path}: inline script"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passphrases_are_rate_limited() {
    let home = Home::new();
    let served = Served::start(
        &home,
        &["--no-daemon", "--passphrase"],
        &[("GLEANER_UI_PASSPHRASE", "correct horse battery")],
    );
    let c = client();
    let form = |c: &reqwest::Client| {
        let c = c.clone();
        let url = served.url("/login");
        async move {
            let page = c.get(&url).send().await.unwrap().text().await.unwrap();
            let at = page.find("name=\"login_csrf\" value=\"").unwrap() + 25;
            page[at..at + 64].to_owned()
        }
    };
    let mut last = StatusCode::OK;
    for _ in 0..11 {
        let token = form(&c).await;
        last = c
            .post(served.url("/login"))
            .form(&[
                ("login_csrf", token.as_str()),
                ("passphrase", "wrong guess"),
            ])
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Even the right passphrase waits now.
    let token = form(&c).await;
    let r = c
        .post(served.url("/login"))
        .form(&[
            ("login_csrf", token.as_str()),
            ("passphrase", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // A form posted without its cookie's token is refused outright.
    let r = client()
        .post(served.url("/login"))
        .form(&[
            ("login_csrf", "forged"),
            ("passphrase", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_passphrase_logs_in() {
    let home = Home::new();
    let served = Served::start(
        &home,
        &["--no-daemon", "--passphrase"],
        &[("GLEANER_UI_PASSPHRASE", "correct horse battery")],
    );
    let c = client();
    let page = c
        .get(served.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"login_csrf\" value=\"").unwrap() + 25;
    let token = page[at..at + 64].to_owned();
    let r = c
        .post(served.url("/login"))
        .form(&[
            ("login_csrf", token.as_str()),
            ("passphrase", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c.get(served.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Your accounts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_site_get_without_the_cookie_is_bounced_once_and_shows_nothing() {
    let (home, _sandbox, id) = home_with_account().await;
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let path = format!("/accounts/{id}?from=mail");
    let r = client()
        .get(served.url(&path))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["refresh"], format!("0;url={path}").as_str());
    let body = r.text().await.unwrap();
    assert!(!body.contains("phone"), "{body}");
    // The same-origin second request without a session: the login page.
    let r = client()
        .get(served.url(&path))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// In chromium: a link from another site (a `data:` page, an opaque
/// origin) to an account page. The browser does not send the Strict
/// session cookie with that navigation; the bounce brings the person to
/// the page, logged in.
#[test]
fn a_link_from_another_site_reaches_the_page_logged_in() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let sandboxes = tokio::runtime::Runtime::new().unwrap();
    let (home, _sandbox, id) = sandboxes.block_on(home_with_account());
    let served = Served::start(&home, &["--no-daemon"], &[]);
    let web = web_common::Web::launch(true);
    web.login(&served);
    let target = served.url(&format!("/accounts/{id}"));
    web.goto(&format!(
        "data:text/html,<a id=go href=\"{target}\">your account</a>"
    ));
    web.click("#go");
    web.wait_for_text("Run now", std::time::Duration::from_secs(20), false);
    assert!(web.current_url().ends_with(&format!("/accounts/{id}")));
}
