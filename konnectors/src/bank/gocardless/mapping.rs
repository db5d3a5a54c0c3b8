//! Pure mapping: the API's accounts, balances and transactions (Berlin
//! Group shapes) to `io.cozy.bank.accounts`, `io.cozy.bank.operations` and
//! daily balances. No HTTP, no clock (today is a parameter).
//!
//! Choices, each tested below on fixtures:
//! - **the account's `vendorId`** is its IBAN (else the bank's
//!   `resourceId`, else the BBAN, else GoCardless' id): GoCardless gives
//!   the same account a new id at every reconnection (every 90 to 180
//!   days), which would otherwise duplicate the account and its history;
//! - **the balance** is the first of `interimBooked`, `closingBooked`,
//!   `expected`, `interimAvailable`, `openingBooked` the bank gives (booked
//!   balances agree with booked operations), else the first one;
//! - **an operation's `vendorId`** is the bank's `transactionId`, else
//!   GoCardless' `internalTransactionId`, else none (the framework then
//!   keys it on date, amount and label);
//! - **dates**: a booked operation's `date` is its `bookingDate` (else its
//!   date-time, else its value date); a pending one's its `valueDate`
//!   (else its booking date, else today); `realisationDate` is the value
//!   date when there is one;
//! - **the label** is the remittance information (the text the bank
//!   prints), else the counterpart's name; `originalBankLabel` keeps the
//!   counterpart and the remittance together when they differ;
//! - amounts and currencies are strict: a value that is not a decimal or an
//!   ISO 4217 code is `UNKNOWN_ERROR.SCHEMA_CHANGED` naming its JSON path.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use gleaner_framework::doctypes::{BankAccount, BankOperation};
use gleaner_framework::filters::Currency;
use gleaner_framework::{ErrorCode, KonnectorError, Locator, Result};
use rust_decimal::Decimal;

use super::api::{AccountMeta, Amount, Balance, BankTransactions, Details, Transaction};

/// Balance types in the order the account's `balance` is taken from.
pub const BALANCE_PREFERENCE: [&str; 5] = [
    "interimBooked",
    "closingBooked",
    "expected",
    "interimAvailable",
    "openingBooked",
];

/// Balance types that are end-of-day booked balances, for the history.
const HISTORY_TYPES: [&str; 2] = ["closingBooked", "interimBooked"];

/// A value that does not fit: `SCHEMA_CHANGED` naming `path` in `source`.
pub fn schema_error(source: &str, path: &str, what: String) -> KonnectorError {
    KonnectorError::new(
        ErrorCode::SchemaChanged,
        format!("GoCardless answered a value that does not fit at `{path}` of {source}: {what}"),
    )
    .with_locator(Locator::JsonPath {
        path: path.to_owned(),
        url: source.to_owned(),
    })
}

/// A signed decimal from the API's string, strictly (`"-42.50"`; no
/// exponent, no thousands separator).
pub fn decimal(source: &str, path: &str, text: &str) -> Result<Decimal> {
    let t = text.trim();
    let plain = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+');
    let parsed = plain.then(|| Decimal::from_str(t).ok()).flatten();
    parsed.ok_or_else(|| schema_error(source, path, format!("`{text}` is not a decimal amount")))
}

/// An ISO 4217 currency, strictly.
pub fn currency(source: &str, path: &str, code: &str) -> Result<Currency> {
    Currency::from_str(code).map_err(|_| {
        schema_error(
            source,
            path,
            format!("`{code}` is not an ISO 4217 currency code"),
        )
    })
}

/// A `YYYY-MM-DD` date (or the date of an ISO 8601 date-time).
pub fn date(source: &str, path: &str, text: &str) -> Result<NaiveDate> {
    let t = text.trim();
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(t).ok().map(|d| d.date_naive()))
        .or_else(|| {
            t.get(..10)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .filter(|_| t.as_bytes().get(10) == Some(&b'T'))
        })
        .ok_or_else(|| schema_error(source, path, format!("`{text}` is not a date")))
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

fn clean(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(clean).filter(|s| !s.is_empty())
}

