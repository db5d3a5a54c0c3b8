//! The Bank Account Data API v2: paths, the answers' types, error bodies
//! and the rate-limit headers, from GoCardless' published spec
//! (`shared/specs/gocardless-bad-v2.json`) and its public documentation.
//!
//! Types are tolerant: every field the spec leaves optional is an `Option`
//! (or an empty list) and unknown fields are ignored; the fields the spec
//! requires (`transactionAmount`, `amount`, `currency`, `balanceType`,
//! `booked`, ...) are required here too, so a change fails with
//! `UNKNOWN_ERROR.SCHEMA_CHANGED` naming the JSON path.

use chrono::{DateTime, Duration, Utc};
use gleaner_framework::http::Response;
use gleaner_framework::http::header::HeaderMap;
use serde::{Deserialize, Serialize};

/// `POST`: a token pair from the secret id and key.
pub const TOKEN_NEW: &str = "/api/v2/token/new/";
/// `POST`: a new access token from the refresh token.
pub const TOKEN_REFRESH: &str = "/api/v2/token/refresh/";
/// `GET {id}/`: one institution (bank).
pub const INSTITUTIONS: &str = "/api/v2/institutions/";
/// `POST`: an end-user agreement.
pub const AGREEMENTS: &str = "/api/v2/agreements/enduser/";
/// `POST`: a requisition; `GET {id}/`: its status and accounts.
pub const REQUISITIONS: &str = "/api/v2/requisitions/";
/// `GET {id}/`, `{id}/details/`, `{id}/balances/`, `{id}/transactions/`.
pub const ACCOUNTS: &str = "/api/v2/accounts/";

/// `{id}/` under a collection path.
pub fn item(collection: &str, id: &str) -> String {
    format!("{collection}{id}/")
}

/// `{id}/<what>/` under the accounts path.
pub fn account_path(id: &str, what: Option<Scope>) -> String {
    match what {
        None => item(ACCOUNTS, id),
        Some(scope) => format!("{ACCOUNTS}{id}/{}/", scope.as_str()),
    }
}

/// The three account endpoints a bank rate-limits, each on its own (as few
/// as 4 successful calls a day per account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `GET /accounts/{id}/details/`.
    Details,
    /// `GET /accounts/{id}/balances/`.
    Balances,
    /// `GET /accounts/{id}/transactions/`.
    Transactions,
}

impl Scope {
    /// The path segment, also the agreement's `access_scope` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Details => "details",
            Self::Balances => "balances",
            Self::Transactions => "transactions",
        }
    }

    /// All three, in the order a run fetches them.
    pub const ALL: [Scope; 3] = [Self::Details, Self::Balances, Self::Transactions];
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `JWTObtainPairRequest`.
#[derive(Debug, Serialize)]
pub struct TokenNewRequest<'a> {
    /// The secret id.
    pub secret_id: &'a str,
    /// The secret key.
    pub secret_key: &'a str,
}

/// `SpectacularJWTObtain`: the answer of [`TOKEN_NEW`]. The spec marks no
/// field required; without `access` the answer is useless, so it is
/// required here.
#[derive(Deserialize)]
pub struct TokenPair {
    /// The access token.
    pub access: String,
    /// Its lifetime in seconds (the spec's default: a day).
    #[serde(default = "day")]
    pub access_expires: i64,
    /// The refresh token.
    #[serde(default)]
    pub refresh: Option<String>,
    /// Its lifetime in seconds (the spec's default: 30 days).
    #[serde(default = "month")]
    pub refresh_expires: i64,
}

/// `SpectacularJWTRefresh`: the answer of [`TOKEN_REFRESH`].
#[derive(Deserialize)]
pub struct TokenRefreshed {
    /// The new access token.
    pub access: String,
    /// Its lifetime in seconds.
    #[serde(default = "day")]
    pub access_expires: i64,
}

fn day() -> i64 {
    86_400
}

fn month() -> i64 {
    2_592_000
}

