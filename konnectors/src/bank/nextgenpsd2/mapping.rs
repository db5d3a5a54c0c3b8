//! Pure mapping: NextGenPSD2 answers to Cozy's bank doctypes. No HTTP, no
//! clock (today is a parameter); each function is tested alone on the
//! answers in `fixtures/nextgenpsd2/api/`.
//!
//! - An account (`accountDetails` + its `balances`) becomes a
//!   [`BankAccount`]: `vendorId` is the bank's `resourceId`, `type` comes
//!   from ISO 20022's `cashAccountType`, the balance is the most current
//!   booked one ([`BALANCE_PREFERENCE`]).
//! - A transaction becomes a [`BankOperation`]: `vendorId` is its
//!   `transactionId` (else `entryReference`), the label the payment's text
//!   (else the other party's name), `isComing` for pending ones, the date
//!   the booking date (pending: the value date, else today).
//! - The booked balance and the booked operations give the end-of-day
//!   balances back to the window's first day ([`daily_balances`]).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use gleaner_framework::doctypes::{BankAccount, BankOperation};
use gleaner_framework::filters::Currency;
use gleaner_framework::Result;
use rust_decimal::Decimal;

use super::api::{AccountDetails, Balance, Transaction, missing_field};

/// Balance types, the one to show first: the most current booked balance,
/// then the others.
pub const BALANCE_PREFERENCE: &[&str] = &[
    "interimBooked",
    "closingBooked",
    "expected",
    "interimAvailable",
    "openingBooked",
    "forwardAvailable",
    "nonInvoiced",
];

/// Balance types that count booked operations only, usable to rebuild the
/// past days' balances.
const BOOKED_TYPES: &[&str] = &["closingBooked", "interimBooked", "openingBooked"];

/// The label when a transaction has no text at all.
pub const NO_LABEL: &str = "Opération sans libellé";

/// Cozy's account type for an ISO 20022 `ExternalCashAccountType1Code`.
pub fn account_type(cash_account_type: Option<&str>) -> &'static str {
    match cash_account_type.map(str::trim).unwrap_or("") {
        "CACC" | "CASH" | "TRAN" | "SACC" | "ODFT" | "SLRY" | "CISH" | "COMM" | "NREX" | "TAXE"
        | "TRAS" | "CHAR" | "MGLD" | "ONDP" | "" => "checkings",
        "SVGS" | "LLSV" | "MOMA" | "NFCA" => "savings",
        "CARD" => "credit card",
        "LOAN" => "loan",
        _ => "other",
    }
}

/// The balance to show among `balances`: those in the account's currency
/// first (all of them for a multi-currency account, `XXX`, or when none
/// is), then by [`BALANCE_PREFERENCE`].
pub fn pick_balance(balances: &[Balance], currency: Currency) -> Option<&Balance> {
    let rank = |b: &Balance| {
        BALANCE_PREFERENCE
            .iter()
            .position(|t| *t == b.balance_type)
            .unwrap_or(BALANCE_PREFERENCE.len())
    };
    let same: Vec<&Balance> = balances
        .iter()
        .filter(|b| b.balance_amount.currency == currency)
        .collect();
    let pool: Vec<&Balance> = if same.is_empty() {
        balances.iter().collect()
    } else {
        same
    };
    pool.into_iter().min_by_key(|b| rank(b))
}

/// The day a balance is for: its `referenceDate`, else the day of its
/// `lastChangeDateTime`, else `today`.
pub fn balance_day(balance: &Balance, today: NaiveDate) -> NaiveDate {
    balance
        .reference_date
        .or_else(|| {
            balance
                .last_change_date_time
                .as_deref()
                .and_then(|t| t.get(..10))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        })
        .unwrap_or(today)
}

