//! The sandbox, driven over raw HTTP/1.1.

use super::invoices::PDFS;
use super::pages::{HOME_CHANGED_HTML, HOME_LINE1_HTML, HOME_LINE2_HTML, LINES, SERVER};
use super::*;
use gleaner_sandbox_kit::form::parse as parse_pairs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// Every `Set-Cookie` pair (`name=value`), in order.
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, value)| value.split(';').next())
            .map(|pair| pair.trim().to_owned())
            .collect()
    }

    /// `PHPSESSID=...` from `Set-Cookie`, ready for a `Cookie` header.
    fn session_cookie(&self) -> Option<String> {
        let set_cookie = self.header("set-cookie")?;
        let pair = set_cookie.split(';').next()?.trim();
        pair.starts_with("PHPSESSID=").then(|| pair.to_owned())
    }
}

/// Sends one request on a fresh connection and reads the whole response.
async fn send(
    sandbox: &Sandbox,
    method: &str,
    target: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(sandbox.addr).await.expect("connect");
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sandbox-test\r\nAccept: */*\r\nConnection: close\r\n",
        sandbox.addr
    );
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("end of headers");
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .expect("status code")
        .parse()
        .expect("numeric status");
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(length) = reply.header("content-length") {
        let length: usize = length.parse().expect("numeric length");
        assert_eq!(rest.len(), length, "body length matches Content-Length");
        reply.body = rest.to_vec();
    } else if reply
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(rest);
    } else {
        reply.body = rest.to_vec();
    }
    reply
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&data[..end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        data = &data[end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `POST /account/` with the login form, no cookie.
async fn post_login(sandbox: &Sandbox, ident: &str, password: &str) -> Reply {
    send(
        sandbox,
        "POST",
        "/account/",
        None,
        Some(&login_form(ident, password)),
    )
    .await
}

fn login_form(ident: &str, password: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("login-ident", ident)
        .append_pair("login-pwd", password)
        .append_pair("bt-login", "1")
        .finish()
}

async fn login(sandbox: &Sandbox) -> String {
    let reply = send(
        sandbox,
        "POST",
        "/account/",
        None,
        Some(&login_form(LOGIN, PASSWORD)),
    )
    .await;
    assert_eq!(reply.status, 302);
    reply.session_cookie().expect("session cookie")
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Invoice download links of a page, `&amp;` decoded.
fn invoice_links(page: &str) -> Vec<String> {
    page.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with("/account/conso-et-factures?facture="))
        .map(|href| href.replace("&amp;", "&"))
        .collect()
}

fn pdf_link(id: &str) -> String {
    let pdf = PDFS.iter().find(|pdf| pdf.id == id).expect("known id");
    format!(
        "/account/conso-et-factures?facture={}&l={}&id={}&date=20251202",
        pdf.facture, pdf.line, pdf.id
    )
}

#[test]
fn fixtures_are_consistent() {
    let mut ids: Vec<&str> = PDFS.iter().map(|pdf| pdf.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    for pdf in &PDFS {
        assert_eq!(pdf.id.len(), 16);
        assert!(
            pdf.id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(pdf.bytes.starts_with(b"%PDF-1.4"));
        assert!(pdf.bytes.ends_with(b"%%EOF\n"));
    }
    let mut linked = Vec::new();
    for (line, page) in LINES {
        for href in invoice_links(page) {
            let params = parse_pairs(href.split_once('?').expect("query").1.as_bytes());
            let pdf = PDFS
                .iter()
                .find(|pdf| Some(&pdf.id.to_owned()) == params.get("id"))
                .expect("linked PDF exists");
            assert_eq!(params.get("facture").map(String::as_str), Some(pdf.facture));
            assert_eq!(params.get("l").map(String::as_str), Some(pdf.line));
            assert_eq!(pdf.line, line);
            linked.push(pdf.id);
        }
    }
    linked.sort_unstable();
    assert_eq!(linked, ids, "every PDF is linked exactly once");
    assert_eq!(invoice_links(HOME_CHANGED_HTML).len(), 14);
}

#[tokio::test]
async fn login_sets_cookie_and_home_lists_line_one_invoices() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let anonymous = send(&sandbox, "GET", "/account/", None, None).await;
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.text().contains("class=\"form-login\""));
    assert_eq!(anonymous.header("server"), Some(SERVER));
    assert_eq!(
        anonymous.header("content-type"),
        Some("text/html; charset=UTF-8")
    );

    let reply = post_login(&sandbox, LOGIN, PASSWORD).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("/account/"));
    let set_cookie = reply.header("set-cookie").expect("Set-Cookie");
    assert!(set_cookie.starts_with("PHPSESSID="));
    assert!(set_cookie.contains("Path=/"));
    assert!(set_cookie.contains("HttpOnly"));
    let cookie = reply.session_cookie().expect("cookie");

    let home = send(&sandbox, "GET", "/account/", Some(&cookie), None).await;
    assert_eq!(home.status, 200);
    let page = home.text();
    assert!(page.contains("href=\"/account/?logout\""));
    assert!(!page.contains("form-login"));
    assert!(page.contains("<p class=\"table-sub-title\">06 12 34 56 78</p>"));
    assert_eq!(count(&page, "<div class=\"invoice"), 14);
    assert_eq!(count(&page, "facture=pdf&amp;"), 12);
    assert_eq!(count(&page, "facture=pdfrecap&amp;"), 2);
    assert_eq!(invoice_links(&page).len(), 14);

    // Another cookie value is just "logged out".
    let stranger = send(&sandbox, "GET", "/account/", Some("PHPSESSID=nope"), None).await;
    assert!(stranger.text().contains("class=\"form-login\""));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn wrong_password_shows_flash_error() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let reply = post_login(&sandbox, LOGIN, "wrong").await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("set-cookie").is_none());
    let page = reply.text();
    assert!(page.contains("flash flash-error"));
    assert!(page.contains("Votre nom d'utilisateur ou mot de passe incorrect"));
    assert!(page.contains("class=\"form-login\""));

    let missing = send(
        &sandbox,
        "POST",
        "/account/",
        None,
        Some("login-ident=12345678"),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(sandbox.login_posts(), 2);
}

#[tokio::test]
async fn blocked_after_five_failures() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    for _ in 0..5 {
        let reply = post_login(&sandbox, LOGIN, "wrong").await;
        assert!(reply.text().contains("mot de passe incorrect"));
    }
    let reply = post_login(&sandbox, LOGIN, PASSWORD).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("set-cookie").is_none());
    assert!(
        reply
            .text()
            .contains("Les connexions à votre compte sont temporairement bloquées")
    );
    assert_eq!(sandbox.login_posts(), 6);
}

#[tokio::test]
async fn pdf_needs_a_session_and_is_served_whole() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let link = pdf_link("bf084f2f231923b7");
    let anonymous = send(&sandbox, "GET", &link, None, None).await;
    assert_eq!(anonymous.status, 302);
    assert_eq!(anonymous.header("location"), Some("/account/"));
    assert_eq!(sandbox.pdf_downloads(), 0);

    let cookie = login(&sandbox).await;
    let reply = send(&sandbox, "GET", &link, Some(&cookie), None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/pdf"));
    let expected = PDFS[1].bytes;
    assert_eq!(
        reply.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    assert_eq!(reply.body, expected);
    assert!(reply.body.ends_with(b"%%EOF\n"));
    assert_eq!(sandbox.pdf_downloads(), 1);

    // Every link of both home pages downloads.
    let mut downloads = 1;
    for page in [HOME_LINE1_HTML, HOME_LINE2_HTML] {
        for href in invoice_links(page) {
            let reply = send(&sandbox, "GET", &href, Some(&cookie), None).await;
            assert_eq!(reply.status, 200, "{href}");
            downloads += 1;
        }
    }
    assert_eq!(sandbox.pdf_downloads(), downloads);

    // Unknown id, wrong line, wrong kind, missing date: 404.
    for target in [
        "/account/conso-et-factures?facture=pdf&l=12345678&id=0000000000000000&date=20251202",
        "/account/conso-et-factures?facture=pdf&l=87654321&id=bf084f2f231923b7&date=20251202",
        "/account/conso-et-factures?facture=pdfrecap&l=12345678&id=bf084f2f231923b7&date=20251202",
        "/account/conso-et-factures?facture=pdf&l=12345678&id=bf084f2f231923b7",
    ] {
        let reply = send(&sandbox, "GET", target, Some(&cookie), None).await;
        assert_eq!(reply.status, 404, "{target}");
    }
    assert_eq!(sandbox.pdf_downloads(), downloads);
}

#[tokio::test]
async fn truncated_pdf_scenario_serves_half() {
    let sandbox = Sandbox::start(Scenario::TruncatedPdf).await.expect("start");
    let cookie = login(&sandbox).await;
    let full = PDFS[0].bytes;
    let reply = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), full.len() / 2);
    assert_eq!(
        reply.header("content-length"),
        Some((full.len() / 2).to_string().as_str())
    );
    assert!(reply.body.starts_with(b"%PDF-1.4"));
    assert!(!reply.body.ends_with(b"%%EOF\n"));

    sandbox.set_scenario(Scenario::Normal);
    let reply = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
    assert_eq!(reply.body, full);
}

#[tokio::test]
async fn switch_user_and_logout() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let cookie = login(&sandbox).await;
    let line2 = send(
        &sandbox,
        "GET",
        "/account/?switch-user=87654321",
        Some(&cookie),
        None,
    )
    .await;
    let page = line2.text();
    assert!(page.contains("<p class=\"table-sub-title\">07 98 76 54 32</p>"));
    assert_eq!(count(&page, "<div class=\"invoice"), 6);
    assert!(!page.contains("pdfrecap"));

    // The session remembers the line; unknown ids change nothing.
    for target in ["/account/", "/account/?switch-user=99999999"] {
        let page = send(&sandbox, "GET", target, Some(&cookie), None)
            .await
            .text();
        assert!(page.contains("<p class=\"table-sub-title\">07 98 76 54 32</p>"));
    }
    let back = send(
        &sandbox,
        "GET",
        "/account/?switch-user=12345678",
        Some(&cookie),
        None,
    )
    .await;
    assert!(
        back.text()
            .contains("<p class=\"table-sub-title\">06 12 34 56 78</p>")
    );

    // Switching without a session shows the login page.
    let anonymous = send(
        &sandbox,
        "GET",
        "/account/?switch-user=87654321",
        None,
        None,
    )
    .await;
    assert!(anonymous.text().contains("class=\"form-login\""));

    let logout = send(&sandbox, "GET", "/account/?logout", Some(&cookie), None).await;
    assert_eq!(logout.status, 200);
    assert!(logout.text().contains("class=\"form-login\""));
    let after = send(&sandbox, "GET", "/account/", Some(&cookie), None).await;
    assert!(after.text().contains("class=\"form-login\""));
    let pdf = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
    assert_eq!(pdf.status, 302);
}

#[tokio::test]
async fn maintenance_scenario() {
    let sandbox = Sandbox::start(Scenario::Maintenance).await.expect("start");
    let page = send(&sandbox, "GET", "/account/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Opération de maintenance en cours"));
    assert!(!page.text().contains("form-login"));
    let post = post_login(&sandbox, LOGIN, PASSWORD).await;
    assert_eq!(post.status, 200);
    assert!(post.header("set-cookie").is_none());
    assert!(post.text().contains("Opération de maintenance en cours"));
    assert_eq!(sandbox.login_posts(), 1);

    sandbox.set_scenario(Scenario::Normal);
    let cookie = login(&sandbox).await;
    sandbox.set_scenario(Scenario::Maintenance);
    let pdf = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
    assert!(pdf.text().contains("Opération de maintenance en cours"));
}

#[tokio::test]
async fn changed_markup_scenario() {
    let sandbox = Sandbox::start(Scenario::ChangedMarkup)
        .await
        .expect("start");
    let cookie = login(&sandbox).await;
    for target in ["/account/", "/account/?switch-user=87654321"] {
        let page = send(&sandbox, "GET", target, Some(&cookie), None)
            .await
            .text();
        assert!(page.contains("href=\"/account/?logout\""));
        assert!(page.contains("invoices-list"));
        assert!(!page.contains("table-facture"));
        assert!(!page.contains("class=\"invoice\""));
        assert!(!page.contains("class=\"invoice "));
        assert_eq!(count(&page, "<article class=\"bill"), 14);
    }
}

#[tokio::test]
async fn unavailable_scenario() {
    let sandbox = Sandbox::start(Scenario::Unavailable).await.expect("start");
    for target in ["/account/", "/nowhere"] {
        let reply = send(&sandbox, "GET", target, None, None).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("retry-after"), Some("0"));
        assert!(reply.text().contains("Service Unavailable"));
    }
    let post = post_login(&sandbox, LOGIN, PASSWORD).await;
    assert_eq!(post.status, 503);
    assert_eq!(sandbox.login_posts(), 1);
    assert_eq!(sandbox.requests(), 3);
}

#[tokio::test]
async fn rate_limited_scenario() {
    let sandbox = Sandbox::start(Scenario::RateLimited).await.expect("start");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(send(&sandbox, "GET", "/account/", None, None).await.status);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429, 200]);
    sandbox.set_scenario(Scenario::RateLimited);
    let first = send(&sandbox, "GET", "/account/", None, None).await;
    assert_eq!(first.status, 200);
    let _ = send(&sandbox, "GET", "/account/", None, None).await;
    let third = send(&sandbox, "GET", "/account/", None, None).await;
    assert_eq!(third.status, 429);
    assert_eq!(third.header("retry-after"), Some("0"));
}

#[tokio::test]
async fn counters_and_concurrency() {
    let sandbox = Arc::new(Sandbox::start(Scenario::Normal).await.expect("start"));
    let cookie = login(&sandbox).await;
    assert_eq!(sandbox.requests(), 1);
    assert_eq!(sandbox.login_posts(), 1);
    let mut tasks = Vec::new();
    for pdf in PDFS.iter().take(8) {
        let sandbox = Arc::clone(&sandbox);
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            send(&sandbox, "GET", &pdf_link(pdf.id), Some(&cookie), None)
                .await
                .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join"), 200);
    }
    assert_eq!(sandbox.requests(), 9);
    assert_eq!(sandbox.pdf_downloads(), 8);
    assert!(sandbox.max_concurrent_sessions() >= 2);
    assert!(sandbox.max_concurrent_sessions() <= 8);

    let missing = send(&sandbox, "GET", "/nowhere", None, None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("Erreur 404"));
    assert_eq!(sandbox.requests(), 10);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sandbox = Sandbox::start(Scenario::default()).await.expect("start");
    let addr = sandbox.addr;
    assert!(sandbox.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(sandbox.base_url(), format!("http://{addr}"));
    sandbox.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());

    let dropped = Sandbox::start(Scenario::default()).await.expect("start");
    let addr = dropped.addr;
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

/// The hidden `otp-token` of a verification page.
fn otp_token(page: &str) -> String {
    let rest = page
        .split("name=\"otp-token\" value=\"")
        .nth(1)
        .expect("otp-token input");
    rest.split('"').next().expect("token value").to_owned()
}

fn otp_form(code: &str, token: &str, trust: bool) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("otp-token", token)
        .append_pair("otp", code);
    if trust {
        form.append_pair("otp-trust", "1");
    }
    form.append_pair("bt-otp", "1").finish()
}

/// Logs in as [`LOGIN_2FA`] (with `cookie`, if any) and expects the
/// verification page; returns its session cookie and token.
async fn login_2fa(sandbox: &Sandbox, cookie: Option<&str>) -> (String, String) {
    let reply = send(
        sandbox,
        "POST",
        "/account/",
        cookie,
        Some(&login_form(LOGIN_2FA, PASSWORD)),
    )
    .await;
    assert_eq!(reply.status, 200);
    let page = reply.text();
    assert!(page.contains("form-verification"), "{page}");
    assert!(page.contains(&format!(
        "Un code de vérification a été envoyé à <strong>{EMAIL_HINT}</strong>"
    )));
    assert!(!page.contains("{{token}}"));
    (reply.session_cookie().expect("session"), otp_token(&page))
}

#[tokio::test]
async fn new_device_verification_sends_a_code_and_trusts_the_device() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let (pending, token) = login_2fa(&sandbox, None).await;
    let outbox = sandbox.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, EMAIL_TO);
    let code = sandbox.last_email_code().expect("code");
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert!(outbox[0].body.contains(&code));

    // Pending is not logged in: the page again, and no PDF.
    let again = send(&sandbox, "GET", "/account/", Some(&pending), None).await;
    assert!(again.text().contains("form-verification"));
    assert_eq!(otp_token(&again.text()), token);
    let pdf = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&pending), None).await;
    assert_eq!(pdf.status, 302);

    // A wrong token is refused outright; a wrong code shows the error.
    let forged = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(&code, "forged", true)),
    )
    .await;
    assert_eq!(forged.status, 400);
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    let wrong = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(wrong_code, &token, true)),
    )
    .await;
    assert_eq!(wrong.status, 200);
    let page = wrong.text();
    assert!(page.contains("Le code saisi est incorrect. Il vous reste 4 essai(s)."));
    assert!(page.contains("form-verification"));

    // The same code still works after a wrong one.
    let right = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(&code, &token, true)),
    )
    .await;
    assert_eq!(right.status, 302);
    let cookies = right.set_cookies();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let session = cookies[0].clone();
    assert!(session.starts_with("PHPSESSID=") && session != pending);
    let device = cookies[1].clone();
    assert!(device.starts_with("fm_trusted_device="));
    assert!(
        right
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.contains("Max-Age="))
    );
    let home = send(&sandbox, "GET", "/account/", Some(&session), None).await;
    assert!(home.text().contains("href=\"/account/?logout\""));
    // The pending session is gone once used.
    let old = send(&sandbox, "GET", "/account/", Some(&pending), None).await;
    assert!(old.text().contains("class=\"form-login\""));
    assert_eq!(sandbox.verification_posts(), 3);

    // With the trusted-device cookie, no code is asked again.
    let trusted = send(
        &sandbox,
        "POST",
        "/account/",
        Some(&device),
        Some(&login_form(LOGIN_2FA, PASSWORD)),
    )
    .await;
    assert_eq!(trusted.status, 302);
    assert_eq!(sandbox.outbox().len(), 1);
    // Without it (another device), a new code is sent.
    let _ = login_2fa(&sandbox, None).await;
    assert_eq!(sandbox.outbox().len(), 2);
    // The plain demo account is never asked.
    let _ = login(&sandbox).await;
    assert_eq!(sandbox.outbox().len(), 2);
}

#[tokio::test]
async fn untrusted_success_and_logout_while_pending() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let (pending, token) = login_2fa(&sandbox, None).await;
    let code = sandbox.last_email_code().expect("code");
    let right = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(&code, &token, false)),
    )
    .await;
    assert_eq!(right.status, 302);
    assert_eq!(right.set_cookies().len(), 1, "no trusted-device cookie");

    let (pending, token) = login_2fa(&sandbox, None).await;
    let code = sandbox.last_email_code().expect("code");
    let out = send(&sandbox, "GET", "/account/?logout", Some(&pending), None).await;
    assert!(out.text().contains("class=\"form-login\""));
    let late = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(&code, &token, true)),
    )
    .await;
    assert!(late.text().contains("class=\"form-login\""));
    assert!(late.set_cookies().is_empty());
}

#[tokio::test]
async fn five_wrong_codes_lock_verification_for_a_while() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let (pending, token) = login_2fa(&sandbox, None).await;
    let code = sandbox.last_email_code().expect("code");
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    for remaining in (1..MAX_CODE_ATTEMPTS).rev() {
        let page = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(wrong_code, &token, true)),
        )
        .await
        .text();
        assert!(
            page.contains(&format!("Il vous reste {remaining} essai(s)")),
            "{page}"
        );
    }
    let locked = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(wrong_code, &token, true)),
    )
    .await
    .text();
    assert!(locked.contains("Trop de codes erronés"));
    assert!(!locked.contains("form-verification"));
    // The right code is of no use any more, nor a new login.
    let late = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(&code, &token, true)),
    )
    .await;
    assert!(late.text().contains("class=\"form-login\""));
    let relogin = post_login(&sandbox, LOGIN_2FA, PASSWORD).await;
    assert!(relogin.text().contains("Trop de codes erronés"));
    assert_eq!(sandbox.outbox().len(), 1);
    // After the lockout, a login sends a new code.
    sandbox.advance_clock(LOCKOUT + Duration::from_secs(1));
    let _ = login_2fa(&sandbox, None).await;
    assert_eq!(sandbox.outbox().len(), 2);
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let (pending, token) = login_2fa(&sandbox, None).await;
    let code = sandbox.last_email_code().expect("code");
    sandbox.advance_clock(CODE_VALIDITY + Duration::from_secs(1));
    let expired = send(
        &sandbox,
        "POST",
        "/account/verification",
        Some(&pending),
        Some(&otp_form(&code, &token, true)),
    )
    .await;
    assert_eq!(expired.status, 200);
    let page = expired.text();
    assert!(page.contains("Votre code de vérification a expiré"));
    assert!(page.contains("class=\"form-login\""));
    assert!(expired.set_cookies().is_empty());
}

#[tokio::test]
async fn the_outbox_endpoint_lists_sent_emails_and_is_not_counted() {
    let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
    let empty = send(&sandbox, "GET", OUTBOX_PATH, None, None).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.header("content-type"), Some("application/json"));
    assert_eq!(empty.text(), "[]");
    let _ = login_2fa(&sandbox, None).await;
    let code = sandbox.last_email_code().expect("code");
    let listed: serde_json::Value =
        serde_json::from_str(&send(&sandbox, "GET", OUTBOX_PATH, None, None).await.text())
            .expect("json");
    assert_eq!(listed[0]["code"], code.as_str());
    assert_eq!(listed[0]["to"], EMAIL_TO);
    assert_eq!(sandbox.requests(), 1, "debug routes are not counted");
    // Even when the site is down.
    sandbox.set_scenario(Scenario::Unavailable);
    assert_eq!(
        send(&sandbox, "GET", OUTBOX_PATH, None, None).await.status,
        200
    );
}
