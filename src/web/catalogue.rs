//! The catalogue of konnectors, the enable form generated from a manifest,
//! and the OAuth consent started from a page (its redirect comes back to
//! this server).
//!
//! - `GET /konnectors?q=&category=`: every konnector as a card, grouped by
//!   category, with what it imports, how it logs in and its second factor
//!   in words; `q` searches names, slugs, categories and doctypes.
//! - `GET /konnectors/{slug}`: the enable form, one input per manifest
//!   field (the manifest's pattern as HTML attributes and as a hint in
//!   words), plus the account's label and an optional server address.
//! - `POST /konnectors/{slug}/enable`: refusals come back beside their
//!   fields (422); a form-login account is created and its first import
//!   queued; an OAuth account first sends the browser to the provider's
//!   consent page (through `GET /oauth/consent?state=`, see
//!   [`consent_continue`]).
//! - `GET /oauth/callback`: the provider's redirect; the code is exchanged
//!   for tokens and the account created (or its consent renewed).
//! - `GET|POST /accounts/{id}/consent`: consent again for an account.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use gleaner_framework::manifest::PatternRule as Rule;
use gleaner_framework::manifest::{
    Category, FieldSpec, FieldType, LoginKind, MAX_FIELD_BYTES, OAuthGrant, SecondFactor,
};
use gleaner_framework::oauth::flow::{self, PendingAuthorization};
use gleaner_framework::oauth::{OAuthConfig, SystemClock};
use gleaner_framework::{ErrorCode, Manifest};
use serde::Deserialize;

use super::auth::Session;
use super::render::{self, Layout, Nav, WebError};
use super::security::CsrfForm;
use super::state::WebState;
use crate::accounts::{self, CheckedAccount, FieldError, NewAccount};

/// At most this many consents wait at once (each holds a checked account
/// until its redirect comes back or its `state` expires).
const MAX_PENDING_CONSENTS: usize = 64;

/// What a consent started from a page is for.
enum Purpose {
    /// A new account, created when the redirect brings its tokens.
    Create(Box<CheckedAccount>),
    /// An existing account whose consent is given again.
    Renew {
        /// The account's id.
        account_id: String,
    },
}

/// A consent waiting for the provider's redirect.
struct PendingConsent {
    /// The flow's half that checks the redirect and exchanges the code.
    authorization: PendingAuthorization,
    /// The session that started it (only it may finish it).
    session_key: String,
    /// The konnector's slug (where "try again" goes).
    slug: String,
    /// The provider's name, for the pages.
    provider: String,
    /// The provider's consent page.
    url: String,
    /// What the tokens are for.
    purpose: Purpose,
}

/// OAuth consents started from a page, by their `state`, waiting for the
/// provider's redirect; each is dropped when it comes back or when its
/// `state` expires ([`flow::STATE_LIFETIME`]).
#[derive(Default)]
pub struct Consents {
    pending: Mutex<HashMap<String, PendingConsent>>,
}

impl Consents {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, PendingConsent>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a consent under its `state`, dropping the expired ones (and,
    /// past [`MAX_PENDING_CONSENTS`], the oldest).
    fn insert(&self, state: String, consent: PendingConsent) {
        let mut pending = self.lock();
        pending.retain(|_, c| !c.authorization.remaining().is_zero());
        while pending.len() >= MAX_PENDING_CONSENTS {
            let oldest = pending
                .iter()
                .min_by_key(|(_, c)| c.authorization.expires_at())
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => pending.remove(&k),
                None => break,
            };
        }
        pending.insert(state, consent);
    }

    /// The consent page of a pending consent of `session`.
    fn url(&self, state: &str, session: &Session) -> Option<(String, String)> {
        self.lock()
            .get(state)
            .filter(|c| c.session_key == session.key && !c.authorization.remaining().is_zero())
            .map(|c| (c.provider.clone(), c.url.clone()))
    }

    /// Takes the consent of a redirect's `state` (once: a second redirect
    /// with the same state finds nothing), if `session` started it.
    fn take(&self, state: &str, session: &Session) -> Option<PendingConsent> {
        let mut pending = self.lock();
        let consent = pending.remove(state)?;
        (consent.session_key == session.key).then_some(consent)
    }
}

