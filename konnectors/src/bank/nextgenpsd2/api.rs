//! The NextGenPSD2 AIS interface: paths, headers, the answers' types and
//! the bank's error messages, from the Berlin Group's OpenAPI file
//! (`shared/specs/bg-psd2-1.3.12.yaml`, version 1.3.12).
//!
//! Decoding is **strict on what the spec requires** and the konnector uses
//! (`consentId`, `consentStatus`, `accounts[].currency`,
//! `transactionAmount.{amount,currency}` ...): a missing or malformed one is
//! `UNKNOWN_ERROR.SCHEMA_CHANGED` naming its JSON path (the framework's
//! [`gleaner_framework::http::Response::json`]). It **tolerates every optional
//! field**: absent ones are `None`, unknown ones are ignored. Amounts are the
//! spec's strings (`-?[0-9]{1,14}(\.[0-9]{1,3})?`) read as exact decimals;
//! a JSON number where the spec says string is refused, as the spec says.
//!
//! Every request carries a fresh `X-Request-ID` (a UUID); the AIS reads
//! carry `Consent-ID`; `PSU-IP-Address` goes with the consent's creation
//! (mandatory) and with the calls made while the person takes part (the
//! spec's "if and only if this request was actively initiated by the PSU":
//! calls without it count against the consent's `frequencyPerDay`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use gleaner_framework::filters::Currency;
use gleaner_framework::http::{HttpClient, Method, RequestBuilder, Response, display_url};
use gleaner_framework::{ErrorCode, KonnectorError, Result, Secret};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// `POST`: creates a consent.
pub const CONSENTS: &str = "v1/consents";
/// `GET`: the accounts the consent covers.
pub const ACCOUNTS: &str = "v1/accounts";

/// `GET v1/consents/{id}/status`.
pub fn consent_status_path(consent_id: &str) -> String {
    format!("{CONSENTS}/{}/status", encode(consent_id))
}

/// `GET v1/consents/{id}`: the consent as the bank holds it.
pub fn consent_path(consent_id: &str) -> String {
    format!("{CONSENTS}/{}", encode(consent_id))
}

/// `GET v1/accounts/{id}/balances`.
pub fn balances_path(resource_id: &str) -> String {
    format!("{ACCOUNTS}/{}/balances", encode(resource_id))
}

/// `GET v1/accounts/{id}/transactions`.
pub fn transactions_path(resource_id: &str) -> String {
    format!("{ACCOUNTS}/{}/transactions", encode(resource_id))
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

// ---------------------------------------------------------------- requests

/// The body of `POST /v1/consents` (schema `consents`): every required
/// field, for a "bank offered consent" (empty `balances` and
/// `transactions`: the person picks the accounts at the bank).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequest {
    /// What the consent gives access to.
    pub access: AccessRequest,
    /// A consent for repeated access (true) or a one-off (false).
    pub recurring_indicator: bool,
    /// The last day of validity, inclusive (the bank may shorten it).
    pub valid_until: NaiveDate,
    /// Accesses a day without the person.
    pub frequency_per_day: u32,
    /// Whether a payment is initiated in the same session (never here).
    pub combined_service_indicator: bool,
}

/// `access` of a consent request.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRequest {
    /// Accounts whose balances may be read (empty: chosen at the bank).
    pub balances: Vec<serde_json::Value>,
    /// Accounts whose transactions may be read (empty: chosen at the bank).
    pub transactions: Vec<serde_json::Value>,
}

impl ConsentRequest {
    /// A recurring, bank-offered consent valid until `valid_until`.
    pub fn bank_offered(valid_until: NaiveDate, frequency_per_day: u32) -> Self {
        Self {
            access: AccessRequest {
                balances: Vec::new(),
                transactions: Vec::new(),
            },
            recurring_indicator: true,
            valid_until,
            frequency_per_day,
            combined_service_indicator: false,
        }
    }
}

// ----------------------------------------------------------------- answers

/// A hyperlink (`hrefType`): `href` is optional in the spec.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Href {
    /// The link.
    #[serde(default)]
    pub href: Option<String>,
}

/// `_links` objects: by name; the spec lets banks add their own.
pub type Links = BTreeMap<String, Href>;

