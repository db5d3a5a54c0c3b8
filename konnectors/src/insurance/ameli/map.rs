//! Pure mapping from ameli payments to Cozy bills and files.
//!
//! One bill per act (Cozy's `getHealthCareBills`): `vendor` "Ameli",
//! `type: health_costs`, `isRefund: true`, `amount` = what ameli refunded
//! for the act (its `montantVerse` minus the *participation forfaitaire*
//! withheld for it, also `socialSecurityRefund`), `originalAmount` = what
//! was paid, `originalDate` = the care date, `date` = the payment date,
//! `isThirdPartyPayer` for a payment to a professional (*tiers payant*),
//! `beneficiary`, `vendorRef` = the payment id, and `groupAmount` = the
//! transfer when one payment refunds several acts. Every bill of a payment
//! links the payment's statement (décompte) PDF.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use gleaner_framework::BillFile;
use gleaner_framework::doctypes::{Bill, BillType, FileMetadata, Qualification};
use gleaner_framework::filters::Currency;

use super::pages::{PaymentDetail, PaymentRow};

/// The vendor name on every bill, as Cozy's konnector writes it.
pub const VENDOR: &str = "Ameli";

/// The nature of a payment made to a professional (*tiers payant*).
pub const THIRD_PARTY_PAYMENT: &str = "PAIEMENT_A_UN_TIERS";

/// The bills of one payment, each with the payment's statement when the
/// page links one.
pub fn bills_for(row: &PaymentRow, detail: &PaymentDetail) -> Vec<(Bill, Option<BillFile>)> {
    let date = midnight_utc(row.date);
    let grouped = detail.acts.len() > 1;
    let third_party = row.nature == THIRD_PARTY_PAYMENT;
    let file = detail
        .pdf_url
        .as_ref()
        .or(row.pdf_url.as_ref())
        .map(|url| statement_file(row, url));
    detail
        .acts
        .iter()
        .map(|act| {
            let refund = act.refund();
            let mut bill = Bill::new(VENDOR, date, refund, Currency::EUR);
            bill.bill_type = Some(BillType::HealthCosts);
            bill.is_refund = Some(true);
            bill.vendor_ref = Some(row.id.clone());
            bill.subtype = Some(act.label.clone());
            bill.original_date = Some(midnight_utc(act.care_date));
            bill.original_amount = Some(act.paid);
            bill.social_security_refund = Some(refund);
            bill.is_third_party_payer = Some(third_party);
            bill.beneficiary = Some(act.beneficiary.clone());
            if grouped {
                bill.group_amount = Some(row.amount);
            }
            (bill, file.clone())
        })
        .collect()
}

/// The statement's file: `YYYYMMDD_ameli_<nature>_<amount>EUR.pdf`, Cozy's
/// `getFileName`.
pub fn statement_file(row: &PaymentRow, url: &str) -> BillFile {
    let nature = match row.nature.as_str() {
        THIRD_PARTY_PAYMENT => "tiers_payant",
        "REMBOURSEMENT_SOINS" => "remboursement_soins",
        "INDEMNITE_JOURNALIERE_ASSURE" => "indemnites_journalieres",
        _ => "paiement",
    };
    let date = midnight_utc(row.date);
    BillFile {
        name: format!(
            "{}_ameli_{nature}_{:.2}EUR.pdf",
            row.date.format("%Y%m%d"),
            row.amount
        ),
        url: url.to_owned(),
        mime: "application/pdf",
        metadata: FileMetadata {
            qualification: Some(Qualification {
                label: "health_invoice".into(),
            }),
            datetime: Some(date),
            issue_date: Some(date),
            invoice_number: Some(row.id.clone()),
            contract_reference: None,
            carbon_copy: Some(true),
            electronic_safe: None,
        },
    }
}

