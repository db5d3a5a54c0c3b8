//! Pure mapping from Free Mobile invoices to Cozy bills and files.

use chrono::{NaiveDate, TimeZone, Utc};
use gleaner_framework::BillFile;
use gleaner_framework::doctypes::{Bill, BillType, FileMetadata, Qualification};

use super::pages::{Invoice, InvoiceKind};

/// The vendor name on every bill, as Cozy's konnector writes it.
pub const VENDOR: &str = "Free Mobile";

/// The contract id of multi-line summaries (Cozy's value).
pub const SUMMARY_CONTRACT: &str = "Multiligne";

/// The bill and its file for one invoice of the line `phone`.
pub fn bill_for(invoice: &Invoice, phone: &str, holder: &str) -> (Bill, BillFile) {
    let issued = match invoice.kind {
        // The summary's link date is the day the page was made: use the month.
        InvoiceKind::Summary => invoice.month,
        InvoiceKind::Line => invoice.link_date.unwrap_or(invoice.month),
    };
    let date = midnight_utc(issued);
    let (contract_id, contract_label, file_tag) = match invoice.kind {
        InvoiceKind::Line => {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            (digits.clone(), format!("{phone} ({holder})"), digits)
        }
        InvoiceKind::Summary => (
            SUMMARY_CONTRACT.to_owned(),
            format!("{SUMMARY_CONTRACT} ({holder})"),
            "multiligne".to_owned(),
        ),
    };
    let name = format!(
        "{}_freemobile_{file_tag}_{:.2}{}.pdf",
        invoice.month.format("%Y%m"),
        invoice.amount,
        invoice.currency.code()
    );
    let mut bill = Bill::new(VENDOR, date, invoice.amount, invoice.currency);
    bill.bill_type = Some(BillType::Phone);
    bill.recurrence = Some("monthly".into());
    bill.vendor_ref = Some(invoice.id.clone());
    bill.contract_id = Some(contract_id);
    bill.contract_label = Some(contract_label);
    let file = BillFile {
        name,
        url: invoice.pdf_url.clone(),
        mime: "application/pdf",
        metadata: FileMetadata {
            qualification: Some(Qualification {
                label: "phone_invoice".into(),
            }),
            datetime: Some(date),
            issue_date: Some(date),
            invoice_number: Some(invoice.id.clone()),
            contract_reference: Some(invoice.line_id.clone()),
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
    use gleaner_framework::doctypes::Doctype;
    use gleaner_framework::filters::Currency;
    use rust_decimal::Decimal;

    fn invoice(kind: InvoiceKind) -> Invoice {
        Invoice {
            month: NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
            amount: Decimal::new(1999, 2),
            currency: Currency::EUR,
            kind,
            id: "bf084f2f231923b7".into(),
            line_id: "12345678".into(),
            link_date: NaiveDate::from_ymd_opt(2026, 1, 15),
            pdf_url: "https://mobile.free.fr/account/conso-et-factures?facture=pdf&id=x".into(),
        }
    }

    #[test]
    fn a_line_invoice_maps_to_a_phone_bill_dated_by_its_link() {
        let (bill, file) = bill_for(
            &invoice(InvoiceKind::Line),
            "06 12 34 56 78",
            "Camille Martin",
        );
        assert_eq!(bill.vendor, "Free Mobile");
        assert_eq!(bill.contract_id.as_deref(), Some("0612345678"));
        assert_eq!(
            bill.contract_label.as_deref(),
            Some("06 12 34 56 78 (Camille Martin)")
        );
        assert_eq!(bill.date.format("%Y-%m-%d").to_string(), "2026-01-15");
        assert_eq!(bill.bill_type, Some(BillType::Phone));
        assert_eq!(file.name, "202512_freemobile_0612345678_19.99EUR.pdf");
        assert_eq!(file.metadata.qualification.unwrap().label, "phone_invoice");
        assert!(bill.validate().is_ok());
    }

    #[test]
    fn a_summary_is_dated_by_its_month_and_has_the_multiline_contract() {
        let (bill, file) = bill_for(
            &invoice(InvoiceKind::Summary),
            "06 12 34 56 78",
            "Camille Martin",
        );
        assert_eq!(bill.contract_id.as_deref(), Some("Multiligne"));
        assert_eq!(bill.date.format("%Y-%m-%d").to_string(), "2025-12-01");
        assert_eq!(file.name, "202512_freemobile_multiligne_19.99EUR.pdf");
    }
}