/// The link called `name`, when it has an `href`.
pub fn link<'a>(links: &'a Links, name: &str) -> Option<&'a str> {
    links
        .get(name)
        .and_then(|h| h.href.as_deref())
        .filter(|h| !h.trim().is_empty())
}

/// `201` of `POST /v1/consents` (schema `consentsResponse-201`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentCreated {
    /// `received` until the person approves; some banks answer `valid`.
    pub consent_status: String,
    /// The consent's id, for `Consent-ID`.
    pub consent_id: String,
    /// `scaRedirect`, `scaOAuth`, `startAuthorisation`, `status`, ...
    #[serde(rename = "_links")]
    pub links: Links,
    /// A text for the person, when the bank has one.
    #[serde(default)]
    pub psu_message: Option<String>,
}

/// `200` of `GET /v1/consents/{id}/status` (schema
/// `consentStatusResponse-200`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentStatusAnswer {
    /// The status.
    pub consent_status: String,
}

/// What the konnector reads of `GET /v1/consents/{id}` (schema
/// `consentInformationResponse-200_json`): the validity the bank granted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentInformation {
    /// The last day of validity (the bank's, possibly shortened).
    pub valid_until: NaiveDate,
}

/// `201` of `POST {startAuthorisation}` (schema
/// `startScaprocessResponse`): the redirect to show the person.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorisationStarted {
    /// `scaRedirect`, `scaStatus`, ...
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// A consent status, read from the spec's codes; banks may add codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentState {
    /// `received` (or `partiallyAuthorised`): waiting for the person.
    Waiting,
    /// `valid`: data may be read.
    Valid,
    /// `rejected`: the authorisation failed or was refused.
    Rejected,
    /// `expired`.
    Expired,
    /// `revokedByPsu` or `terminatedByTpp`.
    Revoked,
    /// A code the spec does not list.
    Other,
}

impl ConsentState {
    /// Reads a `consentStatus`.
    pub fn parse(status: &str) -> Self {
        match status {
            "received" | "partiallyAuthorised" => Self::Waiting,
            "valid" => Self::Valid,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            "revokedByPsu" | "terminatedByTpp" => Self::Revoked,
            _ => Self::Other,
        }
    }
}

/// `200` of `GET /v1/accounts` (schema `accountList`).
#[derive(Debug, Clone, Deserialize)]
pub struct AccountList {
    /// The accounts the consent covers.
    pub accounts: Vec<AccountDetails>,
}

/// One account (schema `accountDetails`): only `currency` is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetails {
    /// The id to read its balances and transactions with (optional in the
    /// spec, needed here: its absence is an error naming the path).
    #[serde(default)]
    pub resource_id: Option<String>,
    /// The IBAN.
    #[serde(default)]
    pub iban: Option<String>,
    /// A national account number.
    #[serde(default)]
    pub bban: Option<String>,
    /// A phone number, for accounts addressed by one.
    #[serde(default)]
    pub msisdn: Option<String>,
    /// The account's currency; `XXX` for a multi-currency account.
    pub currency: Currency,
    /// The owner's name.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// The name the bank or the person gave the account.
    #[serde(default)]
    pub name: Option<String>,
    /// The name the person chose in the bank's own apps.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The bank's product name.
    #[serde(default)]
    pub product: Option<String>,
    /// ISO 20022 `ExternalCashAccountType1Code` (`CACC`, `SVGS`, `CARD`...).
    #[serde(default)]
    pub cash_account_type: Option<String>,
    /// `enabled`, `deleted` or `blocked`.
    #[serde(default)]
    pub status: Option<String>,
    /// Balances, when asked for with `withBalance`.
    #[serde(default)]
    pub balances: Option<Vec<Balance>>,
    /// `balances`, `transactions`.
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// An amount (schema `amount`): both parts required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Amount {
    /// The currency.
    pub currency: Currency,
    /// The value, exact.
    #[serde(deserialize_with = "amount_value")]
    pub amount: Decimal,
}

/// One balance (schema `balance`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    /// The amount.
    pub balance_amount: Amount,
    /// `closingBooked`, `expected`, `interimBooked`, `interimAvailable`...
    pub balance_type: String,
    /// Whether a credit limit is included.
    #[serde(default)]
    pub credit_limit_included: Option<bool>,
    /// When the balance last changed (ISO date-time).
    #[serde(default)]
    pub last_change_date_time: Option<String>,
    /// The day the balance is for.
    #[serde(default)]
    pub reference_date: Option<NaiveDate>,
}