/// `Integration`: an institution (only what the konnector reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Institution {
    /// Its id (`SANDBOXFINANCE_SFIN0000`).
    pub id: String,
    /// Its name, the accounts' `institutionLabel`.
    pub name: String,
    /// Days of history it gives, as a string of digits (default `"90"`).
    #[serde(default)]
    pub transaction_total_days: Option<String>,
    /// The longest access it grants, in days, as a string of digits.
    #[serde(default)]
    pub max_access_valid_for_days: Option<String>,
}

impl Institution {
    /// [`Institution::transaction_total_days`] as a number (90 when absent
    /// or unreadable, the spec's default).
    pub fn history_days(&self) -> u32 {
        days(self.transaction_total_days.as_deref()).unwrap_or(90)
    }

    /// [`Institution::max_access_valid_for_days`] as a number (90 when
    /// absent or unreadable).
    pub fn max_access_days(&self) -> u32 {
        days(self.max_access_valid_for_days.as_deref()).unwrap_or(90)
    }
}

fn days(s: Option<&str>) -> Option<u32> {
    s.and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| *d > 0)
}

/// `EndUserAgreementRequest`.
#[derive(Debug, Serialize)]
pub struct AgreementRequest<'a> {
    /// The bank.
    pub institution_id: &'a str,
    /// Days of history (1 to 730, at most the bank's).
    pub max_historical_days: u32,
    /// Days the access lasts once accepted (1 to 730, at most the bank's).
    pub access_valid_for_days: u32,
    /// `balances`, `details`, `transactions`.
    pub access_scope: [&'static str; 3],
}

/// `EndUserAgreement`.
#[derive(Debug, Clone, Deserialize)]
pub struct Agreement {
    /// Its id (a UUID).
    pub id: String,
    /// Days of history it grants.
    #[serde(default = "ninety")]
    pub max_historical_days: u32,
    /// Days the access lasts once accepted.
    #[serde(default = "ninety")]
    pub access_valid_for_days: u32,
    /// When the person accepted it (at the bank's consent), if they did.
    #[serde(default)]
    pub accepted: Option<DateTime<Utc>>,
}

fn ninety() -> u32 {
    90
}

/// `RequisitionRequest`.
#[derive(Debug, Serialize)]
pub struct RequisitionRequest<'a> {
    /// Where the bank sends the browser back (required by the API).
    pub redirect: &'a str,
    /// The bank.
    pub institution_id: &'a str,
    /// The agreement it carries.
    pub agreement: &'a str,
    /// A reference unique among the company's requisitions.
    pub reference: &'a str,
}

/// `Requisition` / `SpectacularRequisition`.
#[derive(Debug, Clone, Deserialize)]
pub struct Requisition {
    /// Its id (a UUID).
    pub id: String,
    /// `StatusEnum`: see [`RequisitionStatus`].
    pub status: String,
    /// The bank (required by the spec).
    pub institution_id: String,
    /// The agreement.
    #[serde(default)]
    pub agreement: Option<String>,
    /// The link the person opens to give access at the bank.
    #[serde(default)]
    pub link: Option<String>,
    /// The accounts it gives access to, once linked.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// A requisition's `status`, grouped by what the konnector does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequisitionStatus {
    /// `LN`: linked, the accounts can be read.
    Linked,
    /// `CR`, `ID`, `GC`, `UA`, `SA`, `GA`: the person has not finished at
    /// the bank yet.
    InProgress,
    /// `EX`: the access expired (or was revoked).
    Expired,
    /// `RJ`: the person or the bank refused.
    Rejected,
    /// `SU`, `ER`: suspended after errors, or failed.
    Failed,
}

impl RequisitionStatus {
    /// Reads the spec's `StatusEnum`; `None` for a value it does not list.
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "LN" => Self::Linked,
            "CR" | "ID" | "GC" | "UA" | "SA" | "GA" => Self::InProgress,
            "EX" => Self::Expired,
            "RJ" => Self::Rejected,
            "SU" | "ER" => Self::Failed,
            _ => return None,
        })
    }
}