/// The account's stable id (see the module docs): IBAN, `resourceId`,
/// BBAN, or GoCardless' id.
pub fn vendor_account_id(meta: &AccountMeta, details: &Details) -> String {
    let iban = details
        .iban
        .as_deref()
        .or(meta.iban.as_deref())
        .map(|i| i.replace(' ', "").to_ascii_uppercase())
        .filter(|i| !i.is_empty());
    iban.or_else(|| non_empty(details.resource_id.as_deref()))
        .or_else(|| non_empty(details.bban.as_deref()))
        .unwrap_or_else(|| meta.id.clone())
}

/// Cozy's account type for an ISO 20022 `cashAccountType` code:
/// `checkings` when the bank gives none (most accounts GoCardless reaches
/// are current accounts), `other` for a code it does not map.
pub fn account_type(cash_account_type: Option<&str>) -> &'static str {
    match cash_account_type.map(|c| c.trim().to_ascii_uppercase()).as_deref() {
        None | Some("") => "checkings",
        Some("CACC" | "CASH" | "TRAN" | "SLRY" | "ODFT" | "NREX" | "TAXE" | "COMM") => "checkings",
        Some("SVGS" | "MOMA" | "ONDP" | "LLSV") => "savings",
        Some("CARD") => "credit card",
        Some("LOAN" | "MGLD") => "loan",
        Some(_) => "other",
    }
}

/// The balance the account shows (see [`BALANCE_PREFERENCE`]), checked.
pub fn current_balance(
    balances: &[Balance],
    source: &str,
) -> Result<Option<(Decimal, Currency, Option<NaiveDate>)>> {
    let chosen = BALANCE_PREFERENCE
        .iter()
        .find_map(|t| {
            balances
                .iter()
                .enumerate()
                .find(|(_, b)| b.balance_type == *t)
        })
        .or_else(|| balances.iter().enumerate().next());
    let Some((i, b)) = chosen else {
        return Ok(None);
    };
    let at = |f: &str| format!("balances[{i}].{f}");
    let amount = decimal(source, &at("balanceAmount.amount"), &b.balance_amount.amount)?;
    let cur = currency(
        source,
        &at("balanceAmount.currency"),
        &b.balance_amount.currency,
    )?;
    let day = b
        .reference_date
        .as_deref()
        .map(|d| date(source, &at("referenceDate"), d))
        .transpose()?;
    Ok(Some((amount, cur, day)))
}

/// Daily balances for the history: the booked end-of-day ones that carry
/// a date (`closingBooked` before `interimBooked` on the same day), else
/// the current balance on its day (today when it has none).
pub fn balance_points(
    balances: &[Balance],
    today: NaiveDate,
    source: &str,
) -> Result<Vec<(NaiveDate, Decimal)>> {
    let mut points: Vec<(NaiveDate, Decimal)> = Vec::new();
    for t in HISTORY_TYPES {
        for (i, b) in balances.iter().enumerate() {
            let Some(day) = b.reference_date.as_deref() else {
                continue;
            };
            if b.balance_type != t {
                continue;
            }
            let day = date(source, &format!("balances[{i}].referenceDate"), day)?;
            if points.iter().any(|(d, _)| *d == day) {
                continue;
            }
            let amount = decimal(
                source,
                &format!("balances[{i}].balanceAmount.amount"),
                &b.balance_amount.amount,
            )?;
            points.push((day, amount));
        }
    }
    if points.is_empty()
        && let Some((amount, _, day)) = current_balance(balances, source)?
    {
        points.push((day.unwrap_or(today), amount));
    }
    points.sort_by_key(|(d, _)| *d);
    Ok(points)
}

/// The account's label: the name the person gave it, else the bank's
/// name, else the product, else "Compte ****1234".
pub fn account_label(meta: &AccountMeta, details: &Details) -> String {
    non_empty(details.display_name.as_deref())
        .or_else(|| non_empty(details.name.as_deref()))
        .or_else(|| non_empty(details.product.as_deref()))
        .or_else(|| non_empty(meta.name.as_deref()))
        .unwrap_or_else(|| {
            let id = vendor_account_id(meta, details);
            let tail: String = id
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("Compte ****{tail}")
        })
}

