//! The portal's pages: the login form and its emailed-code steps, the
//! token servlet, the home page, and the payments portlet (list, detail,
//! statements).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::NaiveDate;
use gleaner_sandbox_kit::cookies::{self, SetCookie};
use gleaner_sandbox_kit::{form, respond};

use super::data::{self, Markup, Payment};
use super::state::{SentEmail, Session, Shared, Visit};
use super::{MAX_FAILED_LOGINS, Scenario, TRUSTED_DEVICE_COOKIE};

const LOGIN_HTML: &str = include_str!("../../../../../fixtures/ameli/login.html");
const FIELDS_CREDENTIALS: &str =
    include_str!("../../../../../fixtures/ameli/login_fields_credentials.html");
const FIELDS_OTP_NEEDED: &str =
    include_str!("../../../../../fixtures/ameli/login_fields_otp_needed.html");
const FIELDS_OTP_ENTRY: &str =
    include_str!("../../../../../fixtures/ameli/login_fields_otp_entry.html");
const ACCUEIL_HTML: &str = include_str!("../../../../../fixtures/ameli/accueil.html");
const BLOCKED_HTML: &str = include_str!("../../../../../fixtures/ameli/blocked.html");
/// The "compte indisponible" page, served by the kit's maintenance switch.
pub const MAINTENANCE_HTML: &str = include_str!("../../../../../fixtures/ameli/maintenance.html");

const NOT_FOUND_HTML: &str = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n";
const FORBIDDEN_HTML: &str = "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1><p>Jeton de sécurité invalide.</p></body></html>\n";
const BAD_REQUEST_HTML: &str = "<!DOCTYPE html>\n<html><head><title>400 Bad Request</title></head><body><h1>Bad Request</h1></body></html>\n";

/// The alert of a refused password (Cozy's and Woob's string).
pub const WRONG_PASSWORD_ALERT: &str =
    "Le numéro de sécurité sociale et le code personnel ne correspondent pas.";
/// The alert of a refused code.
pub const WRONG_CODE_ALERT: &str = "Le code de sécurité saisi est incorrect. Veuillez réessayer.";

/// The login page at `step`.
pub fn login_page(step: &str, alert: Option<&str>, hint: &str) -> String {
    let fields = match step {
        "OTP_NECESSAIRE" => FIELDS_OTP_NEEDED,
        "SAISIE_OTP" | "KO_SAISIE_OTP" => FIELDS_OTP_ENTRY,
        _ => FIELDS_CREDENTIALS,
    };
    LOGIN_HTML
        .replace("{{fields}}", fields.trim_end())
        .replace("{{step}}", step)
        .replace("{{alert_class}}", if alert.is_some() { "" } else { "invisible" })
        .replace("{{alert}}", alert.unwrap_or(""))
        .replace("{{hint}}", hint)
}

/// The home page of `name`.
pub fn accueil_page(name: &str) -> String {
    ACCUEIL_HTML.replace("{{name}}", name)
}

/// The blocked-account page.
pub fn blocked_page() -> &'static str {
    BLOCKED_HTML
}

fn html(status: StatusCode, body: impl Into<Body>) -> Response {
    respond::html(status, body)
}

fn with_cookies(mut response: Response, set: &[SetCookie]) -> Response {
    for cookie in set {
        match cookie.header_value() {
            Some(value) => {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            None => return html(StatusCode::INTERNAL_SERVER_ERROR, "cookie"),
        }
    }
    response
}

fn redirect(location: &str) -> Response {
    respond::redirect(location).unwrap_or_else(|| html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML))
}

const ACCUEIL_PATH: &str = "/PortailAS/appmanager/PortailAS/assure?_nfpb=true&_pageLabel=as_accueil_page";
const LOGIN_PATH: &str = "/PortailAS/appmanager/PortailAS/assure?_nfpb=true&_pageLabel=as_login_page&connexioncompte_2actionEvt=afficher";

/// `GET` of a portal page: the login page (a session starts), or a
/// logged-in page.
pub fn portal_get(shared: &Shared, query: &str, headers: &HeaderMap) -> Response {
    let params = form::parse(query.as_bytes());
    let label = params.get("_pageLabel").map(String::as_str).unwrap_or("");
    let current = shared.sessions.current(headers);
    if label == "as_login_page" || label.is_empty() {
        let mut set = Vec::new();
        if current.is_none() {
            let (_, cookie) = shared.sessions.create(Session::new(Visit::Anonymous));
            set.push(cookie);
        }
        return with_cookies(
            html(StatusCode::OK, login_page("", None, "")),
            &set,
        );
    }
    match current {
        Some((_, session)) if session.visit == Visit::LoggedIn => html(
            StatusCode::OK,
            accueil_page(&shared.fixture.insured.name),
        ),
        _ => redirect(LOGIN_PATH),
    }
}

