//! `io.cozy.bank.accounts`, `io.cozy.bank.operations` and
//! `io.cozy.bank.balancehistories`, with Cozy's field names.
//!
//! Konnectors save them through [`crate::bank`]'s context methods
//! ([`crate::RunContext::save_bank_account`],
//! [`crate::RunContext::save_bank_operations`],
//! [`crate::RunContext::save_balances`]), which add the pending-to-booked
//! matching and the incremental window on top of the plain
//! [`crate::RunContext::save`].

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Doctype, key_amount, require};
use crate::error::KonnectorError;
use crate::filters::Currency;

/// An `io.cozy.bank.accounts` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankAccount {
    /// The account's label at the bank.
    pub label: String,
    /// The bank's name.
    pub institution_label: String,
    /// Cozy's account type (`checkings`, `savings`, `credit card`, `loan` ...).
    #[serde(rename = "type")]
    pub account_type: String,
    /// The account number as the bank shows it (masked in logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The IBAN, when known (masked in logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    /// The current balance.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub balance: Decimal,
    /// The day the balance is for, when the bank says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_date: Option<NaiveDate>,
    /// The currency.
    pub currency: Currency,
    /// The bank's id for the account: the deduplication key.
    pub vendor_id: String,
}

impl Doctype for BankAccount {
    const DOCTYPE: &'static str = "io.cozy.bank.accounts";

    fn dedup_key(&self) -> String {
        self.vendor_id.clone()
    }

    fn validate(&self) -> Result<(), KonnectorError> {
        require("vendorId", Self::DOCTYPE, &self.vendor_id)?;
        require("label", Self::DOCTYPE, &self.label)?;
        require("type", Self::DOCTYPE, &self.account_type)
    }
}

/// An `io.cozy.bank.operations` document.
///
/// The fields are declared in the alphabetical order of their JSON names,
/// so that serializing the struct directly gives the canonical JSON (keys
/// sorted) the store hashes, without building a `serde_json::Value`
/// first: that is most of the cost of staging 100,000 operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankOperation {
    /// The `io.cozy.bank.accounts` id the operation belongs to (the id
    /// [`crate::RunContext::save_bank_account`] returns; filled in by
    /// [`crate::RunContext::save_bank_operations`] when left `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The signed amount: negative for debits.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    /// The bills this operation paid, as `io.cozy.bills:<id>` (set by the
    /// linking pass only; konnectors leave it empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bills: Vec<String>,
    /// The currency.
    pub currency: Currency,
    /// The booking date (for a pending operation: the date the bank gives it).
    #[serde(serialize_with = "super::utc_json::serialize")]
    pub date: DateTime<Utc>,
    /// Pending: authorised but not booked yet (Cozy's `isComing`).
    #[serde(default)]
    pub is_coming: bool,
    /// The label as shown to the user.
    pub label: String,
    /// The label exactly as the bank gave it, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_bank_label: Option<String>,
    /// The date the operation happened (card payments).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::utc_json::serialize_opt"
    )]
    pub realisation_date: Option<DateTime<Utc>>,
    /// The operation type (`transfer`, `card`, `withdrawal`, `direct debit` ...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub operation_type: Option<String>,
    /// The bank's id for the account.
    pub vendor_account_id: String,
    /// The bank's id for the operation, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
}

impl Doctype for BankOperation {
    const DOCTYPE: &'static str = "io.cozy.bank.operations";

    /// `vendorAccountId|vendorId` when the bank gives an id; else
    /// `vendorAccountId|date|amount|label`.
    fn dedup_key(&self) -> String {
        match &self.vendor_id {
            Some(id) => format!("{}|{id}", self.vendor_account_id),
            None => format!(
                "{}|{}|{}|{}",
                self.vendor_account_id,
                self.date.format("%Y-%m-%d"),
                key_amount(&self.amount),
                self.label.trim()
            ),
        }
    }