/// `Account`: an account's metadata (not rate-limited by the bank).
#[derive(Debug, Clone, Deserialize)]
pub struct AccountMeta {
    /// GoCardless' id for it (a UUID; a new one after each reconnection).
    pub id: String,
    /// The IBAN.
    #[serde(default)]
    pub iban: Option<String>,
    /// `DISCOVERED`, `PROCESSING`, `READY`, `ERROR`, `EXPIRED`, `SUSPENDED`.
    #[serde(default)]
    pub status: Option<String>,
    /// The owner's name.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// The account's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `AccountDetail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDetails {
    /// The details (required by the spec).
    pub account: Details,
}

/// `DetailSchema` (Berlin Group's account details), what the konnector
/// reads of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    /// The bank's id for the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The IBAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    /// The BBAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bban: Option<String>,
    /// UK sort code and account number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<String>,
    /// ISO 4217.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The owner's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    /// The account's name at the bank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The name the person gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The product ("Livret A").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// ISO 20022 `ExternalCashAccountType1Code` (`CACC`, `SVGS`, `CARD` ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_account_type: Option<String>,
    /// Card accounts: the masked card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_pan: Option<String>,
}

/// `AccountBalance`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountBalances {
    /// The balances (optional in the spec).
    #[serde(default)]
    pub balances: Vec<Balance>,
}

/// `BalanceSchema`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    /// The amount (required).
    pub balance_amount: Amount,
    /// `closingBooked`, `expected`, `interimAvailable`, `interimBooked`,
    /// `openingBooked`, `forwardAvailable`, `nonInvoiced`... (required).
    pub balance_type: String,
    /// The day it is for, `YYYY-MM-DD`.
    #[serde(default)]
    pub reference_date: Option<String>,
    /// When it last changed.
    #[serde(default)]
    pub last_change_date_time: Option<String>,
}

/// `BalanceAmountSchema` / `TransactionAmountSchema`: both fields required.
#[derive(Debug, Clone, Deserialize)]
pub struct Amount {
    /// A decimal in a string, signed (`"-42.50"`).
    pub amount: String,
    /// ISO 4217.
    pub currency: String,
}

/// `AccountTransactions`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountTransactions {
    /// The transactions (required).
    pub transactions: BankTransactions,
    /// When GoCardless last refreshed them from the bank.
    #[serde(default)]
    pub last_updated: Option<String>,
}

/// `BankTransaction`: booked (required) and pending.
#[derive(Debug, Clone, Deserialize)]
pub struct BankTransactions {
    /// Booked transactions.
    pub booked: Vec<Transaction>,
    /// Pending ones (authorised, not booked yet).
    #[serde(default)]
    pub pending: Vec<Transaction>,
}

/// `TransactionSchema` (Berlin Group's), what the konnector reads of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// The bank's id.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// GoCardless' id.
    #[serde(default)]
    pub internal_transaction_id: Option<String>,
    /// The bank's entry reference.
    #[serde(default)]
    pub entry_reference: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub booking_date: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub value_date: Option<String>,
    /// ISO 8601 date-time.
    #[serde(default)]
    pub booking_date_time: Option<String>,
    /// ISO 8601 date-time.
    #[serde(default)]
    pub value_date_time: Option<String>,
    /// The amount (required).
    pub transaction_amount: Amount,
    /// Who was paid.
    #[serde(default)]
    pub creditor_name: Option<String>,
    /// Who paid.
    #[serde(default)]
    pub debtor_name: Option<String>,
    /// The label.
    #[serde(default)]
    pub remittance_information_unstructured: Option<String>,
    /// The label, in lines.
    #[serde(default)]
    pub remittance_information_unstructured_array: Vec<String>,
    /// A structured reference.
    #[serde(default)]
    pub remittance_information_structured: Option<String>,
    /// More text.
    #[serde(default)]
    pub additional_information: Option<String>,
    /// ISO 20022 bank transaction code (`PMNT-RDDT-ESDD`).
    #[serde(default)]
    pub bank_transaction_code: Option<String>,
    /// The bank's own code.
    #[serde(default)]
    pub proprietary_bank_transaction_code: Option<String>,
}