/// `POST /PortailAS/JavaScriptServlet` with `FETCH-CSRF-TOKEN: 1`:
/// `_ct:<token>` of the session (one starts if needed).
pub fn csrf_post(shared: &Shared, headers: &HeaderMap) -> Response {
    if headers
        .get("fetch-csrf-token")
        .and_then(|v| v.to_str().ok())
        != Some("1")
    {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    }
    let (ct, set) = match shared.sessions.current(headers) {
        Some((_, session)) => (session.ct, Vec::new()),
        None => {
            let session = Session::new(Visit::Anonymous);
            let ct = session.ct.clone();
            let (_, cookie) = shared.sessions.create(session);
            (ct, vec![cookie])
        }
    };
    let response = respond::with_type(StatusCode::OK, "text/plain;charset=UTF-8", format!("_ct:{ct}"));
    with_cookies(response, &set)
}

/// `POST` of the login form, at any step.
pub fn login_post(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = form::parse(body);
    let Some((id, session)) = shared.sessions.current(headers) else {
        // No session cookie: the portal shows the form again.
        return html(StatusCode::OK, login_page("", None, ""));
    };
    if form.get("_ct") != Some(&session.ct) {
        return html(StatusCode::FORBIDDEN, FORBIDDEN_HTML);
    }
    let hint = shared.fixture.insured.email_hint.clone();
    match form.get("authStep").map(String::as_str).unwrap_or("") {
        "ENVOI_OTP" => {
            if session.visit != Visit::CodeNeeded {
                return html(StatusCode::OK, login_page("", None, ""));
            }
            let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
            shared.outbox().push(SentEmail {
                to: shared.fixture.insured.email.clone(),
                subject: "Votre code de sécurité ameli".to_owned(),
                body: format!(
                    "Bonjour,\n\nVoici votre code de sécurité pour vous connecter à votre compte ameli : {code}\nIl est valable 15 minutes.\n\nL'Assurance Maladie\n"
                ),
                code: code.clone(),
            });
            shared.sessions.update(&id, |s| s.visit = Visit::CodeSent { code });
            html(StatusCode::OK, login_page("SAISIE_OTP", None, &hint))
        }
        "SAISIE_OTP" => {
            let Visit::CodeSent { code } = session.visit else {
                return html(StatusCode::OK, login_page("", None, ""));
            };
            let typed: String = (1..=6)
                .filter_map(|i| form.get(&format!("numOTP{i}")))
                .map(|d| d.trim().to_owned())
                .collect();
            if typed != code {
                return html(
                    StatusCode::OK,
                    login_page("KO_SAISIE_OTP", Some(WRONG_CODE_ALERT), &hint),
                );
            }
            let mut set = Vec::new();
            if form.get("enrolerDevice").map(String::as_str) == Some("on") {
                let device = uuid::Uuid::new_v4().simple().to_string();
                shared.trusted().insert(device.clone());
                set.push(
                    SetCookie::new(TRUSTED_DEVICE_COOKIE, device)
                        .max_age(180 * 24 * 3600)
                        .path("/")
                        .http_only(),
                );
            }
            logged_in(shared, &id, set)
        }
        _ => credentials(shared, headers, &id, &form),
    }
}

fn credentials(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
    form: &HashMap<String, String>,
) -> Response {
    let (Some(nir), Some(password)) = (
        form.get("connexioncompte_2numSecuriteSociale"),
        form.get("connexioncompte_2codeConfidentiel"),
    ) else {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    };
    let nir = nir.trim().to_owned();
    {
        let mut failures = shared.failed_logins();
        let count = failures.entry(nir.clone()).or_insert(0);
        if *count >= MAX_FAILED_LOGINS {
            return html(StatusCode::OK, blocked_page());
        }
        if nir != shared.fixture.nir13() || *password != shared.password() {
            *count += 1;
            return html(
                StatusCode::OK,
                login_page("", Some(WRONG_PASSWORD_ALERT), ""),
            );
        }
        failures.remove(&nir);
    }
    if shared.scenario() == Scenario::NewDevice {
        let trusted = {
            let known = shared.trusted();
            cookies::values(headers, TRUSTED_DEVICE_COOKIE).any(|d| known.contains(d))
        };
        if !trusted {
            shared
                .sessions
                .update(id, |s| s.visit = Visit::CodeNeeded);
            return html(
                StatusCode::OK,
                login_page("OTP_NECESSAIRE", None, &shared.fixture.insured.email_hint),
            );
        }
    }
    logged_in(shared, id, Vec::new())
}