/// `200` of `GET /v1/accounts/{id}/balances` (schema
/// `readAccountBalanceResponse-200`).
#[derive(Debug, Clone, Deserialize)]
pub struct BalancesAnswer {
    /// The balances.
    pub balances: Vec<Balance>,
}

/// `200` of `GET /v1/accounts/{id}/transactions` in JSON (schema
/// `transactionsResponse-200_json`): every part is optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TransactionsAnswer {
    /// The transactions, with the paging links.
    #[serde(default)]
    pub transactions: Option<AccountReport>,
    /// Balances, when the bank adds them.
    #[serde(default)]
    pub balances: Option<Vec<Balance>>,
    /// `download`: a report too large for JSON (camt only).
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// One page of an account's transactions (schema `accountReport`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AccountReport {
    /// Booked transactions.
    #[serde(default)]
    pub booked: Vec<Transaction>,
    /// Pending transactions (not booked yet).
    #[serde(default)]
    pub pending: Vec<Transaction>,
    /// `next` (paging), `account`, ... Required by the spec, but only
    /// `next` is used, and some banks leave it out when there is one page.
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// One transaction (schema `transactions`): only `transactionAmount` is
/// required.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// The bank's id for it (to read its details).
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// The bank's entry reference.
    #[serde(default)]
    pub entry_reference: Option<String>,
    /// The SEPA end-to-end id.
    #[serde(default)]
    pub end_to_end_id: Option<String>,
    /// A SEPA direct debit's mandate.
    #[serde(default)]
    pub mandate_id: Option<String>,
    /// The creditor id of a SEPA direct debit.
    #[serde(default)]
    pub creditor_id: Option<String>,
    /// When it was booked.
    #[serde(default)]
    pub booking_date: Option<NaiveDate>,
    /// Its value date (for pending ones: expected).
    #[serde(default)]
    pub value_date: Option<NaiveDate>,
    /// When the payment was made (card payments), if the bank says.
    #[serde(default)]
    pub transaction_date: Option<NaiveDate>,
    /// The signed amount: negative for debits (required).
    pub transaction_amount: Amount,
    /// Who is paid.
    #[serde(default)]
    pub creditor_name: Option<String>,
    /// On whose behalf the creditor is paid.
    #[serde(default)]
    pub ultimate_creditor: Option<String>,
    /// Who pays.
    #[serde(default)]
    pub debtor_name: Option<String>,
    /// On whose behalf the debtor pays.
    #[serde(default)]
    pub ultimate_debtor: Option<String>,
    /// The payment's text.
    #[serde(default)]
    pub remittance_information_unstructured: Option<String>,
    /// The payment's text, in lines.
    #[serde(default)]
    pub remittance_information_unstructured_array: Option<Vec<String>>,
    /// More text from the bank.
    #[serde(default)]
    pub additional_information: Option<String>,
    /// ISO 20022 domain-family-subfamily (`PMNT-RDDT-ESDD`).
    #[serde(default)]
    pub bank_transaction_code: Option<String>,
    /// The bank's own code.
    #[serde(default)]
    pub proprietary_bank_transaction_code: Option<String>,
}

/// `UNKNOWN_ERROR.SCHEMA_CHANGED` for a required field that is missing at
/// `path` of the answer from `url`.
pub fn missing_field(path: &str, url: &str) -> KonnectorError {
    KonnectorError::new(
        ErrorCode::SchemaChanged,
        format!("{url} answered JSON without the required field at `{path}`"),
    )
    .with_locator(gleaner_framework::Locator::JsonPath {
        path: path.to_owned(),
        url: url.to_owned(),
    })
}

/// An `amountValue`: a JSON string `-?[0-9]{1,14}(\.[0-9]{1,3})?`.
fn amount_value<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Decimal, D::Error> {
    let text = String::deserialize(d)?;
    parse_amount_value(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "\"{text}\" is not an amount as the spec writes them (-?[0-9]{{1,14}}(.[0-9]{{1,3}})?)"
        ))
    })
}