/// The `io.cozy.bank.accounts` document.
pub fn account(
    meta: &AccountMeta,
    details: &Details,
    institution_label: &str,
    balance: (Decimal, Currency, Option<NaiveDate>),
) -> BankAccount {
    let iban = non_empty(details.iban.as_deref())
        .or_else(|| non_empty(meta.iban.as_deref()))
        .map(|i| i.replace(' ', ""));
    let number = iban
        .clone()
        .or_else(|| non_empty(details.bban.as_deref()))
        .or_else(|| non_empty(details.scan.as_deref()))
        .or_else(|| non_empty(details.masked_pan.as_deref()));
    let (amount, cur, day) = balance;
    BankAccount {
        label: account_label(meta, details),
        institution_label: institution_label.to_owned(),
        account_type: account_type(details.cash_account_type.as_deref()).to_owned(),
        number,
        iban,
        balance: amount,
        balance_date: day,
        currency: cur,
        vendor_id: vendor_account_id(meta, details),
    }
}

/// Cozy's operation type for a bank transaction code (ISO 20022
/// `Domain-Family-SubFamily`, or the bank's own): `None` when unknown.
pub fn operation_type(tx: &Transaction) -> Option<&'static str> {
    let code = tx
        .bank_transaction_code
        .as_deref()
        .or(tx.proprietary_bank_transaction_code.as_deref())?
        .to_ascii_uppercase();
    let has = |parts: &[&str]| parts.iter().any(|p| code.contains(p));
    Some(if has(&["RDDT", "ESDD", "BBDD", "DDBT"]) {
        "direct debit"
    } else if has(&["CWDL", "ATM"]) {
        "withdrawal"
    } else if has(&["CCRD", "POSD", "CARD"]) {
        "card"
    } else if has(&["ICDT", "RCDT", "ESCT", "TRF", "SEPA"]) {
        "transfer"
    } else if has(&["CHK", "CHEQ", "CQ"]) {
        "check"
    } else if has(&["CHRG", "FEES", "COMM"]) {
        "bank fees"
    } else if has(&["LOAN", "LDAS"]) {
        "loan payment"
    } else {
        return None;
    })
}

/// The operation's label and, when it differs, the bank's full text.
pub fn labels(tx: &Transaction, amount: Decimal) -> (String, Option<String>) {
    let remittance = non_empty(tx.remittance_information_unstructured.as_deref())
        .or_else(|| {
            let joined = tx.remittance_information_unstructured_array.join(" ");
            non_empty(Some(&joined))
        })
        .or_else(|| non_empty(tx.remittance_information_structured.as_deref()));
    let (mine, theirs) = if amount.is_sign_negative() {
        (&tx.creditor_name, &tx.debtor_name)
    } else {
        (&tx.debtor_name, &tx.creditor_name)
    };
    let counterpart = non_empty(mine.as_deref()).or_else(|| non_empty(theirs.as_deref()));
    let additional = non_empty(tx.additional_information.as_deref());
    let label = remittance
        .clone()
        .or_else(|| counterpart.clone())
        .or_else(|| additional.clone())
        .or_else(|| operation_type(tx).map(str::to_owned))
        .unwrap_or_else(|| "Opération".to_owned());
    let full: Vec<String> = [counterpart, remittance, additional]
        .into_iter()
        .flatten()
        .collect();
    let full = full.join(" ");
    let original = (!full.is_empty() && full != label).then_some(full);
    (label, original)
}

fn amount_of(source: &str, path: &str, a: &Amount) -> Result<(Decimal, Currency)> {
    Ok((
        decimal(source, &format!("{path}.amount"), &a.amount)?,
        currency(source, &format!("{path}.currency"), &a.currency)?,
    ))
}