/// A fresh logged-in session (a new id and token, like a login should),
/// and a redirect to the home page.
fn logged_in(shared: &Shared, old: &str, mut set: Vec<SetCookie>) -> Response {
    shared.sessions.remove(old);
    let (_, cookie) = shared.sessions.create(Session::new(Visit::LoggedIn));
    set.insert(0, cookie);
    with_cookies(redirect(ACCUEIL_PATH), &set)
}

/// `GET /PortailAS/paiements.do`: the list (JSON), a detail, a statement.
pub fn payments_get(shared: &Shared, query: &str, headers: &HeaderMap) -> Response {
    let Some((_, session)) = shared.sessions.current(headers) else {
        return redirect(LOGIN_PATH);
    };
    if session.visit != Visit::LoggedIn {
        return redirect(LOGIN_PATH);
    }
    let params = form::parse(query.as_bytes());
    let action = params.get("actionEvt").map(String::as_str).unwrap_or("");
    if action == "telechargerDecompte" {
        return statement(shared, &params);
    }
    // The portlet's XHRs carry the token as a header.
    if headers.get("_ct").and_then(|v| v.to_str().ok()) != Some(session.ct.as_str()) {
        return html(StatusCode::FORBIDDEN, FORBIDDEN_HTML);
    }
    match action {
        "afficherPaiementsComplementaires" | "Rechercher" => list(shared, &params),
        "chargerDetailPaiements" => detail(shared, &params),
        _ => html(StatusCode::NOT_FOUND, NOT_FOUND_HTML),
    }
}

fn date_param(params: &HashMap<String, String>, name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(params.get(name)?.trim(), "%d/%m/%Y").ok()
}

fn list(shared: &Shared, params: &HashMap<String, String>) -> Response {
    let (Some(from), Some(to)) = (date_param(params, "DateDebut"), date_param(params, "DateFin"))
    else {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    };
    let offset = match params.get("indexPaiement").map(|s| s.trim()) {
        None | Some("") => 0,
        Some(n) => match n.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML),
        },
    };
    let window: Vec<&Payment> = shared
        .fixture
        .payments
        .iter()
        .filter(|p| from <= p.date && p.date <= to)
        .collect();
    let scenario = shared.scenario();
    let markup = if scenario == Scenario::ChangedMarkup {
        Markup::Redesigned
    } else {
        Markup::Real
    };
    let table = data::list_html(&window, offset, shared.fixture.page_size, markup);
    shared.list_pages.fetch_add(1, Ordering::SeqCst);
    let key = if scenario == Scenario::ChangedSchema {
        // The portlet renamed its field.
        "listePaiementsHtml"
    } else {
        "tableauPaiement"
    };
    respond::json(StatusCode::OK, &serde_json::json!({ key: table }))
}

fn detail(shared: &Shared, params: &HashMap<String, String>) -> Response {
    let Some(payment) = params
        .get("idPaiement")
        .and_then(|id| shared.fixture.payments.iter().find(|p| &p.id == id))
    else {
        return html(StatusCode::NOT_FOUND, NOT_FOUND_HTML);
    };
    if params.get("naturePaiement") != Some(&payment.nature) {
        return html(StatusCode::NOT_FOUND, NOT_FOUND_HTML);
    }
    let group = params.get("indexGroupe").map(String::as_str).unwrap_or("0");
    let index = params.get("indexPaiement").map(String::as_str).unwrap_or("0");
    shared.details.fetch_add(1, Ordering::SeqCst);
    html(StatusCode::OK, data::detail_html(payment, group, index))
}

fn statement(shared: &Shared, params: &HashMap<String, String>) -> Response {
    let Some((id, bytes)) = params
        .get("idPaiement")
        .and_then(|id| data::pdf(id).map(|b| (id.clone(), b)))
    else {
        return html(StatusCode::NOT_FOUND, NOT_FOUND_HTML);
    };
    shared.pdf_downloads.fetch_add(1, Ordering::SeqCst);
    let mut response = Response::new(Body::from(Bytes::from_static(bytes)));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"decompte_{id}.pdf\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Any other path.
pub fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, NOT_FOUND_HTML)
}