/// Parses an `amountValue` exactly; `None` when it does not fit the spec's
/// pattern.
pub fn parse_amount_value(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let int_ok = (1..=14).contains(&int.len()) && int.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = frac.is_none_or(|f| (1..=3).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()));
    if !int_ok || !frac_ok {
        return None;
    }
    text.parse().ok()
}

/// An error answer: NextGenPSD2's `tppMessages` (`application/json`) or
/// RFC 7807's `additionalErrors` (`application/problem+json`); every part
/// optional, since it is read only to explain a failure.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorAnswer {
    /// NextGenPSD2 messages.
    #[serde(default)]
    pub tpp_messages: Vec<TppMessage>,
    /// Problem details: the main code.
    #[serde(default)]
    pub code: Option<String>,
    /// Problem details: the main text.
    #[serde(default)]
    pub detail: Option<String>,
    /// Problem details: more messages.
    #[serde(default)]
    pub additional_errors: Vec<TppMessage>,
}

/// One message of an error answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TppMessage {
    /// `ERROR` or `WARNING`.
    #[serde(default)]
    pub category: Option<String>,
    /// `CONSENT_EXPIRED`, `FORMAT_ERROR`, ...
    #[serde(default)]
    pub code: Option<String>,
    /// A text from the bank.
    #[serde(default)]
    pub text: Option<String>,
    /// Problem details' text.
    #[serde(default)]
    pub detail: Option<String>,
    /// The field concerned.
    #[serde(default)]
    pub path: Option<String>,
}

impl ErrorAnswer {
    /// Reads an error body; an unreadable one gives an empty answer.
    pub fn read(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// Every code the answer carries.
    pub fn codes(&self) -> Vec<&str> {
        self.tpp_messages
            .iter()
            .chain(&self.additional_errors)
            .filter_map(|m| m.code.as_deref())
            .chain(self.code.as_deref())
            .collect()
    }

    /// The codes and texts, for a message (at most 300 characters).
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .tpp_messages
            .iter()
            .chain(&self.additional_errors)
            .map(|m| {
                let text = m.text.as_deref().or(m.detail.as_deref()).unwrap_or("");
                match (m.code.as_deref(), text) {
                    (Some(c), "") => c.to_owned(),
                    (Some(c), t) => format!("{c}: {t}"),
                    (None, t) => t.to_owned(),
                }
            })
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty()
            && let Some(c) = &self.code
        {
            parts.push(match &self.detail {
                Some(d) => format!("{c}: {d}"),
                None => c.clone(),
            });
        }
        let joined = parts.join("; ");
        joined.chars().take(300).collect()
    }
}

/// Why the bank refused a consent on a data call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `CONSENT_EXPIRED`.
    Expired,
    /// `CONSENT_INVALID`: revoked, not (or no longer) authorised.
    Invalid,
    /// `CONSENT_UNKNOWN`: the bank does not know it (any more).
    Unknown,
}

impl Refusal {
    /// A phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Expired => "has expired",
            Self::Invalid => "is no longer valid (revoked at the bank, or never completed)",
            Self::Unknown => "is unknown to the bank (deleted, or made for another bank)",
        }
    }
}

/// A failed call: the consent was refused (the konnector may renew it), or
/// any other failure, already typed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The bank refused the consent.
    Consent(Refusal, String),
    /// Anything else.
    Other(KonnectorError),
}

impl From<KonnectorError> for CallError {
    fn from(e: KonnectorError) -> Self {
        Self::Other(e)
    }
}

impl CallError {
    /// As a run error: a refused consent is `USER_ACTION_NEEDED.SCA_REQUIRED`.
    pub fn into_error(self) -> KonnectorError {
        match self {
            Self::Consent(refusal, said) => KonnectorError::new(
                ErrorCode::UserActionNeededScaRequired,
                format!(
                    "the bank says the access consent {} ({said}); the next run attended by you asks the bank for a new one, to approve on the bank's page",
                    refusal.describe()
                ),
            ),
            Self::Other(e) => e,
        }
    }
}

