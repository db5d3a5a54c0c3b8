//! Typed personal-cloud documents that serialize to Cozy's field names.
//!
//! Each doctype is a struct implementing [`Doctype`]: its Cozy doctype name,
//! the **deduplication key** the store indexes (so saving twice creates
//! nothing), and a validation that rejects documents a Cozy app could not
//! use. Amounts are exact decimals ([`rust_decimal::Decimal`]) written as
//! JSON numbers, never `f64`.
//!
//! Read `bills` first; the others follow the same pattern.

pub mod accounts;
pub mod bank;
pub mod bills;
pub mod files;
pub mod timeseries;

pub use accounts::AccountDoc;
pub use bank::{BalanceHistory, BankAccount, BankOperation};
pub use bills::{Bill, BillType};
pub use files::{FileDoc, FileMetadata, Qualification};
pub use timeseries::{EnergyPoint, EnergySeries};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::KonnectorError;

/// A document type the store can save.
pub trait Doctype: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The Cozy doctype name, such as `io.cozy.bills`.
    const DOCTYPE: &'static str;

    /// The key two documents are the same document by, within one account.
    /// Built only from the declared fields (for bills: date, amount, vendor
    /// and contract), so a re-run finds the document through an index.
    fn dedup_key(&self) -> String;

    /// Rejects a document a Cozy app could not use, naming the field.
    fn validate(&self) -> Result<(), KonnectorError>;
}

/// Formats a decimal for keys: normalized, so `19.90` and `19.9` agree.
pub(crate) fn key_amount(d: &rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

pub(crate) fn require(field: &str, doctype: &str, value: &str) -> Result<(), KonnectorError> {
    if value.trim().is_empty() {
        Err(KonnectorError::invalid_data(format!(
            "{doctype} document has no {field}"
        )))
    } else {
        Ok(())
    }
}