    fn validate(&self) -> Result<(), KonnectorError> {
        require("label", Self::DOCTYPE, &self.label)?;
        require("vendorAccountId", Self::DOCTYPE, &self.vendor_account_id)?;
        if let Some(id) = &self.vendor_id {
            require("vendorId", Self::DOCTYPE, id)?;
        }
        Ok(())
    }
}

/// An `io.cozy.bank.balancehistories` document: one account's end-of-day
/// balances over one calendar year, as Cozy stores them.
///
/// Serialized Cozy-style:
/// `{"year":2026,"balances":{"2026-01-02":12.5},"metadata":{"version":1},
/// "vendorAccountId":"...","relationships":{"account":{"data":{"_id":"<id>",
/// "_type":"io.cozy.bank.accounts"}}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "BalanceHistoryWire", try_from = "BalanceHistoryWire")]
pub struct BalanceHistory {
    /// The calendar year.
    pub year: i32,
    /// Balances by day (`YYYY-MM-DD`, inside `year`).
    pub balances: BTreeMap<String, Decimal>,
    /// The `io.cozy.bank.accounts` document id.
    pub account: String,
    /// The bank's id for the account.
    pub vendor_account_id: String,
}

impl BalanceHistory {
    /// An empty history of `year` for an account.
    pub fn new(
        year: i32,
        account: impl Into<String>,
        vendor_account_id: impl Into<String>,
    ) -> Self {
        Self {
            year,
            balances: BTreeMap::new(),
            account: account.into(),
            vendor_account_id: vendor_account_id.into(),
        }
    }

    /// Sets the balance of `day` (which must be in [`BalanceHistory::year`]).
    pub fn set(&mut self, day: NaiveDate, balance: Decimal) -> Result<(), KonnectorError> {
        if day.year() != self.year {
            return Err(KonnectorError::invalid_data(format!(
                "{} document of {} cannot hold a balance of {day}",
                Self::DOCTYPE,
                self.year
            )));
        }
        self.balances
            .insert(day.format("%Y-%m-%d").to_string(), balance);
        Ok(())
    }
}

impl Doctype for BalanceHistory {
    const DOCTYPE: &'static str = "io.cozy.bank.balancehistories";

    /// `vendorAccountId|year`.
    fn dedup_key(&self) -> String {
        format!("{}|{}", self.vendor_account_id, self.year)
    }