/// An error body (`ErrorResponse`: `summary`, `detail`, `type`,
/// `status_code`); field errors (`{"institution_id": {...}}`) are kept as
/// text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    /// `summary`.
    pub summary: String,
    /// `detail`.
    pub detail: String,
    /// `type` (`RateLimitError`, `AccessExpiredError` ...).
    pub kind: String,
}

impl ApiError {
    /// Reads an error body; anything else becomes its first 300 characters.
    pub fn parse(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text)
        else {
            return Self {
                summary: text.chars().take(300).collect(),
                ..Self::default()
            };
        };
        let field = |k: &str| {
            map.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut err = Self {
            summary: field("summary"),
            detail: field("detail"),
            kind: field("type"),
        };
        if err.summary.is_empty() && err.detail.is_empty() {
            // Field errors: `{"agreement": [{"summary":..,"detail":..}], "status_code": 400}`.
            let fields: Vec<String> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "status_code")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            err.summary = fields.join("; ").chars().take(300).collect();
        }
        err
    }

    /// `summary: detail`, or whichever is there.
    pub fn text(&self) -> String {
        match (self.summary.is_empty(), self.detail.is_empty()) {
            (false, false) => format!("{}: {}", self.summary, self.detail),
            (false, true) => self.summary.clone(),
            (true, false) => self.detail.clone(),
            (true, true) => "no explanation".to_owned(),
        }
    }

    /// The bearer token was refused (expired or unknown), as opposed to the
    /// bank access behind it.
    pub fn is_invalid_token(&self) -> bool {
        self.summary.eq_ignore_ascii_case("Invalid token")
            || self.detail.contains("Token is invalid")
    }
}

/// One family of rate-limit headers: `limit`, `remaining` and `reset`
/// (seconds left in the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed in the window.
    pub limit: Option<u32>,
    /// Calls left in the window.
    pub remaining: Option<u32>,
    /// Seconds until the window resets.
    pub reset_secs: Option<u64>,
}

/// The rate-limit headers of one answer: the general ones
/// (`HTTP_X_RATELIMIT_LIMIT`, `_REMAINING`, `_RESET`) and, on the
/// details, balances and transactions endpoints, the bank's per-account
/// ones (`HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_LIMIT`, `_REMAINING`, `_RESET`),
/// which count successful calls only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// All calls of the company to this kind of endpoint.
    pub general: RateLimit,
    /// Successful calls to this endpoint for this account, per day.
    pub account_success: RateLimit,
}

impl RateLimits {
    /// Reads the headers. GoCardless documents them by their Django names
    /// (`HTTP_X_RATELIMIT_LIMIT`); on the wire they come as
    /// `http_x_ratelimit_limit` or `X-RateLimit-Limit`: both are read.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let family = |infix: &str| RateLimit {
            limit: number(headers, infix, "limit"),
            remaining: number(headers, infix, "remaining"),
            reset_secs: number(headers, infix, "reset"),
        };
        Self {
            general: family(""),
            account_success: family("account_success_"),
        }
    }
}

fn number<T: std::str::FromStr>(headers: &HeaderMap, infix: &str, what: &str) -> Option<T> {
    let django = format!("http_x_ratelimit_{infix}{what}");
    let dashed = format!("x-ratelimit-{}{what}", infix.replace('_', "-"));
    [django, dashed].iter().find_map(|name| {
        headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<T>().ok())
    })
}

/// What the account endpoints' answers said about the bank's daily limit
/// for one account and endpoint, kept between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Successful calls left until `reset_at`.
    pub remaining: u32,
    /// When the window resets.
    pub reset_at: DateTime<Utc>,
}