/// Maps a non-2xx answer to a typed failure. `what` names the call for
/// messages ("reading the accounts").
pub fn failure(resp: &Response, what: &str) -> CallError {
    let status = resp.status.as_u16();
    let answer = ErrorAnswer::read(&resp.body);
    let codes = answer.codes();
    let said = match answer.summary() {
        s if s.is_empty() => format!("{} answered {status}", display_url(&resp.url)),
        s => format!("{} answered {status} {s}", display_url(&resp.url)),
    };
    let has = |c: &str| codes.contains(&c);
    if has("CONSENT_EXPIRED") {
        return CallError::Consent(Refusal::Expired, said);
    }
    if has("CONSENT_INVALID") {
        return CallError::Consent(Refusal::Invalid, said);
    }
    if has("CONSENT_UNKNOWN") {
        return CallError::Consent(Refusal::Unknown, said);
    }
    let login = [
        "PSU_CREDENTIALS_INVALID",
        "CORPORATE_ID_INVALID",
        "CERTIFICATE_INVALID",
        "CERTIFICATE_EXPIRED",
        "CERTIFICATE_BLOCKED",
        "CERTIFICATE_REVOKED",
        "CERTIFICATE_MISSING",
        "ROLE_INVALID",
        "TOKEN_INVALID",
        "TOKEN_EXPIRED",
        "TOKEN_UNKNOWN",
    ];
    if codes.iter().any(|c| login.contains(c)) || status == 401 {
        return CallError::Other(KonnectorError::login_failed(format!(
            "the bank refused the access while {what}: {said} (check the PSU-ID and the client certificate)"
        )));
    }
    if status == 429 {
        let e = KonnectorError::vendor_down(format!(
            "the bank limits accesses while {what} ({said}): the consent's daily quota is used up; the next run can fetch tomorrow"
        ));
        return CallError::Other(match retry_after(resp) {
            Some(d) => e.with_retry_after(d),
            None => e,
        });
    }
    if has("SERVICE_BLOCKED") {
        return CallError::Other(KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("the bank blocked the service while {what}: {said}; see the bank's messages"),
        ));
    }
    if status >= 500 || status == 408 {
        return CallError::Other(KonnectorError::vendor_down(format!(
            "the bank failed while {what}: {said}"
        )));
    }
    CallError::Other(KonnectorError::new(
        ErrorCode::UnknownError,
        format!("the bank did not accept the request while {what}: {said}"),
    ))
}

fn retry_after(resp: &Response) -> Option<std::time::Duration> {
    resp.headers
        .get(gleaner_framework::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(std::time::Duration::from_secs)
}

// ------------------------------------------------------------------ client

/// Who calls: the HTTP client (the run's, or one with the client
/// certificate), the base URL and the PSU's headers.
#[derive(Clone)]
pub struct Api {
    http: HttpClient,
    base: Url,
    psu_ip: String,
    psu_id: Option<String>,
    redirect_uri: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &display_url(&self.base))
            .finish_non_exhaustive()
    }
}

impl Api {
    /// An API at `base` (the account's endpoint; a trailing `/` is added so
    /// that its path is kept), with the PSU's IP address, its PSU-ID when
    /// the bank needs one, and the `TPP-Redirect-URI` the bank sends the
    /// person's browser to after the SCA.
    pub fn new(
        http: HttpClient,
        base: &Url,
        psu_ip: String,
        psu_id: Option<String>,
        redirect_uri: String,
    ) -> Self {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        Self {
            http,
            base,
            psu_ip,
            psu_id,
            redirect_uri,
        }
    }

