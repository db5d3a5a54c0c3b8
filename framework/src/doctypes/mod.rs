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

/// Writes `DateTime<Utc>` exactly as chrono's `Serialize` does
/// (`2026-03-15T00:00:00Z`), without going through `fmt` for the common
/// case of whole seconds: staging 100,000 bank operations spent a tenth of
/// its time formatting their dates.
pub(crate) mod utc_json {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    use serde::{Serialize, Serializer};

    /// Serializes a date-time.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let year = t.year();
        if t.nanosecond() != 0 || !(0..=9999).contains(&year) {
            return t.serialize(s);
        }
        let mut b = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (0..width).rev() {
                b[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year.unsigned_abs());
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        // Only ASCII digits and separators were written.
        match std::str::from_utf8(&b) {
            Ok(text) => s.serialize_str(text),
            Err(_) => t.serialize(s),
        }
    }

    /// Serializes an optional date-time (use with `skip_serializing_if`).
    pub fn serialize_opt<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use chrono::TimeZone;

        use super::*;

        #[test]
        fn the_fast_path_writes_what_chrono_writes() {
            let times = [
                Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
                Utc.with_ymd_and_hms(5, 1, 2, 3, 4, 5).unwrap(),
                Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap()
                    + chrono::TimeDelta::milliseconds(120),
                Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap(),
            ];
            for t in times {
                let mut fast = Vec::new();
                serialize(&t, &mut serde_json::Serializer::new(&mut fast)).unwrap();
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    serde_json::to_string(&t).unwrap()
                );
            }
        }
    }
}

/// The `&'static str` for a doctype named at run time (by an external
/// konnector): the known doctypes are returned as they are, any other name
/// is leaked once and reused, so the set stays as small as the doctypes
/// ever used by the process.
pub fn intern(doctype: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    const KNOWN: &[&str] = &[
        Bill::DOCTYPE,
        FileDoc::DOCTYPE,
        BankAccount::DOCTYPE,
        BankOperation::DOCTYPE,
        BalanceHistory::DOCTYPE,
        EnergySeries::DOCTYPE,
    ];
    if let Some(known) = KNOWN.iter().find(|k| **k == doctype) {
        return known;
    }
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = match names.lock() {
        Ok(n) => n,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(name) = names.get(doctype) {
        return name;
    }
    let name: &'static str = Box::leak(doctype.to_owned().into_boxed_str());
    names.insert(name);
    name
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
