//! `io.cozy.bank.accounts` and `io.cozy.bank.operations`.

use chrono::{DateTime, Utc};
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
    /// The current balance.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub balance: Decimal,
    /// Cozy's account type (`checkings`, `savings`, `credit card`, `loan` ...).
    #[serde(rename = "type")]
    pub account_type: String,
    /// The account number as the bank shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The IBAN, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    /// The bank's id for the account: the deduplication key.
    pub vendor_id: String,
    /// The currency.
    pub currency: Currency,
}

impl Doctype for BankAccount {
    const DOCTYPE: &'static str = "io.cozy.bank.accounts";

    fn dedup_key(&self) -> String {
        self.vendor_id.clone()
    }

    fn validate(&self) -> Result<(), KonnectorError> {
        require("vendorId", Self::DOCTYPE, &self.vendor_id)?;
        require("label", Self::DOCTYPE, &self.label)
    }
}

/// An `io.cozy.bank.operations` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankOperation {
    /// The label as the bank shows it.
    pub label: String,
    /// The operation type (`transfer`, `card`, `withdrawal` ...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub operation_type: Option<String>,
    /// The booking date.
    pub date: DateTime<Utc>,
    /// The date the operation happened (card payments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realisation_date: Option<DateTime<Utc>>,
    /// The signed amount: negative for debits.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    /// The currency.
    pub currency: Currency,
    /// The `io.cozy.bank.accounts` id the operation belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The bank's id for the operation, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
    /// The bank's id for the account.
    pub vendor_account_id: String,
}

impl Doctype for BankOperation {
    const DOCTYPE: &'static str = "io.cozy.bank.operations";

    /// The bank's id when it gives one; else date, amount and label.
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
        require("vendorAccountId", Self::DOCTYPE, &self.vendor_account_id)
    }
}