    /// The base URL (with its trailing `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (relative: `v1/...`) under the base URL.
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path.trim_start_matches('/')).map_err(|e| {
            KonnectorError::new(
                ErrorCode::UnknownError,
                format!("cannot join `{path}` to {}: {e}", display_url(&self.base)),
            )
        })
    }

    /// Resolves a `_links` href: an absolute URL as it is; a path from the
    /// host's root when it already starts with the base URL's path (or the
    /// base has none), else under the base URL (a bank whose links say
    /// `/v1/...` behind a base URL `https://host/psd2/`).
    pub fn resolve(&self, href: &str) -> Result<Url> {
        let bad = |e: url::ParseError| {
            KonnectorError::new(
                ErrorCode::SchemaChanged,
                format!("the bank gave a link that is not a URL ({e})"),
            )
        };
        if let Ok(abs) = Url::parse(href) {
            return Ok(abs);
        }
        let base_path = self.base.path().trim_end_matches('/');
        if href.starts_with('/') && (base_path.is_empty() || href.starts_with(base_path)) {
            return self.base.join(href).map_err(bad);
        }
        self.base.join(href.trim_start_matches('/')).map_err(bad)
    }

    /// A request with the headers every call carries: a fresh
    /// `X-Request-ID`, `Accept: application/json`, and `PSU-IP-Address`
    /// when the person takes part.
    fn request(&self, method: Method, url: &Url, psu_present: bool) -> RequestBuilder<'_> {
        let mut req = self
            .http
            .request(method, url.as_str())
            .header("X-Request-ID", &request_id())
            .header("Accept", "application/json");
        if psu_present {
            req = req.header("PSU-IP-Address", &self.psu_ip);
        }
        req
    }

    /// Sends `req` and returns its answer when it is a 2xx; a typed failure
    /// otherwise.
    async fn call(&self, req: RequestBuilder<'_>, what: &str) -> std::result::Result<Response, CallError> {
        let resp = req.send().await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(failure(&resp, what))
        }
    }

    /// `POST /v1/consents`, with `PSU-IP-Address` (mandatory there),
    /// `PSU-ID` when the account has one, and the redirect approach asked
    /// for (`TPP-Redirect-Preferred`, with the `TPP-Redirect-URI` the spec
    /// mandates then).
    pub async fn create_consent(
        &self,
        body: &ConsentRequest,
    ) -> std::result::Result<ConsentCreated, CallError> {
        let url = self.url(CONSENTS)?;
        let mut req = self
            .request(Method::POST, &url, true)
            .header("TPP-Redirect-Preferred", "true")
            .header("TPP-Redirect-URI", &self.redirect_uri)
            .json(body);
        if let Some(psu) = &self.psu_id {
            req = req.header("PSU-ID", psu);
        }
        let resp = self.call(req, "creating the access consent").await?;
        Ok(resp.json()?)
    }

    /// `POST {startAuthorisation}` with an empty body: the bank then gives
    /// the redirect.
    pub async fn start_authorisation(
        &self,
        href: &str,
    ) -> std::result::Result<AuthorisationStarted, CallError> {
        let url = self.resolve(href)?;
        let mut req = self
            .request(Method::POST, &url, true)
            .header("TPP-Redirect-Preferred", "true")
            .header("TPP-Redirect-URI", &self.redirect_uri)
            .json(&serde_json::json!({}));
        if let Some(psu) = &self.psu_id {
            req = req.header("PSU-ID", psu);
        }
        let resp = self.call(req, "starting the consent's authorisation").await?;
        Ok(resp.json()?)
    }

    /// `GET /v1/consents/{id}/status`.
    pub async fn consent_status(&self, consent_id: &str) -> std::result::Result<String, CallError> {
        let url = self.url(&consent_status_path(consent_id))?;
        let req = self.request(Method::GET, &url, true);
        let resp = self.call(req, "reading the consent's status").await?;
        Ok(resp.json::<ConsentStatusAnswer>()?.consent_status)
    }

    /// `GET /v1/consents/{id}`: the validity the bank granted.
    pub async fn consent_information(
        &self,
        consent_id: &str,
    ) -> std::result::Result<ConsentInformation, CallError> {
        let url = self.url(&consent_path(consent_id))?;
        let req = self.request(Method::GET, &url, true);
        let resp = self.call(req, "reading the consent").await?;
        Ok(resp.json()?)
    }

    /// An AIS read: `GET url` with `Consent-ID`.
    async fn read(
        &self,
        url: &Url,
        consent: &Secret,
        psu_present: bool,
        what: &str,
    ) -> std::result::Result<Response, CallError> {
        let req = self
            .request(Method::GET, url, psu_present)
            .secret_header("Consent-ID", consent);
        self.call(req, what).await
    }

    /// `GET /v1/accounts`.
    pub async fn accounts(
        &self,
        consent: &Secret,
        psu_present: bool,
    ) -> std::result::Result<(AccountList, String), CallError> {
        let url = self.url(ACCOUNTS)?;
        let resp = self
            .read(&url, consent, psu_present, "reading the accounts")
            .await?;
        Ok((resp.json()?, display_url(&resp.url)))
    }

    /// `GET /v1/accounts/{id}/balances`.
    pub async fn balances(
        &self,
        consent: &Secret,
        psu_present: bool,
        resource_id: &str,
    ) -> std::result::Result<BalancesAnswer, CallError> {
        let url = self.url(&balances_path(resource_id))?;
        let resp = self
            .read(&url, consent, psu_present, "reading an account's balances")
            .await?;
        Ok(resp.json()?)
    }

    /// The first page's URL of an account's transactions over
    /// `[from, to]`, booked and pending.
    pub fn transactions_url(&self, resource_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Url> {
        let mut url = self.url(&transactions_path(resource_id))?;
        url.query_pairs_mut()
            .append_pair("bookingStatus", "both")
            .append_pair("dateFrom", &from.format("%Y-%m-%d").to_string())
            .append_pair("dateTo", &to.format("%Y-%m-%d").to_string());
        Ok(url)
    }

    /// One page of transactions at `url`; returns the answer and the URL
    /// (without query) for messages.
    pub async fn transactions_page(
        &self,
        consent: &Secret,
        psu_present: bool,
        url: &Url,
    ) -> std::result::Result<(TransactionsAnswer, String), CallError> {
        let resp = self
            .read(url, consent, psu_present, "reading an account's transactions")
            .await?;
        Ok((resp.json()?, display_url(&resp.url)))
    }
}