/// `…1234`: the last four characters of an account number, for labels.
pub fn short_number(number: &str) -> String {
    let compact: Vec<char> = number.chars().filter(|c| !c.is_whitespace()).collect();
    let tail: String = compact[compact.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

/// The `io.cozy.bank.accounts` document of one account.
///
/// `resource_id` is the account's `resourceId` (checked present by
/// [`resource_id`]); `institution` the bank's name; `balances` its
/// balances (from `/balances`, or the account list's own).
pub fn bank_account(
    details: &AccountDetails,
    resource_id: &str,
    balances: &[Balance],
    institution: &str,
    today: NaiveDate,
) -> BankAccount {
    let picked = pick_balance(balances, details.currency);
    let number = details
        .iban
        .clone()
        .or_else(|| details.bban.clone())
        .or_else(|| details.msisdn.clone());
    let label = [&details.display_name, &details.name, &details.product]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| match &number {
            Some(n) => format!("Compte {}", short_number(n)),
            None => "Compte".to_owned(),
        });
    BankAccount {
        label,
        institution_label: institution.to_owned(),
        account_type: account_type(details.cash_account_type.as_deref()).to_owned(),
        number,
        iban: details.iban.clone(),
        balance: picked.map_or(Decimal::ZERO, |b| b.balance_amount.amount),
        balance_date: picked.map(|b| balance_day(b, today)),
        // The amount's own currency: a multi-currency account (`XXX`) has
        // its balance in a real one.
        currency: picked.map_or(details.currency, |b| b.balance_amount.currency),
        vendor_id: resource_id.to_owned(),
    }
}

/// The account's `resourceId`: optional in the spec, but without it the
/// account cannot be read; its absence names `accounts[index].resourceId`.
pub fn resource_id<'a>(details: &'a AccountDetails, index: usize, url: &str) -> Result<&'a str> {
    details
        .resource_id
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| missing_field(&format!("accounts[{index}].resourceId"), url))
}

fn clean(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The payment's text: `remittanceInformationUnstructured`, else its array
/// form joined by spaces.
pub fn remittance(tx: &Transaction) -> Option<String> {
    if let Some(text) = clean(&tx.remittance_information_unstructured) {
        return Some(text.to_owned());
    }
    let lines: Vec<&str> = tx
        .remittance_information_unstructured_array
        .iter()
        .flatten()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join(" "))
}

/// The other party: the creditor of a debit, the debtor of a credit.
pub fn counterparty(tx: &Transaction) -> Option<&str> {
    if tx.transaction_amount.amount.is_sign_negative() {
        clean(&tx.creditor_name).or(clean(&tx.ultimate_creditor))
    } else {
        clean(&tx.debtor_name).or(clean(&tx.ultimate_debtor))
    }
}

/// The label shown, and the bank's raw text when it says more.
///
/// The label is the payment's text as the bank prints it on a statement
/// (`PRLV SEPA FREE MOBILE ...`), else the other party's name, else the
/// bank's additional information or code, else [`NO_LABEL`]. The original
/// label joins the other party and the text when both exist.
pub fn labels(tx: &Transaction) -> (String, Option<String>) {
    let text = remittance(tx);
    let party = counterparty(tx);
    let label = text
        .clone()
        .or_else(|| party.map(str::to_owned))
        .or_else(|| clean(&tx.additional_information).map(str::to_owned))
        .or_else(|| clean(&tx.proprietary_bank_transaction_code).map(str::to_owned))
        .unwrap_or_else(|| NO_LABEL.to_owned());
    let original = match (party, &text) {
        (Some(p), Some(t)) if !t.to_lowercase().contains(&p.to_lowercase()) => {
            Some(format!("{p} {t}"))
        }
        _ => None,
    };
    (label, original)
}

