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
    /// For a reimbursement paid with others in one transfer: the
    /// transfer's amount (Cozy's `groupAmount`; bank linking matches the
    /// group against one credit).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub group_amount: Option<Decimal>,
    /// For a health reimbursement: what the national health insurance
    /// (Ameli) paid of the expense.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub social_security_refund: Option<Decimal>,
    /// For a health reimbursement: what a complementary insurer (a
    /// mutual) paid of the expense.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::arbitrary_precision_option"
    )]
    pub third_party_refund: Option<Decimal>,
    /// For a health reimbursement: whether the care provider was paid
    /// directly (*tiers payant*), so the user paid nothing up front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_third_party_payer: Option<bool>,
    /// For a health reimbursement: who received the care (a name as the
    /// insurer writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beneficiary: Option<String>,
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
            group_amount: None,
            social_security_refund: None,
            third_party_refund: None,
            is_third_party_payer: None,
            beneficiary: None,
            filename: None,
            invoice: None,
        }
    }
}

impl Doctype for Bill {
    const DOCTYPE: &'static str = "io.cozy.bills";

    /// `date + amount + vendor`, plus `contractId` when present (Cozy's
    /// `saveBills` keys). The date counts by day, so a provider that moves
    /// the time of day does not create a duplicate. A health
    /// reimbursement also keys on its `beneficiary` and `originalDate`:
    /// one payment day often refunds several equal acts (two consultations
    /// at the same price, for two children), and those are distinct
    /// documents.
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
        if let Some(beneficiary) = &self.beneficiary {
            key.push_str("|b:");
            key.push_str(&beneficiary.trim().to_lowercase());
        }
        if let Some(original) = &self.original_date {
            key.push_str("|o:");
            key.push_str(&original.format("%Y-%m-%d").to_string());
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
    fn health_refunds_carry_cozy_fields_and_key_on_beneficiary_and_care_date() {
        let mut r = Bill::new(
            "Ameli",
            Utc.with_ymd_and_hms(2025, 11, 14, 0, 0, 0).unwrap(),
            Decimal::new(1650, 2),
            Currency::EUR,
        );
        r.bill_type = Some(BillType::HealthCosts);
        r.is_refund = Some(true);
        r.original_amount = Some(Decimal::new(2500, 2));
        r.social_security_refund = Some(Decimal::new(1650, 2));
        r.third_party_refund = Some(Decimal::new(750, 2));
        r.is_third_party_payer = Some(false);
        r.beneficiary = Some("LOUISE MARTIN".into());
        r.original_date = Some(Utc.with_ymd_and_hms(2025, 11, 3, 0, 0, 0).unwrap());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "health_costs");
        assert_eq!(v["isRefund"], true);
        assert_eq!(v["socialSecurityRefund"].to_string(), "16.50");
        assert_eq!(v["thirdPartyRefund"].to_string(), "7.50");
        assert_eq!(v["originalAmount"].to_string(), "25.00");
        assert_eq!(v["isThirdPartyPayer"], false);
        assert_eq!(v["beneficiary"], "LOUISE MARTIN");
        assert_eq!(v["originalDate"], "2025-11-03T00:00:00Z");
        assert!(v.get("groupAmount").is_none());
        let back: Bill = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let mut sibling = r.clone();
        sibling.beneficiary = Some("Paul Martin".into());
        assert_ne!(r.dedup_key(), sibling.dedup_key());
        let mut other_act = r.clone();
        other_act.original_date = Some(Utc.with_ymd_and_hms(2025, 11, 5, 0, 0, 0).unwrap());
        assert_ne!(r.dedup_key(), other_act.dedup_key());
        // A bill without those fields keeps the key it always had.
        assert_eq!(
            bill().dedup_key(),
            "2025-12-02|19.99|free mobile|0612345678"
        );
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