/// A fresh `X-Request-ID`: a random (v4) UUID in its hyphenated form.
pub fn request_id() -> String {
    let hex = gleaner_framework::ids::new_id();
    match (
        hex.get(0..8),
        hex.get(8..12),
        hex.get(12..16),
        hex.get(16..20),
        hex.get(20..32),
    ) {
        (Some(a), Some(b), Some(c), Some(d), Some(e)) => format!("{a}-{b}-{c}-{d}-{e}"),
        _ => hex,
    }
}

/// Whether `s` is a UUID in its hyphenated form (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_fresh_uuids() {
        let a = request_id();
        assert!(is_uuid(&a), "{a}");
        assert_ne!(a, request_id());
        assert!(!is_uuid("1234-wertiq-983"));
    }

    #[test]
    fn amounts_follow_the_spec_pattern() {
        assert_eq!(parse_amount_value("-19.99"), Some(Decimal::new(-1999, 2)));
        assert_eq!(parse_amount_value("100"), Some(Decimal::from(100)));
        assert_eq!(parse_amount_value("0.125"), Some(Decimal::new(125, 3)));
        for bad in ["", "-", "1.", ".5", "1.2345", "+1", "1e3", "1,00", "123456789012345"] {
            assert_eq!(parse_amount_value(bad), None, "{bad}");
        }
    }

    #[test]
    fn links_resolve_against_the_base_path() {
        let http = HttpClient::new(Default::default()).unwrap();
        let plain = Api::new(
            http.clone(),
            &Url::parse("http://127.0.0.1:4010").unwrap(),
            "127.0.0.1".into(),
            None,
            "http://127.0.0.1/".into(),
        );
        assert_eq!(
            plain.resolve("/v1/accounts/a/transactions?pageIndex=1").unwrap().as_str(),
            "http://127.0.0.1:4010/v1/accounts/a/transactions?pageIndex=1"
        );
        let prefixed = Api::new(
            http,
            &Url::parse("https://bank.example/psd2").unwrap(),
            "127.0.0.1".into(),
            None,
            "http://127.0.0.1/".into(),
        );
        assert_eq!(
            prefixed.url(CONSENTS).unwrap().as_str(),
            "https://bank.example/psd2/v1/consents"
        );
        assert_eq!(
            prefixed.resolve("/psd2/v1/accounts?x=1").unwrap().as_str(),
            "https://bank.example/psd2/v1/accounts?x=1"
        );
        assert_eq!(
            prefixed.resolve("/v1/accounts").unwrap().as_str(),
            "https://bank.example/psd2/v1/accounts"
        );
        assert_eq!(
            prefixed.resolve("https://other.example/x").unwrap().as_str(),
            "https://other.example/x"
        );
        assert_eq!(
            transactions_path("a/b c"),
            "v1/accounts/a%2Fb%20c/transactions"
        );
    }

    #[test]
    fn error_answers_of_both_styles_give_their_codes() {
        let ng = ErrorAnswer::read(
            br#"{"tppMessages":[{"category":"ERROR","code":"CONSENT_EXPIRED","text":"gone"}]}"#,
        );
        assert_eq!(ng.codes(), ["CONSENT_EXPIRED"]);
        assert_eq!(ng.summary(), "CONSENT_EXPIRED: gone");
        let problem = ErrorAnswer::read(
            br#"{"type":"x","code":"FORMAT_ERROR","detail":"bad","additionalErrors":[{"code":"PERIOD_INVALID"}]}"#,
        );
        assert_eq!(problem.codes(), ["PERIOD_INVALID", "FORMAT_ERROR"]);
        assert!(ErrorAnswer::read(b"<html>").codes().is_empty());
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/nextgenpsd2/api");

    fn answer(status: u16, file: &str) -> Response {
        Response {
            url: Url::parse("https://xs2a.bank.example/v1/accounts/acc-1/transactions?dateFrom=x")
                .unwrap(),
            status: gleaner_framework::http::StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: std::fs::read(format!("{FIXTURES}/{file}")).unwrap().into(),
        }
    }

    #[test]
    fn a_missing_required_field_names_its_json_path() {
        let err = answer(200, "transactions_amount_missing.json")
            .json::<TransactionsAnswer>()
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaChanged);
        assert!(err.message.contains("transactionAmount"), "{}", err.message);
        match err.locator.as_deref() {
            Some(gleaner_framework::Locator::JsonPath { path, url }) => {
                assert_eq!(path, "transactions.booked[1]");
                assert_eq!(url, "https://xs2a.bank.example/v1/accounts/acc-1/transactions");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_amount_written_as_a_number_is_refused_as_the_spec_says() {
        let err = answer(200, "transactions_amount_number.json")
            .json::<TransactionsAnswer>()
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaChanged);
        match err.locator.as_deref() {
            Some(gleaner_framework::Locator::JsonPath { path, .. }) => {
                assert_eq!(path, "transactions.booked[0].transactionAmount.amount");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_created_consent_gives_its_redirect() {
        let created: ConsentCreated = answer(201, "consent_created.json").json().unwrap();
        assert_eq!(ConsentState::parse(&created.consent_status), ConsentState::Waiting);
        assert_eq!(
            link(&created.links, "scaRedirect"),
            Some("https://bank.example/sca/consents/8e7d1c8a-5f4b-4e0a-9a3c-2b1d0e9f8a7b")
        );
        assert_eq!(link(&created.links, "scaOAuth"), None);
    }

    #[test]
    fn refused_consents_and_other_failures_are_typed() {
        match failure(&answer(401, "error_consent_expired.json"), "reading") {
            CallError::Consent(Refusal::Expired, said) => {
                assert!(said.contains("CONSENT_EXPIRED: The consent was valid until"), "{said}");
            }
            other => panic!("{other:?}"),
        }
        let e = failure(&answer(401, "error_consent_expired.json"), "reading").into_error();
        assert_eq!(e.code, ErrorCode::UserActionNeededScaRequired);
        assert!(!e.message.contains("gleaner "), "{}", e.message);
        let mut resp = answer(400, "error_consent_expired.json");
        resp.body = br#"{"tppMessages":[{"category":"ERROR","code":"PERIOD_INVALID"}]}"#.to_vec().into();
        let CallError::Other(e) = failure(&resp, "reading") else {
            panic!("not a consent refusal")
        };
        assert_eq!(e.code, ErrorCode::UnknownError);
        resp.status = gleaner_framework::http::StatusCode::UNAUTHORIZED;
        resp.body = br#"{"tppMessages":[{"category":"ERROR","code":"CERTIFICATE_MISSING"}]}"#.to_vec().into();
        let CallError::Other(e) = failure(&resp, "reading") else {
            panic!("not a consent refusal")
        };
        assert_eq!(e.code, ErrorCode::LoginFailed);
    }

    #[test]
    fn consent_states_read_the_spec_codes() {
        assert_eq!(ConsentState::parse("received"), ConsentState::Waiting);
        assert_eq!(ConsentState::parse("partiallyAuthorised"), ConsentState::Waiting);
        assert_eq!(ConsentState::parse("valid"), ConsentState::Valid);
        assert_eq!(ConsentState::parse("revokedByPsu"), ConsentState::Revoked);
        assert_eq!(ConsentState::parse("bankSpecific"), ConsentState::Other);
    }
}
