//! The account pages end to end: `gleaner serve` with its workers, Free
//! Mobile's sandbox in this process, and chromium. A run started from the
//! page asks for the emailed code and the prompt appears by itself (server-
//! sent events), or on reload with scripts off; a refused password is said
//! in plain words with its next step, and fixed from the page; automatic
//! runs are paused and resumed; an account is removed with or without its
//! data.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod web_common;

use std::time::{Duration, Instant};

use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN_2FA, PASSWORD, Sandbox, Scenario};
use web_common::common::add_args;
use web_common::{Home, Served, Web};

/// How long a step of a run may take on a busy machine.
const LIMIT: Duration = Duration::from_secs(90);

/// Adds a Free Mobile account (through the CLI) and returns its id.
fn add(home: &Home, sandbox: &Sandbox, login: &str, password: &str, label: &str) -> String {
    let mut args = add_args(login, password, label);
    args.extend(["--endpoint".to_owned(), sandbox.base_url()]);
    home.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    account_id(home, label)
}

/// An account's id, from `gleaner accounts list`.
fn account_id(home: &Home, label: &str) -> String {
    home.ok(&["accounts", "list"])
        .lines()
        .find(|l| l.contains(label))
        .and_then(|l| l.split(['│', '┆']).nth(1))
        .map(|s| s.trim().to_owned())
        .expect("the account's id")
}

/// How many documents of a doctype the store holds.
fn count(home: &Home, doctype: &str) -> usize {
    home.ok(&["docs", doctype, "--json", "--limit", "10000"])
        .lines()
        .count()
}

/// The harness's browser.
type Browser = Web;

/// Opens a URL and waits for it to load.
fn open(web: &Browser, url: &str) {
    web.goto(url);
}

/// Clicks an element that does not open another page.
fn press(web: &Browser, selector: &str) {
    web.check(selector);
}

/// Types into an input.
fn type_in(web: &Browser, selector: &str, text: &str) {
    web.fill(selector, text);
}

/// Clicks a link or button that opens another page, and waits for it.
fn follow(web: &Browser, selector: &str) {
    web.click(selector);
}

/// Logs in with the server's one-time link.
fn log_in(web: &Browser, served: &Served) {
    web.login(served);
}

/// Reloads the page (scripts off: nothing else does) until it contains
/// `text`.
fn reload_until(web: &Browser, text: &str) {
    web.wait_for_text(text, LIMIT, true);
}