    fn validate(&self) -> Result<(), KonnectorError> {
        require("vendorAccountId", Self::DOCTYPE, &self.vendor_account_id)?;
        require("relationships.account", Self::DOCTYPE, &self.account)?;
        if !(1900..=9999).contains(&self.year) {
            return Err(KonnectorError::invalid_data(format!(
                "{} document has an impossible year {}",
                Self::DOCTYPE,
                self.year
            )));
        }
        for day in self.balances.keys() {
            match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                Ok(d) if d.year() == self.year => {}
                _ => {
                    return Err(KonnectorError::invalid_data(format!(
                        "{} document of {} has a balance for `{day}`, not a day of that year",
                        Self::DOCTYPE,
                        self.year
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A decimal written as a JSON number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
struct Amount(#[serde(with = "rust_decimal::serde::arbitrary_precision")] Decimal);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireMetadata {
    version: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireRef {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_type")]
    doctype: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireData {
    data: WireRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireRelationships {
    account: WireData,
}

/// [`BalanceHistory`] as Cozy stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BalanceHistoryWire {
    year: i32,
    balances: BTreeMap<String, Amount>,
    metadata: WireMetadata,
    vendor_account_id: String,
    relationships: WireRelationships,
}

impl From<BalanceHistory> for BalanceHistoryWire {
    fn from(h: BalanceHistory) -> Self {
        Self {
            year: h.year,
            balances: h
                .balances
                .into_iter()
                .map(|(k, v)| (k, Amount(v)))
                .collect(),
            metadata: WireMetadata { version: 1 },
            vendor_account_id: h.vendor_account_id,
            relationships: WireRelationships {
                account: WireData {
                    data: WireRef {
                        id: h.account,
                        doctype: BankAccount::DOCTYPE.to_owned(),
                    },
                },
            },
        }
    }
}

impl TryFrom<BalanceHistoryWire> for BalanceHistory {
    type Error = String;

    fn try_from(w: BalanceHistoryWire) -> Result<Self, String> {
        let rel = w.relationships.account.data;
        if rel.doctype != BankAccount::DOCTYPE {
            return Err(format!(
                "relationships.account.data._type is `{}`, not {}",
                rel.doctype,
                BankAccount::DOCTYPE
            ));
        }
        Ok(Self {
            year: w.year,
            balances: w.balances.into_iter().map(|(k, v)| (k, v.0)).collect(),
            account: rel.id,
            vendor_account_id: w.vendor_account_id,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn op() -> BankOperation {
        BankOperation {
            label: "CB CARREFOUR".into(),
            original_bank_label: Some("CB CARREFOUR 12/03 PARIS".into()),
            operation_type: Some("card".into()),
            date: Utc.with_ymd_and_hms(2026, 3, 12, 0, 0, 0).unwrap(),
            realisation_date: None,
            amount: Decimal::new(-4250, 2),
            currency: Currency::EUR,
            account: Some("acc-doc".into()),
            vendor_id: None,
            vendor_account_id: "ACC1".into(),
            is_coming: true,
            bills: Vec::new(),
        }
    }

    #[test]
    fn operations_use_cozy_names_and_keys() {
        let v = serde_json::to_string(&op()).unwrap();
        for part in [
            r#""isComing":true"#,
            r#""amount":-42.50"#,
            r#""originalBankLabel":"CB CARREFOUR 12/03 PARIS""#,
            r#""vendorAccountId":"ACC1""#,
            r#""type":"card""#,
        ] {
            assert!(v.contains(part), "{part} in {v}");
        }
        assert!(!v.contains("bills"), "{v}");
        assert_eq!(op().dedup_key(), "ACC1|2026-03-12|-42.5|CB CARREFOUR");
        let mut with_id = op();
        with_id.vendor_id = Some("tx-1".into());
        assert_eq!(with_id.dedup_key(), "ACC1|tx-1");
        let back: BankOperation = serde_json::from_str(&v).unwrap();
        assert_eq!(back, op());
    }

    /// The store hashes canonical JSON (keys sorted): the struct's own
    /// order must give exactly that, whatever the options set.
    #[test]
    fn operations_serialize_directly_to_canonical_json() {
        let mut full = op();
        full.vendor_id = Some("tx".into());
        full.realisation_date = Some(full.date);
        full.bills = vec!["io.cozy.bills:1".into()];
        let mut bare = op();
        bare.original_bank_label = None;
        bare.operation_type = None;
        bare.account = None;
        for o in [op(), full, bare] {
            let direct = serde_json::to_string(&o).unwrap();
            let canonical = serde_json::to_value(&o).unwrap().to_string();
            assert_eq!(direct, canonical);
        }
    }

    #[test]
    fn balance_histories_serialize_as_cozy_stores_them() {
        let mut h = BalanceHistory::new(2026, "doc-1", "ACC1");
        h.set(
            NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            Decimal::new(125, 1),
        )
        .unwrap();
        assert!(
            h.set(NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(), Decimal::ONE)
                .is_err()
        );
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "year": 2026,
                "balances": {"2026-01-02": 12.5},
                "metadata": {"version": 1},
                "vendorAccountId": "ACC1",
                "relationships": {"account": {"data": {"_id": "doc-1", "_type": "io.cozy.bank.accounts"}}}
            })
        );
        let back: BalanceHistory = serde_json::from_value(v).unwrap();
        assert_eq!(back, h);
        assert_eq!(h.dedup_key(), "ACC1|2026");
        assert!(h.validate().is_ok());
        let mut bad = h.clone();
        bad.balances.insert("2025-01-01".into(), Decimal::ONE);
        assert!(bad.validate().is_err());
    }
}