/// One transaction as an operation. `path` is its JSON path
/// (`transactions.booked[3]`), for errors.
pub fn operation(
    tx: &Transaction,
    pending: bool,
    vendor_account_id: &str,
    account_doc: Option<&str>,
    today: NaiveDate,
    source: &str,
    path: &str,
) -> Result<BankOperation> {
    let (amount, cur) = amount_of(source, &format!("{path}.transactionAmount"), &tx.transaction_amount)?;
    let field = |name: &str, v: &Option<String>| -> Result<Option<NaiveDate>> {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| date(source, &format!("{path}.{name}"), s))
            .transpose()
    };
    let booking = field("bookingDate", &tx.booking_date)?
        .or(field("bookingDateTime", &tx.booking_date_time)?);
    let value = field("valueDate", &tx.value_date)?.or(field("valueDateTime", &tx.value_date_time)?);
    let day = if pending {
        value.or(booking).unwrap_or(today)
    } else {
        booking.or(value).ok_or_else(|| {
            schema_error(
                source,
                &format!("{path}.bookingDate"),
                "a booked transaction has neither a booking nor a value date".to_owned(),
            )
        })?
    };
    let (label, original_bank_label) = labels(tx, amount);
    let vendor_id = non_empty(tx.transaction_id.as_deref())
        .or_else(|| non_empty(tx.internal_transaction_id.as_deref()));
    Ok(BankOperation {
        label,
        original_bank_label,
        operation_type: operation_type(tx).map(str::to_owned),
        date: midnight(day),
        realisation_date: value.map(midnight),
        amount,
        currency: cur,
        account: account_doc.map(str::to_owned),
        vendor_id,
        vendor_account_id: vendor_account_id.to_owned(),
        is_coming: pending,
        bills: Vec::new(),
    })
}