impl Quota {
    /// The quota an answer at `now` announces, if it carries the headers.
    pub fn from_limits(limits: &RateLimits, now: DateTime<Utc>) -> Option<Self> {
        let remaining = limits.account_success.remaining?;
        let reset = limits.account_success.reset_secs.unwrap_or(86_400);
        let reset = i64::try_from(reset).unwrap_or(i64::MAX).min(86_400 * 7);
        Some(Self {
            remaining,
            reset_at: now + Duration::seconds(reset),
        })
    }

    /// Whether a call at `now` would be refused: no call left and the
    /// window not reset yet.
    pub fn exhausted_at(&self, now: DateTime<Utc>) -> bool {
        self.remaining == 0 && now < self.reset_at
    }
}

/// The quota an answer announces (a shorthand for [`Quota::from_limits`]).
pub fn quota_of(resp: &Response, now: DateTime<Utc>) -> Option<Quota> {
    Quota::from_limits(&RateLimits::from_headers(&resp.headers), now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gleaner_framework::http::header::HeaderValue;

    #[test]
    fn both_header_spellings_are_read() {
        let mut h = HeaderMap::new();
        h.insert("http_x_ratelimit_limit", HeaderValue::from_static("100"));
        h.insert("http_x_ratelimit_remaining", HeaderValue::from_static("97"));
        h.insert("http_x_ratelimit_reset", HeaderValue::from_static("41"));
        h.insert(
            "x-ratelimit-account-success-remaining",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "x-ratelimit-account-success-reset",
            HeaderValue::from_static("3600"),
        );
        let l = RateLimits::from_headers(&h);
        assert_eq!(
            l.general,
            RateLimit {
                limit: Some(100),
                remaining: Some(97),
                reset_secs: Some(41)
            }
        );
        assert_eq!(l.account_success.remaining, Some(0));
        assert_eq!(l.account_success.limit, None);
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .to_utc();
        let q = Quota::from_limits(&l, now).unwrap();
        assert!(q.exhausted_at(now));
        assert!(!q.exhausted_at(now + Duration::hours(1)));
        assert_eq!(Quota::from_limits(&RateLimits::default(), now), None);
    }

    #[test]
    fn error_bodies_and_field_errors_are_read() {
        let e = ApiError::parse(
            br#"{"summary":"Invalid token","detail":"Token is invalid or expired","status_code":401}"#,
        );
        assert!(e.is_invalid_token());
        let e = ApiError::parse(
            br#"{"summary":"Couldn't update account transactions","detail":"Access has expired or it has been revoked. To restore access reconnect the account.","type":"AccessExpiredError","status_code":401}"#,
        );
        assert!(!e.is_invalid_token());
        assert_eq!(e.kind, "AccessExpiredError");
        let e = ApiError::parse(
            br#"{"institution_id":{"summary":"Unknown Institution ID X","detail":"Get Institution IDs from /institutions/?country={$COUNTRY_CODE}"},"status_code":400}"#,
        );
        assert!(e.text().contains("Unknown Institution ID X"), "{}", e.text());
        assert_eq!(ApiError::parse(b"<html>").text(), "<html>");
    }

    #[test]
    fn statuses_follow_the_spec_enum() {
        assert_eq!(RequisitionStatus::parse("LN"), Some(RequisitionStatus::Linked));
        assert_eq!(RequisitionStatus::parse("EX"), Some(RequisitionStatus::Expired));
        for s in ["CR", "ID", "GC", "UA", "SA", "GA"] {
            assert_eq!(RequisitionStatus::parse(s), Some(RequisitionStatus::InProgress));
        }
        assert_eq!(RequisitionStatus::parse("XX"), None);
        assert_eq!(account_path("a", Some(Scope::Balances)), "/api/v2/accounts/a/balances/");
        assert_eq!(account_path("a", None), "/api/v2/accounts/a/");
    }
}
