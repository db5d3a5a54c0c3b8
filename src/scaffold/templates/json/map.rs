//! Pure mapping from {{name}} API bills to Cozy bills and files.

use chrono::NaiveTime;
use gleaner_framework::BillFile;
use gleaner_framework::Result;
use gleaner_framework::doctypes::{Bill, BillType, FileMetadata, Qualification};
use gleaner_framework::filters::parse_currency;

use super::api::ApiBill;

/// The vendor name on every bill.
pub const VENDOR: &str = "{{name}}";

/// The bill and its file (downloaded from `pdf_url`, absolute) for one API
/// bill; an unknown currency code is `INVALID_DATA`.
pub fn bill_for(api_bill: &ApiBill, pdf_url: String) -> Result<(Bill, BillFile)> {
    let currency = parse_currency(&api_bill.currency)?;
    let date = api_bill.date.and_time(NaiveTime::MIN).and_utc();
    let mut bill = Bill::new(VENDOR, date, api_bill.amount, currency);
    bill.bill_type = Some(BillType::{{bill_type}});
    bill.vendor_ref = Some(api_bill.id.clone());
    let name = format!(
        "{}_{{module}}_{}_{:.2}{}.pdf",
        api_bill.date.format("%Y%m%d"),
        api_bill.id,
        api_bill.amount,
        currency.code()
    );
    let file = BillFile {
        name,
        url: pdf_url,
        mime: "application/pdf",
        metadata: FileMetadata {
            qualification: Some(Qualification {
                label: "{{qualification}}".into(),
            }),
            datetime: Some(date),
            issue_date: Some(date),
            invoice_number: Some(api_bill.id.clone()),
            contract_reference: None,
            carbon_copy: Some(true),
            electronic_safe: None,
        },
    };
    Ok((bill, file))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use gleaner_framework::doctypes::Doctype;
    use rust_decimal::Decimal;

    fn api_bill(currency: &str) -> ApiBill {
        ApiBill {
            id: "F2026-01".into(),
            date: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
            amount: Decimal::new(1999, 2),
            currency: currency.into(),
            pdf_url: "/files/F2026-01.pdf".into(),
        }
    }

    #[test]
    fn an_api_bill_maps_to_a_valid_bill_and_its_pdf() {
        let url = "https://api.{{slug}}.example/files/F2026-01.pdf".to_owned();
        let (bill, file) = bill_for(&api_bill("EUR"), url).unwrap();
        assert!(bill.validate().is_ok());
        assert_eq!(file.name, "20260115_{{module}}_F2026-01_19.99EUR.pdf");
        assert!(bill_for(&api_bill("not a currency"), String::new()).is_err());
    }
}