/// Cozy's operation type from the ISO 20022 bank transaction code
/// (`PMNT-RDDT-ESDD`), else from the label's usual French prefixes.
pub fn operation_type(tx: &Transaction, label: &str) -> Option<&'static str> {
    if let Some(code) = clean(&tx.bank_transaction_code) {
        let parts: Vec<&str> = code.split('-').collect();
        let family = parts.get(1).copied().unwrap_or("");
        let sub = parts.get(2).copied().unwrap_or("");
        let by_code = match (family, sub) {
            ("RDDT" | "IDDT", _) => Some("direct debit"),
            ("CCRD" | "MCRD", "CWDL") => Some("withdrawal"),
            ("CCRD" | "MCRD", _) => Some("card"),
            ("RCDT" | "ICDT", _) => Some("transfer"),
            ("RCHQ" | "ICHQ", _) => Some("check"),
            ("CNTR", "CDPT") => Some("deposit"),
            ("CNTR", "CWDL") => Some("withdrawal"),
            (_, "CHRG" | "FEES" | "COMM") => Some("bank"),
            _ => None,
        };
        if by_code.is_some() {
            return by_code;
        }
    }
    let upper = label.trim_start().to_uppercase();
    let starts = |p: &str| upper.starts_with(p);
    if starts("PRLV") || starts("PRELEVEMENT") {
        Some("direct debit")
    } else if starts("CB ") || starts("CARTE ") || starts("PAIEMENT CB") {
        Some("card")
    } else if starts("VIR") {
        Some("transfer")
    } else if starts("RETRAIT") || starts("DAB") {
        Some("withdrawal")
    } else if starts("CHQ") || starts("CHEQUE") {
        Some("check")
    } else {
        None
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The `io.cozy.bank.operations` document of one transaction.
///
/// `pending`: whether it came in the `pending` list. `path` gives its JSON
/// path in the answer from `url`, built only for an error. A booked
/// transaction needs a `bookingDate` (or at least a `valueDate`): without
/// either, the error names `path.bookingDate`.
pub fn operation(
    tx: &Transaction,
    pending: bool,
    vendor_account_id: &str,
    account_doc_id: Option<&str>,
    today: NaiveDate,
    path: &dyn Fn() -> String,
    url: &str,
) -> Result<BankOperation> {
    let date = if pending {
        tx.value_date
            .or(tx.transaction_date)
            .or(tx.booking_date)
            .unwrap_or(today)
    } else {
        tx.booking_date
            .or(tx.value_date)
            .ok_or_else(|| missing_field(&format!("{}.bookingDate", path()), url))?
    };
    let (label, original_bank_label) = labels(tx);
    let realisation = tx.transaction_date.or(tx.value_date).filter(|d| *d != date);
    Ok(BankOperation {
        operation_type: operation_type(tx, &label).map(str::to_owned),
        label,
        original_bank_label,
        date: midnight(date),
        realisation_date: realisation.map(midnight),
        amount: tx.transaction_amount.amount,
        currency: tx.transaction_amount.currency,
        account: account_doc_id.map(str::to_owned),
        vendor_id: clean(&tx.transaction_id)
            .or(clean(&tx.entry_reference))
            .map(str::to_owned),
        vendor_account_id: vendor_account_id.to_owned(),
        is_coming: pending,
        bills: Vec::new(),
    })
}

/// The operations of one page of a report: booked ones, then pending ones;
/// `page` is the page's JSON path prefix (`transactions`).
pub fn page_operations(
    booked: &[Transaction],
    pending: &[Transaction],
    vendor_account_id: &str,
    account_doc_id: Option<&str>,
    today: NaiveDate,
    url: &str,
) -> Result<Vec<BankOperation>> {
    let mut out = Vec::with_capacity(booked.len() + pending.len());
    for (i, tx) in booked.iter().enumerate() {
        out.push(operation(
            tx,
            false,
            vendor_account_id,
            account_doc_id,
            today,
            &|| format!("transactions.booked[{i}]"),
            url,
        )?);
    }
    for (i, tx) in pending.iter().enumerate() {
        out.push(operation(
            tx,
            true,
            vendor_account_id,
            account_doc_id,
            today,
            &|| format!("transactions.pending[{i}]"),
            url,
        )?);
    }
    Ok(out)
}

/// End-of-day balances from `from` to the day of the account's booked
/// balance, rebuilt backwards from that balance with the booked operations:
/// the balance of a day is the next day's minus the next day's operations.
///
/// Uses the most current booked balance in the account's currency
/// (`closingBooked`, `interimBooked`; `openingBooked` stands for the
/// previous day's close). Without one, only the shown balance's own day is
/// given, when it is a booked type; nothing for an `expected` balance (it
/// counts pending operations). Operations in another currency are left out
/// of the sums.
pub fn daily_balances(
    balances: &[Balance],
    currency: Currency,
    operations: &[BankOperation],
    from: NaiveDate,
    today: NaiveDate,
) -> Vec<(NaiveDate, Decimal)> {
    let anchor = balances
        .iter()
        .filter(|b| BOOKED_TYPES.contains(&b.balance_type.as_str()))
        .filter(|b| b.balance_amount.currency == currency || currency.code() == "XXX")
        .map(|b| {
            let day = balance_day(b, today);
            let day = if b.balance_type == "openingBooked" {
                day - TimeDelta::days(1)
            } else {
                day
            };
            (day, b.balance_amount.amount, b.balance_amount.currency)
        })
        .max_by_key(|(day, _, _)| *day);
    let Some((anchor_day, anchor_amount, anchor_currency)) = anchor else {
        return Vec::new();
    };
    let mut by_day: std::collections::BTreeMap<NaiveDate, Decimal> = Default::default();
    for op in operations
        .iter()
        .filter(|o| !o.is_coming && o.currency == anchor_currency)
    {
        *by_day.entry(op.date.date_naive()).or_default() += op.amount;
    }
    let mut out = vec![(anchor_day, anchor_amount)];
    let mut balance = anchor_amount;
    let mut day = anchor_day;
    while day > from {
        balance -= by_day.get(&day).copied().unwrap_or_default();
        day -= TimeDelta::days(1);
        out.push((day, balance));
    }
    out.reverse();
    out
}

/// Keeps only the first occurrence of each operation key (a bank that
/// repeats its pending list on every page).
pub fn dedup(ops: Vec<BankOperation>) -> Vec<BankOperation> {
    use gleaner_framework::doctypes::Doctype;
    let mut seen = std::collections::HashSet::new();
    ops.into_iter()
        .filter(|o| seen.insert(o.dedup_key()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bank::nextgenpsd2::api::{AccountList, BalancesAnswer, TransactionsAnswer};
    use gleaner_framework::ErrorCode;
    use gleaner_framework::doctypes::Doctype;

    const ACCOUNTS: &str = include_str!("../../../../fixtures/nextgenpsd2/api/accounts.json");
    const BALANCES: &str = include_str!("../../../../fixtures/nextgenpsd2/api/balances.json");
    const PAGE1: &str = include_str!("../../../../fixtures/nextgenpsd2/api/transactions_page1.json");
    const PAGE2: &str = include_str!("../../../../fixtures/nextgenpsd2/api/transactions_page2.json");
    const MINIMAL: &str =
        include_str!("../../../../fixtures/nextgenpsd2/api/transactions_minimal.json");
    const URL: &str = "https://xs2a.bank.example/v1/accounts/acc-1/transactions";

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn today() -> NaiveDate {
        day("2026-01-21")
    }

    fn page(json: &str) -> TransactionsAnswer {
        serde_json::from_str(json).unwrap()
    }

    fn ops(json: &str) -> Vec<BankOperation> {
        let report = page(json).transactions.unwrap();
        page_operations(
            &report.booked,
            &report.pending,
            "acc-1",
            Some("doc-1"),
            today(),
            URL,
        )
        .unwrap()
    }

    #[test]
    fn accounts_map_with_their_preferred_balance() {
        let list: AccountList = serde_json::from_str(ACCOUNTS).unwrap();
        let balances: BalancesAnswer = serde_json::from_str(BALANCES).unwrap();
        let first = &list.accounts[0];
        let id = resource_id(first, 0, URL).unwrap();
        let doc = bank_account(first, id, &balances.balances, "Banque Exemple", today());
        doc.validate().unwrap();
        assert_eq!(doc.vendor_id, "acc-1");
        assert_eq!(doc.label, "Compte courant");
        assert_eq!(doc.account_type, "checkings");
        assert_eq!(doc.iban.as_deref(), Some("FR7612739000700001234560110"));
        assert_eq!(doc.number, doc.iban);
        // interimBooked wins over closingBooked and expected.
        assert_eq!(doc.balance, Decimal::new(123_456, 2));
        assert_eq!(doc.balance_date, Some(day("2026-01-21")));
        assert_eq!(doc.currency, Currency::EUR);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["institutionLabel"], "Banque Exemple");
        assert_eq!(json["type"], "checkings");
        assert_eq!(json["balance"], serde_json::json!(1234.56));
        assert_eq!(json["vendorId"], "acc-1");

        // The savings account has only `currency`, `resourceId` and a BBAN.
        let second = &list.accounts[1];
        let doc = bank_account(second, "acc-2", &[], "Banque Exemple", today());
        assert_eq!(doc.account_type, "savings");
        assert_eq!(doc.label, "Compte …9012");
        assert_eq!(doc.balance, Decimal::ZERO);
        assert_eq!(doc.balance_date, None);
        assert_eq!(doc.iban, None);

        // No resourceId: the error names the path.
        let err = resource_id(&list.accounts[2], 2, URL).unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaChanged);
        assert!(err.message.contains("accounts[2].resourceId"), "{}", err.message);
    }

    #[test]
    fn a_multicurrency_account_takes_its_balance_currency() {
        let list: AccountList = serde_json::from_str(ACCOUNTS).unwrap();
        let balances: BalancesAnswer = serde_json::from_str(BALANCES).unwrap();
        let mut multi = list.accounts[0].clone();
        multi.currency = "XXX".parse().unwrap();
        let doc = bank_account(&multi, "m", &balances.balances, "B", today());
        assert_eq!(doc.currency, Currency::EUR);
        assert_eq!(
            pick_balance(&balances.balances, Currency::USD).map(|b| b.balance_type.as_str()),
            Some("interimBooked")
        );
    }

    #[test]
    fn account_types_follow_iso_20022() {
        assert_eq!(account_type(Some("CACC")), "checkings");
        assert_eq!(account_type(None), "checkings");
        assert_eq!(account_type(Some("SVGS")), "savings");
        assert_eq!(account_type(Some("CARD")), "credit card");
        assert_eq!(account_type(Some("LOAN")), "loan");
        assert_eq!(account_type(Some("ZZZZ")), "other");
    }

    #[test]
    fn transactions_map_with_labels_types_and_pending_state() {
        let ops = ops(PAGE1);
        assert_eq!(ops.len(), 5);
        for op in &ops {
            op.validate().unwrap();
            assert_eq!(op.account.as_deref(), Some("doc-1"));
        }
        let fm = &ops[0];
        assert_eq!(fm.label, "PRLV SEPA FREE MOBILE LIGNE 12345678 FACTURE 12/2025");
        assert_eq!(fm.original_bank_label, None);
        assert_eq!(fm.operation_type.as_deref(), Some("direct debit"));
        assert_eq!(fm.amount, Decimal::new(-1999, 2));
        assert_eq!(fm.date.date_naive(), day("2025-12-04"));
        assert_eq!(fm.vendor_id.as_deref(), Some("FM-20251204"));
        assert!(!fm.is_coming);
        assert_eq!(fm.dedup_key(), "acc-1|FM-20251204");

        // Text in lines; the creditor's name is not in it.
        let card = &ops[1];
        assert_eq!(card.label, "CB CARREFOUR MARKET 17/01");
        assert_eq!(
            card.original_bank_label.as_deref(),
            Some("CARREFOUR MARKET SAS CB CARREFOUR MARKET 17/01")
        );
        assert_eq!(card.operation_type.as_deref(), Some("card"));
        assert_eq!(card.realisation_date.map(|d| d.date_naive()), Some(day("2026-01-17")));

        // No text: the debtor's name; no transactionId: the entry reference.
        let salary = &ops[2];
        assert_eq!(salary.label, "ACME SAS");
        assert_eq!(salary.vendor_id.as_deref(), Some("E-778"));
        assert_eq!(salary.operation_type.as_deref(), Some("transfer"));
        assert_eq!(salary.amount, Decimal::new(245_000, 2));

        // No bookingDate: the value date.
        assert_eq!(ops[3].date.date_naive(), day("2026-01-15"));
        assert_eq!(ops[3].operation_type.as_deref(), Some("withdrawal"));

        let pending = &ops[4];
        assert!(pending.is_coming);
        assert_eq!(pending.label, "PAIEMENT CB EN COURS LE BISTROT");
        assert_eq!(pending.date.date_naive(), day("2026-01-20"));
        assert_eq!(pending.amount, Decimal::new(-4250, 2));
        assert!(
            serde_json::to_string(pending)
                .unwrap()
                .contains(r#""isComing":true"#)
        );
        let next = "/v1/accounts/acc-1/transactions?bookingStatus=both&dateFrom=2025-01-21&dateTo=2026-01-21&pageIndex=1";
        let first = page(PAGE1).transactions.unwrap();
        assert_eq!(first.links["next"].href.as_deref(), Some(next));
        assert!(!page(PAGE2).transactions.unwrap().links.contains_key("next"));
    }

    #[test]
    fn only_the_required_fields_are_enough() {
        let ops = ops(MINIMAL);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].label, NO_LABEL);
        assert_eq!(ops[0].vendor_id, None);
        assert_eq!(ops[0].dedup_key(), format!("acc-1|2026-01-02|-5|{NO_LABEL}"));
        // A pending item with no date at all is dated today.
        assert!(ops[1].is_coming);
        assert_eq!(ops[1].date.date_naive(), today());
    }

    #[test]
    fn a_booked_transaction_without_any_date_names_its_path() {
        let json = r#"{"transactions":{"booked":[{"transactionAmount":{"currency":"EUR","amount":"-1.00"}}],"_links":{}}}"#;
        let report = page(json).transactions.unwrap();
        let err = page_operations(&report.booked, &[], "a", None, today(), URL).unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaChanged);
        assert!(err.message.contains("transactions.booked[0].bookingDate"), "{}", err.message);
    }

    #[test]
    fn daily_balances_walk_back_from_the_booked_balance() {
        let balances: BalancesAnswer = serde_json::from_str(BALANCES).unwrap();
        let ops = ops(PAGE1);
        let days = daily_balances(&balances.balances, Currency::EUR, &ops, day("2026-01-14"), today());
        // interimBooked 1234.56 on 2026-01-21 is the latest booked balance.
        assert_eq!(days.first().map(|d| d.0), Some(day("2026-01-14")));
        assert_eq!(days.last(), Some(&(day("2026-01-21"), Decimal::new(123_456, 2))));
        let on = |d: &str| days.iter().find(|(x, _)| *x == day(d)).unwrap().1;
        // Nothing booked after the 19th: same balance.
        assert_eq!(on("2026-01-19"), Decimal::new(123_456, 2));
        // The card payment booked on the 19th (-52.18): the 18th had 52.18 more.
        assert_eq!(on("2026-01-18"), Decimal::new(128_674, 2));
        assert_eq!(on("2026-01-15"), Decimal::new(128_674, 2));
        // The withdrawal dated the 15th (-60.00).
        assert_eq!(on("2026-01-14"), Decimal::new(134_674, 2));
        assert_eq!(days.len(), 8);
        // The pending one is left out; only booked types anchor.
        let expected_only: Vec<Balance> = balances
            .balances
            .iter()
            .filter(|b| b.balance_type == "expected")
            .cloned()
            .collect();
        assert!(daily_balances(&expected_only, Currency::EUR, &ops, day("2026-01-01"), today()).is_empty());
    }

    #[test]
    fn operation_types_read_the_code_then_the_label() {
        let mut tx: Transaction = serde_json::from_str(
            r#"{"transactionAmount":{"currency":"EUR","amount":"-3"},"bankTransactionCode":"PMNT-CCRD-CWDL"}"#,
        )
        .unwrap();
        assert_eq!(operation_type(&tx, "x"), Some("withdrawal"));
        tx.bank_transaction_code = Some("ACMT-MDOP-CHRG".into());
        assert_eq!(operation_type(&tx, "x"), Some("bank"));
        tx.bank_transaction_code = None;
        assert_eq!(operation_type(&tx, "PRLV SEPA EDF"), Some("direct debit"));
        assert_eq!(operation_type(&tx, "VIR SEPA X"), Some("transfer"));
        assert_eq!(operation_type(&tx, "Something"), None);
    }
}
