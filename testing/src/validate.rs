//! Checks a stored document against its doctype's own validation
//! ([`Doctype::validate`]), as the conformance suite does for every
//! document a run committed.

use gleaner_framework::doctypes::{
    BalanceHistory, BankAccount, BankOperation, Bill, Doctype, EnergySeries, FileDoc,
};
use serde_json::Value;

/// The fields the store adds to a document; removed before decoding.
const STORE_FIELDS: &[&str] = &["_id", "_rev", "cozyMetadata"];

fn check<D: Doctype>(data: &Value) -> Result<(), String> {
    let mut data = data.clone();
    if let Value::Object(map) = &mut data {
        for f in STORE_FIELDS {
            map.remove(*f);
        }
    }
    let doc: D = serde_json::from_value(data)
        .map_err(|e| format!("does not decode as {}: {e}", D::DOCTYPE))?;
    doc.validate().map_err(|e| e.message)
}

/// Decodes `data` (a stored document, `_id`, `_rev` and `cozyMetadata`
/// included) as the framework type of `doctype` and runs its validation.
/// An unknown doctype is an error: the suite cannot vouch for it.
pub fn validate_stored(doctype: &str, data: &Value) -> Result<(), String> {
    match doctype {
        Bill::DOCTYPE => check::<Bill>(data),
        FileDoc::DOCTYPE => check::<FileDoc>(data),
        BankAccount::DOCTYPE => check::<BankAccount>(data),
        BankOperation::DOCTYPE => check::<BankOperation>(data),
        BalanceHistory::DOCTYPE => check::<BalanceHistory>(data),
        EnergySeries::DOCTYPE => check::<EnergySeries>(data),
        other => Err(format!(
            "no framework doctype is called `{other}`, so it cannot be validated"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_doctypes_and_bad_documents_are_refused() {
        assert!(validate_stored("io.cozy.nope", &Value::Null).is_err());
        let err = validate_stored(Bill::DOCTYPE, &serde_json::json!({"_id": "x"})).unwrap_err();
        assert!(err.contains("io.cozy.bills"), "{err}");
    }
}