/// Every booked and pending transaction as operations.
pub fn operations(
    txs: &BankTransactions,
    vendor_account_id: &str,
    account_doc: Option<&str>,
    today: NaiveDate,
    source: &str,
) -> Result<Vec<BankOperation>> {
    let booked = txs.booked.iter().enumerate().map(|(i, tx)| {
        operation(
            tx,
            false,
            vendor_account_id,
            account_doc,
            today,
            source,
            &format!("transactions.booked[{i}]"),
        )
    });
    let pending = txs.pending.iter().enumerate().map(|(i, tx)| {
        operation(
            tx,
            true,
            vendor_account_id,
            account_doc,
            today,
            source,
            &format!("transactions.pending[{i}]"),
        )
    });
    booked.chain(pending).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bank::gocardless::api::{
        AccountBalances, AccountDetails, AccountTransactions, Requisition,
    };
    use gleaner_framework::doctypes::Doctype;

    const ACCOUNT: &str = include_str!("../../../../fixtures/gocardless/account.json");
    const DETAILS: &str = include_str!("../../../../fixtures/gocardless/details.json");
    const BALANCES: &str = include_str!("../../../../fixtures/gocardless/balances.json");
    const TRANSACTIONS: &str = include_str!("../../../../fixtures/gocardless/transactions.json");
    const MINIMAL: &str = include_str!("../../../../fixtures/gocardless/transactions_minimal.json");
    const REQUISITION: &str =
        include_str!("../../../../fixtures/gocardless/requisition_linked.json");
    const SRC: &str = "/api/v2/accounts/{id}/transactions/";

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    }

    fn meta() -> AccountMeta {
        serde_json::from_str(ACCOUNT).unwrap()
    }

    fn details() -> Details {
        serde_json::from_str::<AccountDetails>(DETAILS).unwrap().account
    }

    fn balances() -> Vec<Balance> {
        serde_json::from_str::<AccountBalances>(BALANCES)
            .unwrap()
            .balances
    }

    fn transactions(json: &str) -> BankTransactions {
        serde_json::from_str::<AccountTransactions>(json)
            .unwrap()
            .transactions
    }

    #[test]
    fn a_linked_requisition_lists_its_accounts() {
        let r: Requisition = serde_json::from_str(REQUISITION).unwrap();
        assert_eq!(r.status, "LN");
        assert_eq!(r.accounts.len(), 2);
    }

    #[test]
    fn the_account_is_keyed_on_its_iban_and_shows_the_booked_balance() {
        let (amount, cur, day) = current_balance(&balances(), "b").unwrap().unwrap();
        assert_eq!(amount, Decimal::new(184_562, 2));
        assert_eq!(cur, Currency::EUR);
        assert_eq!(day, NaiveDate::from_ymd_opt(2026, 11, 29));
        let doc = account(&meta(), &details(), "Sandbox Finance", (amount, cur, day));
        doc.validate().unwrap();
        assert_eq!(doc.vendor_id, "FR7630006000011234567890189");
        assert_eq!(doc.iban.as_deref(), Some("FR7630006000011234567890189"));
        assert_eq!(doc.number, doc.iban);
        assert_eq!(doc.label, "Compte courant");
        assert_eq!(doc.account_type, "checkings");
        assert_eq!(doc.institution_label, "Sandbox Finance");
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["type"], "checkings");
        assert_eq!(json["balance"], serde_json::json!(1845.62));
        assert_eq!(json["institutionLabel"], "Sandbox Finance");
    }

    #[test]
    fn without_an_iban_the_key_falls_back_to_the_bank_then_gocardless() {
        let mut m = meta();
        let mut d = details();
        m.iban = None;
        d.iban = None;
        assert_eq!(vendor_account_id(&m, &d), "SFIN-CC-0001");
        d.resource_id = None;
        assert_eq!(vendor_account_id(&m, &d), "30006000011234567890189");
        d.bban = None;
        assert_eq!(vendor_account_id(&m, &d), m.id);
        d.display_name = None;
        d.name = None;
        d.product = None;
        m.name = None;
        assert!(account_label(&m, &d).starts_with("Compte ****"), "{}", account_label(&m, &d));
    }

    #[test]
    fn account_types_follow_iso_20022() {
        assert_eq!(account_type(Some("CACC")), "checkings");
        assert_eq!(account_type(Some("svgs")), "savings");
        assert_eq!(account_type(Some("CARD")), "credit card");
        assert_eq!(account_type(Some("LOAN")), "loan");
        assert_eq!(account_type(Some("XXXX")), "other");
        assert_eq!(account_type(None), "checkings");
    }

    #[test]
    fn history_points_take_closing_balances_by_day() {
        let points = balance_points(&balances(), today(), "b").unwrap();
        assert_eq!(
            points,
            vec![
                (NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(), Decimal::new(188_012, 2)),
                (NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(), Decimal::new(184_562, 2)),
            ]
        );
        // Only an undated "expected": today's.
        let only: Vec<Balance> = balances()
            .into_iter()
            .filter(|b| b.balance_type == "expected")
            .map(|mut b| {
                b.reference_date = None;
                b
            })
            .collect();
        assert_eq!(
            balance_points(&only, today(), "b").unwrap(),
            vec![(today(), Decimal::new(180_312, 2))]
        );
        assert!(balance_points(&[], today(), "b").unwrap().is_empty());
    }

    #[test]
    fn booked_and_pending_transactions_become_operations() {
        let ops = operations(&transactions(TRANSACTIONS), "FR76X", Some("doc1"), today(), SRC)
            .unwrap();
        assert_eq!(ops.len(), 6);
        for op in &ops {
            op.validate().unwrap();
            assert_eq!(op.account.as_deref(), Some("doc1"));
            assert_eq!(op.vendor_account_id, "FR76X");
        }
        let debit = &ops[0];
        assert_eq!(debit.label, "PRLV SEPA EDF CLIENTS PARTICULIERS");
        assert_eq!(
            debit.original_bank_label.as_deref(),
            Some("EDF PRLV SEPA EDF CLIENTS PARTICULIERS")
        );
        assert_eq!(debit.amount, Decimal::new(-6490, 2));
        assert_eq!(debit.operation_type.as_deref(), Some("direct debit"));
        assert_eq!(debit.vendor_id.as_deref(), Some("SFIN-20261112-001"));
        assert_eq!(debit.date.to_rfc3339(), "2026-11-12T00:00:00+00:00");
        assert!(!debit.is_coming);
        // A credit: the debtor names it; the label joins an array.
        let credit = &ops[1];
        assert_eq!(credit.label, "VIR SEPA SALAIRE ACME SAS NOVEMBRE");
        assert_eq!(credit.amount, Decimal::new(285_000, 2));
        assert_eq!(credit.operation_type.as_deref(), Some("transfer"));
        // No transactionId: GoCardless' internal id.
        assert_eq!(ops[2].vendor_id.as_deref(), Some("gc-internal-778"));
        assert_eq!(ops[2].operation_type.as_deref(), Some("card"));
        assert_eq!(ops[2].realisation_date.unwrap().date_naive().to_string(), "2026-11-26");
        // A booking date-time only.
        assert_eq!(ops[3].date.to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(ops[3].label, "Alex Dupont");
        // Pending: dated by its value date, no bank id, coming.
        let pending = &ops[4];
        assert!(pending.is_coming);
        assert_eq!(pending.vendor_id.as_deref(), Some("gc-internal-901"));
        assert_eq!(pending.date.to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(pending.label, "CARTE X1234 CARREFOUR CITY");
        // Pending without any date or id: today, no vendorId.
        assert_eq!(ops[5].date.date_naive(), today());
        assert_eq!(ops[5].vendor_id, None);
        assert_eq!(ops[5].currency, Currency::EUR);
        let json = serde_json::to_value(pending).unwrap();
        assert_eq!(json["isComing"], true);
        assert_eq!(json["amount"].to_string(), "-42.50");
    }

    #[test]
    fn only_the_required_fields_are_enough() {
        let ops = operations(&transactions(MINIMAL), "A", None, today(), SRC).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].label, "Opération");
        assert_eq!(ops[0].amount, Decimal::new(1, 0));
        assert_eq!(ops[0].vendor_id, None);
    }

    /// Decodes as a run does: the framework's `Response::json`.
    fn decode(v: &serde_json::Value) -> Result<AccountTransactions> {
        gleaner_framework::http::Response {
            url: url::Url::parse("https://bankaccountdata.gocardless.com/api/v2/accounts/a/transactions/?date_from=2026-01-01").unwrap(),
            status: gleaner_framework::http::StatusCode::OK,
            headers: Default::default(),
            body: v.to_string().into(),
        }
        .json()
    }

    #[test]
    fn a_missing_required_field_names_its_json_path() {
        let json: serde_json::Value = serde_json::from_str(TRANSACTIONS).unwrap();
        assert!(decode(&json).is_ok());
        let mut broken = json.clone();
        broken["transactions"]["booked"][1]
            .as_object_mut()
            .unwrap()
            .remove("transactionAmount");
        let err = decode(&broken).unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaChanged);
        assert!(err.message.contains("transactions.booked[1]"), "{}", err.message);
        assert!(!err.message.contains("date_from"), "{}", err.message);
        let mut no_booked = json.clone();
        no_booked["transactions"]
            .as_object_mut()
            .unwrap()
            .remove("booked");
        let err = decode(&no_booked).unwrap_err();
        assert!(err.message.contains("booked"), "{}", err.message);
        // Unknown and optional fields are tolerated.
        let mut extra = json;
        extra["transactions"]["booked"][0]["somethingNew"] = serde_json::json!({"x": 1});
        extra["transactions"]["booked"][0]
            .as_object_mut()
            .unwrap()
            .remove("creditorName");
        assert!(decode(&extra).is_ok());
    }

    #[test]
    fn values_that_do_not_fit_are_schema_changed_naming_the_path() {
        let mut txs = transactions(TRANSACTIONS);
        txs.booked[2].transaction_amount.amount = "1e3".into();
        let e = operations(&txs, "A", None, today(), SRC).unwrap_err();
        assert_eq!(e.code, ErrorCode::SchemaChanged);
        assert!(
            e.message.contains("transactions.booked[2].transactionAmount.amount"),
            "{}",
            e.message
        );
        let mut txs = transactions(TRANSACTIONS);
        txs.pending[0].transaction_amount.currency = "string".into();
        let e = operations(&txs, "A", None, today(), SRC).unwrap_err();
        assert!(
            e.message.contains("transactions.pending[0].transactionAmount.currency"),
            "{}",
            e.message
        );
        let mut txs = transactions(TRANSACTIONS);
        txs.booked[0].booking_date = Some("date".into());
        let e = operations(&txs, "A", None, today(), SRC).unwrap_err();
        assert!(e.message.contains("booked[0].bookingDate"), "{}", e.message);
        assert_eq!(
            e.locator.as_deref(),
            Some(&Locator::JsonPath {
                path: "transactions.booked[0].bookingDate".into(),
                url: SRC.into()
            })
        );
        let mut txs = transactions(TRANSACTIONS);
        txs.booked[0].booking_date = None;
        txs.booked[0].value_date = None;
        let e = operations(&txs, "A", None, today(), SRC).unwrap_err();
        assert!(e.message.contains("neither"), "{}", e.message);
        for bad in ["1,5", "", "12.5.3", "1 000.00"] {
            assert!(decimal("s", "p", bad).is_err(), "{bad}");
        }
        assert_eq!(decimal("s", "p", "+12.50").unwrap(), Decimal::new(1250, 2));
    }
}
