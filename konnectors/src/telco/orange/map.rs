//! Pure mapping from Orange bills to Cozy bills and files.

use chrono::{NaiveDate, TimeZone, Utc};
use gleaner_framework::BillFile;
use gleaner_framework::doctypes::{Bill, BillType, FileMetadata, Qualification};
use gleaner_framework::filters::Currency;

use super::api::{Contract, Invoice};

/// The vendor name on every bill.
pub const VENDOR: &str = "Orange";

/// Whether a line is a mobile one (French mobile numbers start with 06 or
/// 07; Cozy's orange konnector tells mobile from home lines the same way).
pub fn is_mobile(line: &str) -> bool {
    let digits: String = line.chars().filter(char::is_ascii_digit).collect();
    digits.starts_with("06")
        || digits.starts_with("07")
        || digits.starts_with("336")
        || digits.starts_with("337")
}

/// The bill and its file for one invoice of `contract`; `pdf_url` is where
/// its PDF is downloaded.
pub fn bill_for(invoice: &Invoice, contract: &Contract, pdf_url: String) -> (Bill, BillFile) {
    let line = contract.line().to_owned();
    let date = midnight_utc(invoice.date);
    let mobile = is_mobile(&line);
    let mut bill = Bill::new(VENDOR, date, invoice.amount, Currency::EUR);
    bill.bill_type = Some(if mobile {
        BillType::Phone
    } else {
        BillType::Internet
    });
    bill.recurrence = Some("monthly".into());
    bill.vendor_ref = Some(invoice.id.clone());
    bill.contract_id = Some(line.clone());
    bill.contract_label = Some(format!("{} {}", contract.offer_name, line));
    let name = format!(
        "{}_orange_{line}_{:.2}EUR_{}.pdf",
        invoice.date.format("%Y-%m-%d"),
        invoice.amount,
        invoice.id
    );
    let file = BillFile {
        name,
        url: pdf_url,
        mime: "application/pdf",
        metadata: FileMetadata {
            qualification: Some(Qualification {
                label: if mobile { "phone_invoice" } else { "isp_invoice" }.into(),
            }),
            datetime: Some(date),
            issue_date: Some(date),
            invoice_number: Some(invoice.id.clone()),
            contract_reference: Some(contract.cid.clone()),
            carbon_copy: Some(true),
            electronic_safe: None,
        },
    };
    (bill, file)
}

fn midnight_utc(d: NaiveDate) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::telco::orange::api::{Contracts, RecentBill};
    use gleaner_framework::doctypes::Doctype;
    use rust_decimal::Decimal;
    use serde_json::Value;

    const FIXTURE: &str = include_str!("../../../../fixtures/orange/bills.json");

    /// The fixture's contracts as the API gives them, and their bills.
    fn fixture() -> Vec<(Contract, Vec<Invoice>)> {
        let doc: Value = serde_json::from_str(FIXTURE).unwrap();
        let mut out = Vec::new();
        for c in doc["contracts"].as_array().unwrap() {
            let api = serde_json::json!({"contracts": [{
                "cid": c["cid"], "offerName": c["offerName"], "status": c["status"],
                "telco": {"publicNumber": c["publicNumber"]},
            }]});
            let contract = serde_json::from_value::<Contracts>(api).unwrap().contracts.remove(0);
            let bills = c["bills"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let recent = serde_json::json!({
                        "id": b["id"], "date": b["date"], "amount": b["amount"],
                        "hrefPdf": format!("?billId={}", b["id"].as_str().unwrap()),
                    });
                    serde_json::from_value::<RecentBill>(recent)
                        .unwrap()
                        .invoice()
                        .unwrap()
                })
                .collect();
            out.push((contract, bills));
        }
        out
    }

    #[test]
    fn every_fixture_bill_maps_to_a_valid_bill() {
        let all = fixture();
        assert_eq!(all.len(), 2);
        let mut count = 0;
        for (contract, invoices) in &all {
            for inv in invoices {
                let (bill, file) = bill_for(inv, contract, format!("https://x{}", inv.pdf_path));
                bill.validate().unwrap();
                assert_eq!(bill.vendor, "Orange");
                assert_eq!(bill.contract_id.as_deref(), Some(contract.line()));
                assert!(file.name.ends_with(".pdf"));
                count += 1;
            }
        }
        assert_eq!(count, 24);
    }

    #[test]
    fn a_mobile_line_is_a_phone_bill_a_livebox_an_internet_one() {
        let all = fixture();
        let (mobile, bills) = &all[0];
        let (bill, file) = bill_for(&bills[0], mobile, "u".into());
        assert_eq!(bill.bill_type, Some(BillType::Phone));
        assert_eq!(bill.amount, Decimal::new(2999, 2));
        assert_eq!(bill.date.date_naive().to_string(), "2025-01-05");
        assert_eq!(bill.vendor_ref.as_deref(), Some("FM202501"));
        assert_eq!(bill.contract_id.as_deref(), Some("0612345678"));
        assert_eq!(file.name, "2025-01-05_orange_0612345678_29.99EUR_FM202501.pdf");
        assert_eq!(
            file.metadata.qualification.map(|q| q.label).as_deref(),
            Some("phone_invoice")
        );
        let (livebox, bills) = &all[1];
        let (bill, _) = bill_for(&bills[5], livebox, "u".into());
        assert_eq!(bill.bill_type, Some(BillType::Internet));
        assert_eq!(bill.amount, Decimal::new(4799, 2));
        assert!(!is_mobile("0145678912"));
        assert!(is_mobile("+33 7 98 76 54 32"));
    }
}