/// A date at midnight UTC.
pub fn midnight_utc(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::insurance::ameli::pages::Act;
    use gleaner_framework::doctypes::Doctype;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    /// The payments of `fixtures/ameli/payments.json`, as the pages show
    /// them (the list row and the detail's acts).
    fn fixture() -> Vec<(PaymentRow, PaymentDetail)> {
        let path = format!("{}/../fixtures/ameli/payments.json", env!("CARGO_MANIFEST_DIR"));
        let data: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let dec = |v: &serde_json::Value| Decimal::from_str(v.as_str().unwrap()).unwrap();
        let date = |v: &serde_json::Value| NaiveDate::from_str(v.as_str().unwrap()).unwrap();
        data["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let id = p["id"].as_str().unwrap().to_owned();
                let url = format!("https://assure.ameli.fr/PortailAS/decompte?id={id}");
                let row = PaymentRow {
                    id,
                    nature: p["nature"].as_str().unwrap().to_owned(),
                    group_index: "0".into(),
                    payment_index: "0".into(),
                    date: date(&p["date"]),
                    label: p["label"].as_str().unwrap().to_owned(),
                    amount: dec(&p["amount"]),
                    pdf_url: Some(url.clone()),
                };
                let acts = p["acts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| Act {
                        beneficiary: a["beneficiary"].as_str().unwrap().to_owned(),
                        care_date: date(&a["care_date"]),
                        label: a["act"].as_str().unwrap().to_owned(),
                        paid: dec(&a["paid"]),
                        base: dec(&a["base"]),
                        rate: a["rate"].as_u64().map(|r| r as u32),
                        gross: dec(&a["gross"]),
                        participation: dec(&a["participation"]),
                    })
                    .collect();
                let detail = PaymentDetail {
                    pdf_url: Some(url),
                    acts,
                    unmatched_participations: Vec::new(),
                };
                (row, detail)
            })
            .collect()
    }

    fn all_bills() -> Vec<(Bill, Option<BillFile>)> {
        fixture()
            .iter()
            .flat_map(|(row, detail)| bills_for(row, detail))
            .collect()
    }

    fn money(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn every_act_of_the_shared_table_is_one_bill() {
        let bills = all_bills();
        assert_eq!(bills.len(), 7);
        // (care date, beneficiary, paid, ameli's refund, paid on, tiers payant)
        let table = [
            ("2025-07-02", "Camille MARTIN", "30.00", "19.00", "2025-07-07", false),
            ("2025-07-21", "Louise MARTIN", "42.60", "27.69", "2025-07-24", true),
            ("2025-09-08", "Louise MARTIN", "32.00", "20.40", "2025-09-12", false),
            ("2025-09-08", "Camille MARTIN", "30.00", "19.00", "2025-09-12", false),
            ("2025-10-15", "Camille MARTIN", "60.00", "42.00", "2025-10-20", false),
            ("2025-11-24", "Camille MARTIN", "50.00", "33.00", "2025-11-28", false),
            ("2025-12-03", "Louise MARTIN", "48.00", "33.60", "2025-12-08", false),
        ];
        for (care, who, paid, refund, on, tiers) in table {
            let (bill, file) = bills
                .iter()
                .find(|(b, _)| {
                    b.beneficiary.as_deref() == Some(who)
                        && b.original_date.unwrap().format("%Y-%m-%d").to_string() == care
                })
                .unwrap_or_else(|| panic!("no bill for {who} on {care}"));
            assert_eq!(bill.vendor, "Ameli");
            assert_eq!(bill.bill_type, Some(BillType::HealthCosts));
            assert_eq!(bill.is_refund, Some(true));
            assert_eq!(bill.amount, money(refund), "{who} {care}");
            assert_eq!(bill.social_security_refund, Some(money(refund)));
            assert_eq!(bill.third_party_refund, None);
            assert_eq!(bill.original_amount, Some(money(paid)));
            assert_eq!(bill.date.format("%Y-%m-%d").to_string(), on);
            assert_eq!(bill.is_third_party_payer, Some(tiers));
            assert!(file.is_some());
            assert!(bill.validate().is_ok());
        }
    }

    #[test]
    fn one_transfer_for_two_acts_carries_the_group_amount() {
        let bills = all_bills();
        let september: Vec<_> = bills
            .iter()
            .filter(|(b, _)| b.date.format("%Y-%m-%d").to_string() == "2025-09-12")
            .collect();
        assert_eq!(september.len(), 2);
        for (bill, file) in &september {
            assert_eq!(bill.group_amount, Some(money("39.40")));
            assert_eq!(
                file.as_ref().unwrap().name,
                "20250912_ameli_remboursement_soins_39.40EUR.pdf"
            );
        }
        // Distinct documents: the key holds the beneficiary.
        assert_ne!(september[0].0.dedup_key(), september[1].0.dedup_key());
        // A single act has no group amount.
        assert!(
            bills
                .iter()
                .filter(|(b, _)| b.date.format("%Y-%m-%d").to_string() != "2025-09-12")
                .all(|(b, _)| b.group_amount.is_none())
        );
    }

    #[test]
    fn a_third_party_payment_names_its_file_so() {
        let bills = all_bills();
        let (bill, file) = bills
            .iter()
            .find(|(b, _)| b.is_third_party_payer == Some(true))
            .unwrap();
        assert_eq!(bill.subtype.as_deref(), Some("Pharmacie"));
        let file = file.as_ref().unwrap();
        assert_eq!(file.name, "20250724_ameli_tiers_payant_27.69EUR.pdf");
        assert_eq!(file.metadata.qualification.as_ref().unwrap().label, "health_invoice");
        assert_eq!(file.mime, "application/pdf");
    }
}