/// `/konnectors`, `/konnectors/{slug}`, `/oauth/callback`,
/// `/accounts/{id}/consent`.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/konnectors", get(catalogue))
        .route("/konnectors/{slug}", get(enable_form))
        .route("/konnectors/{slug}/enable", post(enable))
        .route("/oauth/consent", get(consent_continue))
        .route("/oauth/callback", get(oauth_callback))
        .route(
            "/accounts/{id}/consent",
            get(consent_form).post(consent_again),
        )
}

// ---- words -------------------------------------------------------------

/// A category as a heading.
fn category_name(category: Category) -> &'static str {
    match category {
        Category::Bank => "Banks",
        Category::Telco => "Phone and internet",
        Category::Energy => "Energy",
        Category::Insurance => "Health and insurance",
        Category::Other => "Other",
    }
}

/// Every category, in the catalogue's order.
const CATEGORIES: [Category; 5] = [
    Category::Bank,
    Category::Energy,
    Category::Insurance,
    Category::Telco,
    Category::Other,
];

/// A doctype in words.
fn doctype_words(doctype: &str) -> &str {
    match doctype {
        "io.cozy.bills" => "bills",
        "io.cozy.files" => "their PDF files",
        "io.cozy.bank.accounts" => "bank accounts",
        "io.cozy.bank.operations" => "bank operations",
        "io.cozy.bank.balancehistories" => "balance history",
        "io.cozy.timeseries.energy" => "energy consumption",
        other => other,
    }
}

/// Items as a sentence's list: `a`, `a and b`, `a, b and c`.
fn list_words(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What a konnector imports, as a sentence.
fn imports_words(manifest: &Manifest) -> String {
    let words: Vec<&str> = manifest
        .data_types
        .iter()
        .map(|d| doctype_words(d))
        .collect();
    let mut text = list_words(&words);
    if let Some(first) = text.get(..1) {
        text = format!("{}{}", first.to_uppercase(), &text[1..]);
    }
    text
}

/// How a konnector logs in, in words.
fn login_words(manifest: &Manifest) -> &'static str {
    match manifest.login_kind() {
        LoginKind::Form => "Logs in with your login and password",
        LoginKind::Browser => "Logs in with your login and password, in a hidden browser",
        LoginKind::ApiKey => "Uses keys you create on the provider's portal",
        LoginKind::Oauth2 if is_consent(manifest) => {
            "You give your consent on the provider's site; no password is kept"
        }
        LoginKind::Oauth2 => "Uses the application's client id and secret",
    }
}

/// The second factor, in words.
fn second_factor_words(factor: SecondFactor) -> &'static str {
    match factor {
        SecondFactor::None => "No second factor",
        SecondFactor::Email => "May ask for a code sent to you by email",
        SecondFactor::Sms => "May ask for a code sent to you by SMS",
        SecondFactor::App => "May ask you to approve in the provider's app",
        SecondFactor::Redirect => "Your bank asks you to approve on its own site",
    }
}

/// Whether enabling the konnector sends the person to a consent page
/// (OAuth2, authorization code grant).
fn is_consent(manifest: &Manifest) -> bool {
    manifest
        .oauth
        .as_ref()
        .is_some_and(|o| o.grant == OAuthGrant::AuthorizationCode)
}

// ---- the catalogue ------------------------------------------------------

/// One konnector's card.
struct Card {
    slug: String,
    name: String,
    imports: String,
    login: &'static str,
    second_factor: &'static str,
}

/// A category's heading and cards.
struct Group {
    id: String,
    name: &'static str,
    cards: Vec<Card>,
}

/// A category filter link.
struct CategoryLink {
    href: String,
    name: &'static str,
    current: bool,
}

#[derive(Template)]
#[template(path = "catalogue.html")]
struct CataloguePage {
    layout: Layout,
    q: String,
    category: String,
    filters: Vec<CategoryLink>,
    groups: Vec<Group>,
    shown: usize,
    total: usize,
}

/// The catalogue's query.
#[derive(Deserialize)]
struct CatalogueQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
}

/// Whether a konnector matches every word of a search (case-insensitive,
/// in its name, slug, category or doctypes, raw or in words).
fn matches(manifest: &Manifest, q: &str) -> bool {
    let mut haystack = vec![
        manifest.name.to_lowercase(),
        manifest.slug.to_lowercase(),
        manifest.category.to_string(),
        category_name(manifest.category).to_lowercase(),
    ];
    for d in &manifest.data_types {
        haystack.push(d.to_lowercase());
        haystack.push(doctype_words(d).to_lowercase());
    }
    q.to_lowercase()
        .split_whitespace()
        .all(|word| haystack.iter().any(|h| h.contains(word)))
}

