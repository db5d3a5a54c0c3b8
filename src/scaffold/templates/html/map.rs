//! Pure mapping from {{name}} invoices to Cozy bills and files.

use chrono::NaiveTime;
use gleaner_framework::BillFile;
use gleaner_framework::doctypes::{Bill, BillType, FileMetadata, Qualification};

use super::pages::Invoice;

/// The vendor name on every bill.
pub const VENDOR: &str = "{{name}}";

/// The bill and its file for one invoice.
pub fn bill_for(invoice: &Invoice) -> (Bill, BillFile) {
    let date = invoice.date.and_time(NaiveTime::MIN).and_utc();
    let mut bill = Bill::new(VENDOR, date, invoice.amount, invoice.currency);
    bill.bill_type = Some(BillType::{{bill_type}});
    bill.vendor_ref = Some(invoice.id.clone());
    let name = format!(
        "{}_{{module}}_{}_{:.2}{}.pdf",
        invoice.date.format("%Y%m%d"),
        invoice.id,
        invoice.amount,
        invoice.currency.code()
    );
    let file = BillFile {
        name,
        url: invoice.pdf_url.clone(),
        mime: "application/pdf",
        metadata: FileMetadata {
            qualification: Some(Qualification {
                label: "{{qualification}}".into(),
            }),
            datetime: Some(date),
            issue_date: Some(date),
            invoice_number: Some(invoice.id.clone()),
            contract_reference: None,
            carbon_copy: Some(true),
            electronic_safe: None,
        },
    };
    (bill, file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use gleaner_framework::doctypes::Doctype;
    use gleaner_framework::filters::Currency;
    use rust_decimal::Decimal;

    #[test]
    fn an_invoice_maps_to_a_valid_bill_and_its_pdf() {
        let invoice = Invoice {
            id: "F2026-01".into(),
            date: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
            amount: Decimal::new(1999, 2),
            currency: Currency::EUR,
            pdf_url: "https://www.{{slug}}.example/bills/F2026-01.pdf".into(),
        };
        let (bill, file) = bill_for(&invoice);
        assert!(bill.validate().is_ok());
        assert_eq!(bill.vendor_ref.as_deref(), Some("F2026-01"));
        assert_eq!(file.name, "20260115_{{module}}_F2026-01_19.99EUR.pdf");
    }
}