/// Waits until the page (which reloads itself: nobody touches it here)
/// contains `text`. A read that lands in the middle of a reload is retried.
fn wait_live(web: &Browser, text: &str) {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Ok(html) = web.tab.get_content()
            && html.contains(text)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{text}` never showed by itself on {}:\n{}",
            web.current_url(),
            web.tab.get_content().unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a 2FA account from its page and answers the emailed code; `live`:
/// scripts on, nothing reloaded by hand.
async fn run_with_emailed_code(live: bool) {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    let id = add(&home, &sandbox, LOGIN_2FA, PASSWORD, "mine");
    let served = Served::start(&home, &[], &[]);
    let web = Browser::launch(live);
    log_in(&web, &served);
    open(&web, &served.url(&format!("/accounts/{id}")));
    web.wait_for("#run-now");
    assert!(web.html().contains("No run is going."), "{}", web.html());
    follow(&web, "#run-now");
    let prompt = "Free Mobile sent a code by email to j***@example.org. Type it here:";
    if live {
        // The page shown after the click does not ask yet (the worker
        // takes the job within its poll); the prompt comes from a reload
        // the page did by itself when the run asked (app.js, on the
        // server-sent `state` event): the test never reloads in this mode,
        // so a page whose navigation type is `reload` proves it. (A mark
        // set on the page raced with that reload on a slow machine.)
        assert!(!web.html().contains(prompt), "{}", web.html());
        wait_live(&web, prompt);
        let how = web
            .tab
            .evaluate("performance.getEntriesByType('navigation')[0].type", false)
            .unwrap();
        assert_eq!(
            how.value,
            Some(serde_json::Value::String("reload".into())),
            "the prompt was not brought by the page's own reload"
        );
    } else {
        reload_until(&web, prompt);
    }
    web.wait_for("form#twofa #code")
        .wait_for("label[for=code]")
        .wait_for("#send-code");
    if live {
        web.screenshot("account-2fa");
    }
    let html = web.html();
    assert!(html.contains("waiting for your code"), "{html}");
    assert!(html.contains(r#"autocomplete="one-time-code""#), "{html}");

    let code = sandbox.last_email_code().expect("a code was emailed");
    type_in(&web, "#code", &code);
    follow(&web, "#send-code");
    let done = "20 bills, 20 files imported";
    if live {
        wait_live(&web, done);
        wait_live(&web, "No run is going.");
    } else {
        reload_until(&web, done);
    }
    let html = web.html();
    assert!(
        html.contains(r#"<span class="badge ok">ok</span>"#),
        "{html}"
    );
    assert!(!html.contains(&code), "the code is never shown again");
    if live {
        web.screenshot("account");
    }
    assert_eq!(count(&home, "io.cozy.bills"), 20);
    assert_eq!(sandbox.verification_posts(), 1);

    // The home page lists it as fine.
    open(&web, &served.url("/"));
    web.wait_for("#accounts");
    let html = web.html();
    assert!(
        html.contains(&format!(r#"href="/accounts/{id}">mine</a>"#)),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="badge ok">ok</span>"#),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emailed_code_is_asked_on_the_page_without_reloading_it() {
    if !web_common::chromium_or_skip() {
        return;
    }
    run_with_emailed_code(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emailed_code_is_asked_on_the_page_with_scripts_off() {
    if !web_common::chromium_or_skip() {
        return;
    }
    run_with_emailed_code(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_password_is_said_in_plain_words_and_fixed_from_the_page() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    // The test ends with a run waiting for its code: the server's stop
    // gives it a one-second grace, not the default thirty.
    std::fs::write(
        home.path().join("gleaner.toml"),
        "[scheduler]\ngrace_secs = 1\n",
    )
    .unwrap();
    let id = add(
        &home,
        &sandbox,
        gleaner_konnectors::telco::free_mobile::sandbox::LOGIN,
        "not-the-password",
        "phone",
    );
    let served = Served::start(&home, &[], &[]);
    let web = Browser::launch(true);
    log_in(&web, &served);
    let page = served.url(&format!("/accounts/{id}"));
    open(&web, &page);
    follow(&web, "#run-now");
    wait_live(&web, "Free Mobile refused the login or the password.");
    let html = web.html();
    assert!(
        html.contains(r#"<span class="badge bad">needs you</span>"#),
        "{html}"
    );
    assert!(
        html.contains("LOGIN_FAILED"),
        "the code in small print: {html}"
    );
    assert!(
        html.contains(&format!(
            r#"<a class="button" id="next-step" href="/accounts/{id}/edit">Update the credentials</a>"#
        )),
        "{html}"
    );
    web.screenshot("account-error");

    // The home page says what to do, too.
    open(&web, &served.url("/"));
    web.wait_for("#accounts");
    let html = web.html();
    assert!(
        html.contains(&format!(
            r#"<a href="/accounts/{id}/edit">Update the credentials</a>"#
        )),
        "{html}"
    );
    assert!(html.contains("skipped until fixed"), "{html}");

    // A refused field comes back beside it, the others kept, secrets never.
    open(&web, &page);
    follow(&web, "#next-step");
    web.wait_for("#field-password");
    let html = web.html();
    assert!(!html.contains("not-the-password"), "{html}");
    assert!(
        html.contains("Leave empty to keep the current one."),
        "{html}"
    );
    web.tab
        .wait_for_element("#field-login")
        .unwrap()
        .call_js_fn("function() { this.value = ''; }", vec![], false)
        .unwrap();
    type_in(&web, "#field-login", "123");
    follow(&web, "#save");
    web.wait_for("#error-login");
    let html = web.html();
    assert!(html.contains(r#"aria-invalid="true""#), "{html}");
    assert!(
        html.contains(r#"value="123""#),
        "the refused value is kept: {html}"
    );

    // The right password lifts the block; the next run imports.
    web.tab
        .wait_for_element("#field-login")
        .unwrap()
        .call_js_fn("function() { this.value = ''; }", vec![], false)
        .unwrap();
    type_in(
        &web,
        "#field-login",
        gleaner_konnectors::telco::free_mobile::sandbox::LOGIN,
    );
    type_in(&web, "#field-password", PASSWORD);
    follow(&web, "#save");
    web.wait_for("#run-now");
    let html = web.html();
    assert!(html.contains("Saved: mot de passe."), "{html}");
    assert!(!html.contains("needs you"), "the block is lifted: {html}");
    follow(&web, "#run-now");
    wait_live(&web, "20 bills, 20 files imported");
    wait_live(&web, r#"<span class="badge ok">ok</span>"#);
    assert!(!web.html().contains(PASSWORD));
    assert_eq!(count(&home, "io.cozy.bills"), 20);

    // Pause and resume.
    follow(&web, "#pause");
    web.wait_for("#resume");
    let html = web.html();
    assert!(html.contains("Automatic runs paused"), "{html}");
    assert!(html.contains(r#"<dd id="next-run">paused</dd>"#), "{html}");
    open(&web, &served.url("/"));
    web.wait_for("#accounts");
    assert!(web.html().contains(r#"<span class="badge ">paused</span>"#));
    open(&web, &page);
    follow(&web, "#resume");
    web.wait_for("#pause");
    let html = web.html();
    assert!(html.contains("Automatic runs resumed."), "{html}");
    assert!(!html.contains(r#"<dd id="next-run">paused</dd>"#), "{html}");

    // A second run while one waits is refused in words.
    let sandbox_2fa = add(&home, &sandbox, LOGIN_2FA, PASSWORD, "second");
    let second = served.url(&format!("/accounts/{sandbox_2fa}"));
    open(&web, &second);
    follow(&web, "#run-now");
    wait_live(&web, "Type it here:");
    follow(&web, "#run-now");
    web.wait_for("#twofa");
    assert!(web.html().contains("is already going"), "{}", web.html());
    // A code for an account whose run does not wait is refused in words
    // (the form is built by hand: the page shows none).
    open(&web, &page);
    web.wait_for("#run-now");
    web.loading("the hand-made form", || {
        web.tab
            .evaluate(
                &format!(
                    "(() => {{ const f = document.createElement('form'); f.method = 'post'; \
                     f.action = '/accounts/{id}/2fa'; \
                     for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['code', '123456']]) {{ \
                       const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }} \
                     document.body.appendChild(f); f.submit(); }})()"
                ),
                false,
            )
            .unwrap();
    });
    let html = web.html();
    assert!(
        html.contains("No run of this account is waiting for a code now"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_is_removed_with_or_without_its_data() {
    if !web_common::chromium_or_skip() {
        return;
    }
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    let login = gleaner_konnectors::telco::free_mobile::sandbox::LOGIN;
    let kept = add(&home, &sandbox, login, PASSWORD, "kept");
    let purged = add(&home, &sandbox, login, PASSWORD, "purged");
    home.ok(&["run", "kept"]);
    home.ok(&["run", "purged"]);
    assert_eq!(count(&home, "io.cozy.bills"), 40);
    assert_eq!(home.files().len(), 40);
    let purged_dir = home.path().join("files").join("Free Mobile").join(&purged);
    assert!(purged_dir.is_dir(), "{}", purged_dir.display());

    let served = Served::start(&home, &["--no-daemon"], &[]);
    let web = Browser::launch(true);
    log_in(&web, &served);
    open(&web, &served.url(&format!("/accounts/{purged}")));
    follow(&web, "#remove");
    web.wait_for("#purge").wait_for("#confirm-remove");
    let html = web.html();
    assert!(
        html.contains("Also delete its 40 documents and 20 files"),
        "{html}"
    );
    press(&web, "#purge");
    web.screenshot("remove");
    follow(&web, "#confirm-remove");
    let html = web.html();
    assert!(
        html.contains("Removed purged with its documents and files."),
        "{html}"
    );
    assert!(!html.contains(&format!("/accounts/{purged}")), "{html}");
    assert_eq!(count(&home, "io.cozy.bills"), 20, "its documents are gone");
    assert_eq!(home.files().len(), 20, "its files are gone");
    assert!(!purged_dir.exists());

    open(&web, &served.url(&format!("/accounts/{kept}/remove")));
    web.wait_for("#confirm-remove");
    follow(&web, "#confirm-remove");
    web.wait_for("h1");
    let html = web.html();
    assert!(
        html.contains("Removed kept; its documents and files are kept."),
        "{html}"
    );
    assert!(html.contains("No provider yet."), "{html}");
    assert_eq!(count(&home, "io.cozy.bills"), 20, "its documents are kept");
    assert_eq!(home.files().len(), 20, "its files are kept");
    assert!(!home.ok(&["accounts", "list"]).contains("kept"));

    // Its page is gone.
    open(&web, &served.url(&format!("/accounts/{kept}")));
    assert!(web.html().contains("there is no such account"));
}
