//! `io.cozy.bills`: an invoice, a reimbursement or any amount owed or paid.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Doctype, key_amount, require};
use crate::error::KonnectorError;
use crate::filters::Currency;

/// The kind of bill, as Cozy's `type` field spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillType {
    /// Phone subscriptions.
    Phone,
    /// Internet access.
    Internet,
    /// Electricity, gas.
    Energy,
    /// Insurance premiums.
    Insurance,
    /// Health costs and their reimbursements.
    HealthCosts,
    /// Anything else.
    Other,
}

/// An `io.cozy.bills` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bill {
    /// Who issued it, such as `Free Mobile`. Required.
    pub vendor: String,
    /// When it was issued.
    pub date: DateTime<Utc>,
    /// The amount, always positive (see `is_refund`).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    /// The currency.
    pub currency: Currency,
    /// The kind of bill.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub bill_type: Option<BillType>,
    /// Whether the amount is paid to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_refund: Option<bool>,
    /// The provider's own reference for the bill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_ref: Option<String>,
    /// The contract (line, meter, policy) the bill belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    /// A label for the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_label: Option<String>,
    /// A finer kind, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// `monthly` for subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<String>,
    /// For a reimbursement: the date of the original expense.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_date: Option<DateTime<Utc>>,
    /// For a reimbursement: the amount of the original expense.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub original_amount: Option<Decimal>,
    /// The name of the bill's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The bill's file, as `io.cozy.files:<id>` (set when the file is saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<String>,
}

impl Bill {
    /// A bill with the required fields; the rest are `None`.
    pub fn new(
        vendor: impl Into<String>,
        date: DateTime<Utc>,
        amount: Decimal,
        currency: Currency,
    ) -> Self {
        Self {
            vendor: vendor.into(),
            date,
            amount,
            currency,
            bill_type: None,
            is_refund: None,
            vendor_ref: None,
            contract_id: None,
            contract_label: None,
            subtype: None,
            recurrence: None,
            original_date: None,
            original_amount: None,
            filename: None,
            invoice: None,
        }
    }
}

impl Doctype for Bill {
    const DOCTYPE: &'static str = "io.cozy.bills";

    /// `date + amount + vendor`, plus `contractId` when present (Cozy's
    /// `saveBills` keys). The date counts by day, so a provider that moves
    /// the time of day does not create a duplicate.
    fn dedup_key(&self) -> String {
        let mut key = format!(
            "{}|{}|{}",
            self.date.format("%Y-%m-%d"),
            key_amount(&self.amount),
            self.vendor.trim().to_lowercase()
        );
        if let Some(contract) = &self.contract_id {
            key.push('|');
            key.push_str(contract);
        }
        key
    }

    fn validate(&self) -> Result<(), KonnectorError> {
        require("vendor", Self::DOCTYPE, &self.vendor)?;
        if self.amount.is_sign_negative() && !self.amount.is_zero() {
            return Err(KonnectorError::invalid_data(format!(
                "io.cozy.bills document from {} has a negative amount ({}); amounts are positive and refunds set isRefund",
                self.vendor, self.amount
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn bill() -> Bill {
        let mut b = Bill::new(
            "Free Mobile",
            Utc.with_ymd_and_hms(2025, 12, 2, 0, 0, 0).unwrap(),
            Decimal::new(1999, 2),
            Currency::EUR,
        );
        b.bill_type = Some(BillType::Phone);
        b.contract_id = Some("0612345678".into());
        b
    }

    #[test]
    fn serializes_to_cozy_field_names_with_exact_amounts() {
        let v = serde_json::to_string(&bill()).unwrap();
        assert!(v.contains(r#""vendor":"Free Mobile""#), "{v}");
        assert!(v.contains(r#""amount":19.99"#), "{v}");
        assert!(v.contains(r#""currency":"EUR""#), "{v}");
        assert!(v.contains(r#""type":"phone""#), "{v}");
        assert!(v.contains(r#""contractId":"0612345678""#), "{v}");
        assert!(v.contains(r#""date":"2025-12-02T00:00:00Z""#), "{v}");
        let back: Bill = serde_json::from_str(&v).unwrap();
        assert_eq!(back, bill());
    }

    #[test]
    fn dedup_key_ignores_trailing_zeros_and_time_of_day() {
        let a = bill();
        let mut b = bill();
        b.amount = Decimal::new(19990, 3);
        b.date = Utc.with_ymd_and_hms(2025, 12, 2, 13, 0, 0).unwrap();
        assert_eq!(a.dedup_key(), b.dedup_key());
        b.contract_id = Some("0798765432".into());
        assert_ne!(a.dedup_key(), b.dedup_key());
    }

    #[test]
    fn validation_rejects_missing_vendor_negative_amount_and_bad_currency() {
        let mut b = bill();
        b.vendor = " ".into();
        assert!(b.validate().unwrap_err().message.contains("vendor"));
        let mut b = bill();
        b.amount = Decimal::new(-5, 0);
        assert!(b.validate().unwrap_err().message.contains("negative"));
        let json = serde_json::to_string(&bill())
            .unwrap()
            .replace("\"EUR\"", "\"EURO\"");
        let err = serde_json::from_str::<Bill>(&json).unwrap_err().to_string();
        assert!(err.contains("EURO"), "{err}");
        assert!(bill().validate().is_ok());
    }
}