/// A catalogue URL with its query.
fn catalogue_href(q: &str, category: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if !q.is_empty() {
        query.append_pair("q", q);
    }
    if !category.is_empty() {
        query.append_pair("category", category);
    }
    let query = query.finish();
    if query.is_empty() {
        "/konnectors".to_owned()
    } else {
        format!("/konnectors?{query}")
    }
}

async fn catalogue(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(query): Query<CatalogueQuery>,
) -> Result<Response, WebError> {
    let q = query.q.trim().to_owned();
    let category = query.category.trim().to_owned();
    let entries = state.app.registry.entries();
    let mut groups = Vec::new();
    let mut shown = 0;
    for c in CATEGORIES {
        if !category.is_empty() && c.to_string() != category {
            continue;
        }
        let cards: Vec<Card> = entries
            .iter()
            .map(|e| e.konnector.manifest())
            .filter(|m| m.category == c && matches(m, &q))
            .map(|m| Card {
                slug: m.slug.clone(),
                name: m.name.clone(),
                imports: imports_words(m),
                login: login_words(m),
                second_factor: second_factor_words(m.two_factor),
            })
            .collect();
        shown += cards.len();
        if !cards.is_empty() {
            groups.push(Group {
                id: format!("category-{c}"),
                name: category_name(c),
                cards,
            });
        }
    }
    let mut filters = vec![CategoryLink {
        href: catalogue_href(&q, ""),
        name: "All",
        current: category.is_empty(),
    }];
    filters.extend(CATEGORIES.iter().map(|c| CategoryLink {
        href: catalogue_href(&q, &c.to_string()),
        name: category_name(*c),
        current: c.to_string() == category,
    }));
    Ok(render::page(&CataloguePage {
        layout: Layout::new(&state, &session, "Add a provider", Nav::Catalogue),
        q,
        category,
        filters,
        groups,
        shown,
        total: entries.len(),
    }))
}

// ---- the enable form ----------------------------------------------------

/// A manifest's field pattern ([`PatternRule`], the framework's reading of
/// it) as the form shows it: HTML attributes and words.
trait RuleInForm: Copy {
    /// The HTML `pattern` attribute.
    fn html_pattern(self) -> Option<String>;
    /// The HTML `minlength` attribute.
    fn min_length(self) -> Option<usize>;
    /// The HTML `maxlength` attribute.
    fn max_length(self) -> usize;
    /// The rule in words.
    fn words(self) -> String;
}

impl RuleInForm for Rule {
    /// The HTML `pattern` attribute (implicitly anchored; only for digits:
    /// a length is better said by `minlength`/`maxlength`).
    fn html_pattern(self) -> Option<String> {
        match self {
            Self::Digits { min, max } if min == max => Some(format!("[0-9]{{{min}}}")),
            Self::Digits { min, max } => Some(format!("[0-9]{{{min},{max}}}")),
            Self::Chars { .. } => None,
        }
    }

    /// The HTML `minlength` attribute.
    fn min_length(self) -> Option<usize> {
        match self {
            Self::Chars { min, .. } if min > 0 => Some(min),
            _ => None,
        }
    }

    /// The HTML `maxlength` attribute.
    fn max_length(self) -> usize {
        match self {
            Self::Digits { max, .. } | Self::Chars { max, .. } => max,
        }
    }

    /// The rule in words: "exactly 8 digits", "13 to 15 digits".
    fn words(self) -> String {
        let (min, max, unit) = match self {
            Self::Digits { min, max } => (min, max, "digit"),
            Self::Chars { min, max } => (min, max, "character"),
        };
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if min == max {
            format!("exactly {min} {unit}{}", plural(min))
        } else {
            format!("{min} to {max} {unit}s")
        }
    }
}

/// One input of the enable form.
struct FieldView {
    name: String,
    input_type: &'static str,
    label: String,
    required: bool,
    pattern: Option<String>,
    minlength: Option<usize>,
    maxlength: usize,
    numeric: bool,
    autocomplete: &'static str,
    hint: String,
    /// The value typed before a refusal (always empty for a secret).
    value: String,
    error: Option<String>,
}

