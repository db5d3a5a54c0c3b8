//! The web interface's whole journey, as a person walks it in Debian's
//! chromium: log in with the one-time link, enable the Free Mobile sandbox
//! account, answer its emailed code in the page, see the bills and open a
//! PDF, give OAuth consent to the Enedis sandbox, see the consumption
//! chart, remove an account with its data.
//!
//! The sandboxes run in this process (on their own runtime), so the test
//! reads the emailed code from the sandbox's outbox as the person reads
//! their mailbox. The daemon's workers run inside `gleaner serve`, as by
//! default.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod web_common;

use std::time::Duration;

use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN_2FA, PASSWORD, Sandbox, Scenario};
use web_common::{Home, Served, Web};

/// The account id in a `/accounts/{id}` URL.
fn account_id(url: &str) -> String {
    let at = url.find("/accounts/").expect("an account page") + "/accounts/".len();
    url[at..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Fetches a path with the browser's session cookie: status, content type
/// and body.
fn fetch(web: &Web, served: &Served, path: &str) -> (u16, String, Vec<u8>) {
    let cookie = web
        .tab
        .get_cookies()
        .unwrap()
        .into_iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect::<Vec<_>>()
        .join("; ");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(served.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, kind, r.bytes().await.unwrap().to_vec())
    })
}

#[test]
fn a_person_enables_providers_answers_a_code_and_sees_their_documents() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let sandboxes = tokio::runtime::Runtime::new().unwrap();
    let free = sandboxes
        .block_on(Sandbox::start(Scenario::Normal))
        .unwrap();
    let enedis = sandboxes
        .block_on(gleaner_konnectors::energy::enedis::sandbox::Sandbox::start())
        .unwrap();
    let home = Home::new();
    let served = Served::start(&home, &[], &[]);
    let web = Web::launch(true);

    // Without a session, the login page; then the one-time link.
    web.goto(&served.url("/"))
        .wait_for("h1")
        .screenshot("login");
    assert!(web.html().contains("Log in to Gleaner"));
    web.login(&served);

    // Enable Free Mobile (its 2FA login: a new device gets an emailed code).
    web.goto(&served.url("/konnectors/free-mobile"))
        .fill("#field-login", LOGIN_2FA)
        .fill("#field-password", PASSWORD)
        .fill("#field-label", "phone")
        .fill("#field-endpoint", &free.base_url())
        .click("#enable");
    let phone = account_id(&web.current_url());

    // Its first run starts at once and asks for the code: the page shows
    // the prompt by itself (server-sent events).
    web.wait_for_text("id=\"twofa\"", Duration::from_secs(60), false);
    let code = {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(code) = free.last_email_code() {
                break code;
            }
            assert!(std::time::Instant::now() < deadline, "no code was emailed");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    web.fill("#code", &code).click("#send-code");
    // The page reloads by itself when the run ends.
    web.wait_for_text(
        "20 bills, 20 files imported",
        Duration::from_secs(90),
        false,
    );
    assert!(web.html().contains("<span class=\"badge ok\">done</span>"));

    // The bills, and a PDF among them.
    web.goto(&served.url("/documents/io.cozy.bills"))
        .wait_for("#chart-bills");
    let html = web.html();
    let at = html
        .find("href=\"/files/")
        .expect("a file link on the bills page")
        + 6;
    let link = html[at..].split('"').next().unwrap().to_owned();
    let (status, kind, body) = fetch(&web, &served, &link);
    assert_eq!(status, 200, "{link}");
    assert!(kind.starts_with("application/pdf"), "{link}: {kind}");
    assert!(body.starts_with(b"%PDF"), "{link} is not a PDF");

    // Enedis: the page sends the browser to the consent page, which comes
    // back to this server with the code.
    web.goto(&served.url("/konnectors/enedis"))
        .fill(
            "#field-client_secret",
            gleaner_konnectors::energy::enedis::sandbox::CLIENT_SECRET,
        )
        .fill("#field-label", "house")
        .fill("#field-endpoint", &enedis.base_url())
        .click("#enable");
    web.wait_for_text("id=\"status\"", Duration::from_secs(30), false);
    let house = account_id(&web.current_url());
    assert_ne!(house, phone);
    web.wait_for_text(
        "<span class=\"badge ok\">done</span>",
        Duration::from_secs(90),
        false,
    );
    web.goto(&served.url("/documents/io.cozy.timeseries.energy"))
        .wait_for("#chart-energy");

    // Remove Free Mobile with its data: its files go too.
    assert!(!home.files().is_empty());
    web.goto(&served.url(&format!("/accounts/{phone}/remove")))
        .check("#purge")
        .click("#confirm-remove");
    web.wait_for_text("Your accounts", Duration::from_secs(20), false);
    assert!(!web.html().contains(&format!("/accounts/{phone}\"")));
    let list = home.ok(&["accounts", "list"]);
    assert!(!list.contains("phone"), "{list}");
    assert!(list.contains("house"), "{list}");
    let bills = home.ok(&["docs", "io.cozy.bills", "--json", "--limit", "1000"]);
    assert_eq!(bills.lines().count(), 0, "the removed account's bills stay");
}