impl FieldView {
    /// The input of a manifest field, with what was typed and its refusal.
    fn new(name: &str, spec: &FieldSpec, typed: &str, error: Option<String>) -> Self {
        let rule = spec.pattern.as_deref().and_then(Rule::parse);
        let secret = spec.kind.is_secret();
        let mut hint = Vec::new();
        if !spec.required {
            hint.push("Optional.".to_owned());
        }
        if let Some(rule) = rule {
            hint.push(format!("{}.", capitalized(&rule.words())));
        }
        if secret {
            hint.push("Kept encrypted on this machine; never shown again.".to_owned());
        }
        Self {
            name: name.to_owned(),
            input_type: match spec.kind {
                FieldType::Password => "password",
                FieldType::Email => "email",
                FieldType::Text | FieldType::Hidden => "text",
            },
            label: spec.label.clone(),
            required: spec.required,
            pattern: rule.and_then(Rule::html_pattern),
            minlength: rule.and_then(Rule::min_length),
            maxlength: rule.map_or(MAX_FIELD_BYTES, Rule::max_length),
            numeric: matches!(rule, Some(Rule::Digits { .. })),
            autocomplete: match (secret, spec.identifier) {
                (true, _) => "off",
                (false, true) => "username",
                (false, false) => "off",
            },
            hint: hint.join(" "),
            value: if secret {
                String::new()
            } else {
                typed.to_owned()
            },
            error,
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A refusal of a manifest field, in words: the rule rather than the
/// pattern; the checker's own message otherwise.
fn field_refusal(spec: &FieldSpec, typed: &str, message: String) -> String {
    if typed.is_empty() && spec.required {
        return "This field is required.".to_owned();
    }
    match spec.pattern.as_deref().and_then(Rule::parse) {
        Some(rule) if typed.len() <= MAX_FIELD_BYTES => {
            format!("This must be {}.", rule.words())
        }
        _ => capitalized(&message),
    }
}

/// A refusal shown above the form, linking to its field.
struct Problem {
    id: String,
    message: String,
}

#[derive(Template)]
#[template(path = "enable.html")]
struct EnablePage {
    layout: Layout,
    slug: String,
    name: String,
    vendor_link: String,
    imports: String,
    login: &'static str,
    second_factor: &'static str,
    consent: bool,
    fields: Vec<FieldView>,
    label: String,
    label_error: Option<String>,
    endpoint: String,
    endpoint_error: Option<String>,
    allow_remote_endpoint: bool,
    problems: Vec<Problem>,
}

/// What was typed in the enable form (secrets included, never shown).
#[derive(Default)]
struct Typed {
    values: BTreeMap<String, String>,
    label: String,
    endpoint: String,
    allow_remote_endpoint: bool,
}

fn manifest_of(state: &WebState, slug: &str) -> Result<Manifest, WebError> {
    state
        .app
        .registry
        .get(slug)
        .map(|e| e.konnector.manifest().clone())
        .map_err(|_| WebError::NotFound(format!("there is no provider `{slug}`")))
}

/// The enable page, with what was typed and the refusals (if any).
fn enable_page(
    state: &WebState,
    session: &Session,
    manifest: &Manifest,
    typed: &Typed,
    refusals: &[FieldError],
) -> EnablePage {
    let refusal = |field: &str| {
        let found: Vec<&str> = refusals
            .iter()
            .filter(|r| r.field == field)
            .map(|r| r.message.as_str())
            .collect();
        (!found.is_empty()).then(|| found.join(" "))
    };
    let fields: Vec<FieldView> = manifest
        .fields
        .iter()
        .filter(|(_, spec)| spec.kind != FieldType::Hidden)
        .map(|(name, spec)| {
            let value = typed.values.get(name).map(String::as_str).unwrap_or("");
            let error = refusal(name).map(|m| field_refusal(spec, value, m));
            FieldView::new(name, spec, value, error)
        })
        .collect();
    let label_error = refusal("label").map(|m| capitalized(&m));
    let endpoint_error = refusal("endpoint").map(|m| {
        if !typed.allow_remote_endpoint && accounts::needs_remote_confirmation(&typed.endpoint) {
            format!(
                "{}; tick the box below to confirm this server.",
                capitalized(&m)
            )
        } else {
            capitalized(&m)
        }
    });
    let mut problems: Vec<Problem> = fields
        .iter()
        .filter_map(|f| {
            f.error.as_ref().map(|e| Problem {
                id: format!("field-{}", f.name),
                message: format!("{}: {e}", f.label),
            })
        })
        .collect();
    if let Some(e) = &label_error {
        problems.push(Problem {
            id: "field-label".into(),
            message: format!("Name of this account: {e}"),
        });
    }
    if let Some(e) = &endpoint_error {
        problems.push(Problem {
            id: "field-endpoint".into(),
            message: format!("Server address: {e}"),
        });
    }
    // A refusal of a field the form does not show (should not happen).
    for r in refusals {
        let shown =
            r.field == "label" || r.field == "endpoint" || fields.iter().any(|f| f.name == r.field);
        if !shown {
            problems.push(Problem {
                id: "enable".into(),
                message: capitalized(&r.message),
            });
        }
    }
    EnablePage {
        layout: Layout::new(
            state,
            session,
            format!("Enable {}", manifest.name),
            Nav::Catalogue,
        ),
        slug: manifest.slug.clone(),
        name: manifest.name.clone(),
        vendor_link: manifest.vendor_link.clone(),
        imports: imports_words(manifest),
        login: login_words(manifest),
        second_factor: second_factor_words(manifest.two_factor),
        consent: is_consent(manifest),
        fields,
        label: typed.label.clone(),
        label_error,
        endpoint: typed.endpoint.clone(),
        endpoint_error,
        allow_remote_endpoint: typed.allow_remote_endpoint,
        problems,
    }
}

async fn enable_form(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(slug): Path<String>,
) -> Result<Response, WebError> {
    let manifest = manifest_of(&state, &slug)?;
    Ok(render::page(&enable_page(
        &state,
        &session,
        &manifest,
        &Typed::default(),
        &[],
    )))
}

/// A form's text field, `None` when empty.
fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

async fn enable(
    State(state): State<Arc<WebState>>,
    Path(slug): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    let manifest = manifest_of(&state, &slug)?;
    let session = form.session.clone();
    let typed = Typed {
        values: manifest
            .fields
            .iter()
            .filter(|(_, spec)| spec.kind != FieldType::Hidden)
            .filter_map(|(name, spec)| {
                let value = form.get(name)?;
                // Identifiers and numbers are typed with stray spaces;
                // secrets are taken as they are.
                let value = if spec.kind.is_secret() {
                    value
                } else {
                    value.trim()
                };
                Some((name.clone(), value.to_owned()))
            })
            .collect(),
        label: form.get("label").unwrap_or_default().trim().to_owned(),
        endpoint: form.get("endpoint").unwrap_or_default().trim().to_owned(),
        allow_remote_endpoint: form.has("allow_remote_endpoint"),
    };
    let new = NewAccount {
        slug: manifest.slug.clone(),
        values: typed
            .values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        label: non_empty(&typed.label),
        endpoint: non_empty(&typed.endpoint),
        allow_remote_endpoint: typed.allow_remote_endpoint,
    };
    let checked = match accounts::check_new(&state.app, new).await? {
        Ok(checked) => checked,
        Err(refusals) => {
            return Ok(render::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &enable_page(&state, &session, &manifest, &typed, &refusals),
            ));
        }
    };
    if is_consent(&manifest) {
        let config = oauth_config(&manifest, checked.endpoint(), checked.secrets())?;
        let url = start_consent(
            &state,
            &session,
            &manifest,
            config,
            Purpose::Create(Box::new(checked)),
        )?;
        return Ok(Redirect::to(&url).into_response());
    }
    let account = accounts::create(&state.app, checked, None).await?;
    state
        .scheduler
        .queue
        .enqueue_manual(&account.id, &account.konnector)
        .await?;
    state.auth.set_flash(
        &session,
        format!(
            "{} enabled as “{}”; its first import has started.",
            manifest.name, account.label
        ),
    );
    Ok(Redirect::to(&format!("/accounts/{}", account.id)).into_response())
}

// ---- OAuth consent from the page ---------------------------------------

/// A konnector's OAuth settings for an account (its endpoint, its client
/// secret).
fn oauth_config(
    manifest: &Manifest,
    endpoint: Option<&str>,
    secrets: &BTreeMap<String, gleaner_framework::Secret>,
) -> Result<OAuthConfig, WebError> {
    let spec = manifest.oauth.as_ref().ok_or_else(|| {
        WebError::BadRequest(format!("{} does not ask for a consent", manifest.name))
    })?;
    Ok(OAuthConfig::resolve(spec, endpoint, secrets)?)
}

/// Starts a consent: keeps the pending authorization by its `state` and
/// returns the provider's consent URL.
fn start_consent(
    state: &WebState,
    session: &Session,
    manifest: &Manifest,
    config: OAuthConfig,
    purpose: Purpose,
) -> Result<String, WebError> {
    let redirect_uri = format!("{}/oauth/callback", state.base_url);
    let (url, authorization) = flow::start(&config, &redirect_uri, Arc::new(SystemClock))?;
    let key = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| WebError::Internal(anyhow::anyhow!("the consent URL has no state")))?;
    let mut ours = url::form_urlencoded::Serializer::new(String::new());
    ours.append_pair("state", &key);
    state.consents.insert(
        key,
        PendingConsent {
            authorization,
            session_key: session.key.clone(),
            slug: manifest.slug.clone(),
            provider: manifest.name.clone(),
            url: url.to_string(),
            purpose,
        },
    );
    Ok(format!("/oauth/consent?{}", ours.finish()))
}

#[derive(Template)]
#[template(path = "enable_consent_continue.html")]
struct ContinuePage {
    layout: Layout,
    provider: String,
    url: String,
    minutes: i64,
}

/// The state of a consent, in `/oauth/consent?state=`.
#[derive(Deserialize)]
struct StateQuery {
    #[serde(default)]
    state: String,
}

/// `GET /oauth/consent?state=`: sends the browser on to the provider's
/// consent page (a `Refresh`, and a link).
///
/// The form's POST cannot answer with a redirect to the provider itself:
/// the Content-Security-Policy's `form-action 'self'` also covers the
/// redirects of a form's submission, and the browser would stop there. A
/// page of our own in between is a new navigation, which the policy
/// leaves alone.
async fn consent_continue(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(query): Query<StateQuery>,
) -> Result<Response, WebError> {
    let Some((provider, url)) = state.consents.url(&query.state, &session) else {
        return Ok(no_such_consent(&state, &session));
    };
    let mut response = render::page(&ContinuePage {
        layout: Layout::new(
            &state,
            &session,
            format!("On to {provider}"),
            Nav::Catalogue,
        ),
        provider,
        url: url.clone(),
        minutes: flow::STATE_LIFETIME.num_minutes(),
    });
    if let Ok(refresh) = axum::http::HeaderValue::from_str(&format!("0;url={url}")) {
        response.headers_mut().insert("refresh", refresh);
    }
    Ok(response)
}

/// The page of a consent this server does not wait for (any more).
fn no_such_consent(state: &WebState, session: &Session) -> Response {
    consent_failed(
        state,
        session,
        "This consent link is no longer valid".into(),
        format!(
            "Gleaner is not waiting for this answer: it was already used, it is more than {} minutes old, \
             Gleaner restarted since, or it was started in another browser. Nothing was changed; \
             start again from the provider's page.",
            flow::STATE_LIFETIME.num_minutes()
        ),
        None,
        ("/konnectors".into(), "Back to the providers".into()),
    )
}

#[derive(Template)]
#[template(path = "enable_consent_failed.html")]
struct ConsentFailedPage {
    layout: Layout,
    heading: String,
    message: String,
    detail: Option<String>,
    retry: String,
    retry_text: String,
}

/// The page of a consent that did not come back right, with a link to try
/// again.
fn consent_failed(
    state: &WebState,
    session: &Session,
    heading: String,
    message: String,
    detail: Option<String>,
    retry: (String, String),
) -> Response {
    render::page_with_status(
        StatusCode::BAD_REQUEST,
        &ConsentFailedPage {
            layout: Layout::new(state, session, heading.clone(), Nav::Catalogue),
            heading,
            message,
            detail,
            retry: retry.0,
            retry_text: retry.1,
        },
    )
}

async fn oauth_callback(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, WebError> {
    let pending = params
        .get("state")
        .and_then(|s| state.consents.take(s, &session));
    let Some(pending) = pending else {
        return Ok(no_such_consent(&state, &session));
    };
    let retry = match &pending.purpose {
        Purpose::Create(_) => (
            format!("/konnectors/{}", pending.slug),
            format!("Try again to enable {}", pending.provider),
        ),
        Purpose::Renew { account_id } => (
            format!("/accounts/{account_id}/consent"),
            "Try again to give your consent".into(),
        ),
    };
    let callback = match pending.authorization.check(&params) {
        Ok(callback) => callback,
        Err(e) => {
            let (heading, message) = if params.contains_key("error") {
                (
                    format!("{} did not give access", pending.provider),
                    format!(
                        "{} answered that access was not granted (the consent was refused or cancelled on its site). \
                         Nothing was changed.",
                        pending.provider
                    ),
                )
            } else if e.code == ErrorCode::UserActionNeededOauthOutdated {
                (
                    "This consent came back too late".into(),
                    format!(
                        "A consent must come back within {} minutes. Nothing was changed; start again.",
                        flow::STATE_LIFETIME.num_minutes()
                    ),
                )
            } else {
                (
                    format!("{} sent back an incomplete answer", pending.provider),
                    "Nothing was changed; start again.".into(),
                )
            };
            return Ok(consent_failed(
                &state,
                &session,
                heading,
                message,
                Some(e.message),
                retry,
            ));
        }
    };
    let tokens = match pending.authorization.exchange(&callback).await {
        Ok(tokens) => tokens,
        Err(e) => {
            return Ok(consent_failed(
                &state,
                &session,
                format!("{} did not hand over access", pending.provider),
                format!(
                    "You consented, but {} refused to give Gleaner its access keys. \
                     Check the application's secret (or the server address) and start again.",
                    pending.provider
                ),
                Some(e.message),
                retry,
            ));
        }
    };
    let (account, flash) = match pending.purpose {
        Purpose::Create(checked) => {
            let consent = Some((callback.fields, tokens));
            let account = accounts::create(&state.app, *checked, consent).await?;
            let flash = format!(
                "{} enabled as “{}”; its first import has started.",
                pending.provider, account.label
            );
            (account, flash)
        }
        Purpose::Renew { account_id } => {
            let account = state.app.find_account(&account_id).await?;
            accounts::save_consent(&state.app, &account, &tokens).await?;
            let flash = format!(
                "Consent given again for “{}”; a new import has started.",
                account.label
            );
            (account, flash)
        }
    };
    state
        .scheduler
        .queue
        .enqueue_manual(&account.id, &account.konnector)
        .await?;
    state.auth.set_flash(&session, flash);
    Ok(Redirect::to(&format!("/accounts/{}", account.id)).into_response())
}

#[derive(Template)]
#[template(path = "enable_consent.html")]
struct ConsentPage {
    layout: Layout,
    id: String,
    label: String,
    provider: String,
}

/// An account of a konnector that asks for consent, with its manifest.
async fn consent_account(
    state: &WebState,
    id: &str,
) -> Result<(gleaner_framework::store::Account, Manifest), WebError> {
    let account = state
        .app
        .find_account(id)
        .await
        .ok()
        .filter(|a| a.id == id)
        .ok_or_else(|| WebError::NotFound(format!("there is no account `{id}`")))?;
    let manifest = manifest_of(state, &account.konnector)?;
    if !is_consent(&manifest) {
        return Err(WebError::BadRequest(format!(
            "{} does not ask for a consent; edit the account's credentials instead",
            manifest.name
        )));
    }
    Ok((account, manifest))
}

async fn consent_form(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (account, manifest) = consent_account(&state, &id).await?;
    Ok(render::page(&ConsentPage {
        layout: Layout::new(
            &state,
            &session,
            format!("Consent again: {}", account.label),
            Nav::Accounts,
        ),
        id: account.id,
        label: account.label,
        provider: manifest.name,
    }))
}

async fn consent_again(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    let (account, manifest) = consent_account(&state, &id).await?;
    let secrets = state.app.secrets(&account).await?;
    let config = oauth_config(&manifest, account.endpoint.as_deref(), &secrets)?;
    let url = start_consent(
        &state,
        &form.session,
        &manifest,
        config,
        Purpose::Renew {
            account_id: account.id.clone(),
        },
    )?;
    Ok(Redirect::to(&url).into_response())
}
