//! Pure mapping from EDF's answers to Cozy documents: invoices and monthly
//! instalments to `io.cozy.bills` (with their PDFs), monthly consumption to
//! `io.cozy.timeseries.energy`.
//!
//! - An **invoice** (`getBillsDocuments`) is a bill dated by its issue day,
//!   for its amount; a negative amount is a credit: the bill is a refund
//!   (`isRefund`), for the amount's absolute value (Cozy's konnector).
//! - A paid **instalment** of the payment schedule (`bill/consult`, only
//!   `EFFECTUE` ones, as Cozy) is a monthly bill dated by its debit day,
//!   for its electricity plus gas parts; all of a schedule's instalments
//!   share the schedule's PDF.
//! - **Consumption** is one document per delivery point and calendar year,
//!   with one point per month (kWh, at the month's first day): a later run
//!   that brings more months of the year updates the same document.
//!
//! EDF's timestamps are the Paris midnight of the day: [`paris_date`] reads
//! them back with France's offset (UTC+1, UTC+2 in summer time).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use gleaner_framework::BillFile;
use gleaner_framework::doctypes::{
    Bill, BillType, EnergyPoint, EnergySeries, FileMetadata, Qualification,
};
use gleaner_framework::filters::Currency;
use gleaner_framework::{ErrorCode, KonnectorError, Result};
use rust_decimal::Decimal;

use super::api::{BillDoc, Deadline, MonthlyEnergy};

/// The vendor name on every bill, as Cozy's konnector writes it.
pub const VENDOR: &str = "EDF";

/// The `source` of the consumption documents.
pub const SOURCE: &str = "edf.fr";

/// The files' qualification (Cozy's `energy_invoice`).
pub const QUALIFICATION: &str = "energy_invoice";

/// The last Sunday of `month` in `year`.
fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }?;
    let last = next.pred_opt()?;
    let back = last.weekday().num_days_from_sunday();
    let sunday = last - Duration::days(i64::from(back));
    debug_assert_eq!(sunday.weekday(), Weekday::Sun);
    Some(sunday)
}

/// France's offset from UTC at `instant`, in hours: 2 from the last Sunday
/// of March 01:00 UTC to the last Sunday of October 01:00 UTC, else 1.
pub fn paris_offset_hours(instant: DateTime<Utc>) -> i64 {
    let year = instant.year();
    let at_one = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc() + Duration::hours(1);
    match (last_sunday(year, 3), last_sunday(year, 10)) {
        (Some(start), Some(end)) if instant >= at_one(start) && instant < at_one(end) => 2,
        _ => 1,
    }
}

/// The Paris day of a JavaScript timestamp (milliseconds).
pub fn paris_date(ms: i64) -> Option<NaiveDate> {
    let instant = Utc.timestamp_millis_opt(ms).single()?;
    Some((instant + Duration::hours(paris_offset_hours(instant))).date_naive())
}

/// The JavaScript timestamp of `day`'s Paris midnight (what EDF sends).
pub fn paris_midnight_ms(day: NaiveDate) -> i64 {
    let utc_midnight = day.and_time(NaiveTime::MIN).and_utc();
    // The offset at the instant itself: midnight is never in the switch hour.
    let guess = utc_midnight - Duration::hours(1);
    let offset = paris_offset_hours(guess);
    (utc_midnight - Duration::hours(offset)).timestamp_millis()
}

/// A JavaScript timestamp as a day, or `SCHEMA_CHANGED` naming `what`.
pub fn day(ms: i64, what: &str) -> Result<NaiveDate> {
    paris_date(ms).ok_or_else(|| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!("EDF sent {what} `{ms}`, not a date"),
        )
    })
}

/// Midnight UTC of `d` (the bills' date, as the other konnectors write it).
pub fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

/// The contract a bill belongs to: customer account number and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRef {
    /// The customer account number.
    pub number: String,
    /// A label for people: `Tarif Bleu 004012345678 (PARIS)`.
    pub label: String,
}

/// The bill and file of one invoice, its PDF at `pdf_url`.
pub fn invoice_bill(
    doc: &BillDoc,
    contract: &ContractRef,
    pdf_url: &str,
) -> Result<(Bill, BillFile)> {
    let issued = day(doc.creation_date, "the invoice date")?;
    let date = midnight(issued);
    let refund = doc.bill_amount.is_sign_negative() && !doc.bill_amount.is_zero();
    let amount = doc.bill_amount.abs();
    let mut bill = Bill::new(VENDOR, date, amount, Currency::EUR);
    bill.bill_type = Some(BillType::Energy);
    bill.vendor_ref = Some(doc.document_number.clone());
    bill.contract_id = Some(contract.number.clone());
    bill.contract_label = Some(contract.label.clone());
    bill.subtype = Some("invoice".into());
    if refund {
        bill.is_refund = Some(true);
    }
    let name = format!(
        "{}_EDF_{}{:.2}EUR.pdf",
        issued.format("%Y-%m-%d"),
        if refund { "avoir_" } else { "" },
        amount
    );
    let file = BillFile {
        name,
        url: pdf_url.to_owned(),
        mime: "application/pdf",
        metadata: metadata(date, &doc.document_number, &contract.number),
    };
    Ok((bill, file))
}

/// The bill of one paid instalment of a schedule whose PDF is `file`.
pub fn instalment_bill(
    deadline: &Deadline,
    contract: &ContractRef,
    schedule_ref: &str,
) -> Result<Bill> {
    let debited = day(deadline.encashment_date, "an instalment date")?;
    let mut bill = Bill::new(
        VENDOR,
        midnight(debited),
        deadline.electricity_amount + deadline.gaz_amount,
        Currency::EUR,
    );
    bill.bill_type = Some(BillType::Energy);
    bill.recurrence = Some("monthly".into());
    bill.subtype = Some("payment_schedule".into());
    bill.vendor_ref = Some(schedule_ref.to_owned());
    bill.contract_id = Some(contract.number.clone());
    bill.contract_label = Some(contract.label.clone());
    Ok(bill)
}

/// The file of a payment schedule (all its instalments link to it).
pub fn schedule_file(
    start: NaiveDate,
    document_number: &str,
    contract: &ContractRef,
    pdf_url: &str,
) -> BillFile {
    BillFile {
        name: format!(
            "{}_EDF_echeancier_{document_number}.pdf",
            start.format("%Y")
        ),
        url: pdf_url.to_owned(),
        mime: "application/pdf",
        metadata: metadata(midnight(start), document_number, &contract.number),
    }
}

fn metadata(date: DateTime<Utc>, number: &str, contract: &str) -> FileMetadata {
    FileMetadata {
        qualification: Some(Qualification {
            label: QUALIFICATION.into(),
        }),
        datetime: Some(date),
        issue_date: Some(date),
        invoice_number: Some(number.to_owned()),
        contract_reference: Some(contract.to_owned()),
        carbon_copy: Some(true),
        electronic_safe: None,
    }
}

/// The first day of a `YYYY-MM` month.
pub fn month_day(month: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{}-01", month.trim()), "%Y-%m-%d").map_err(|e| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!("EDF sent the month `{month}`: {e}"),
        )
    })
}

/// The consumption points of `months`, checked: known months, energies
/// that are not negative.
pub fn points(months: &[MonthlyEnergy]) -> Result<Vec<EnergyPoint>> {
    let mut points = months
        .iter()
        .map(|m| {
            if m.consumption.energy.is_sign_negative() && !m.consumption.energy.is_zero() {
                return Err(KonnectorError::new(
                    ErrorCode::SchemaChanged,
                    format!(
                        "EDF sent a negative consumption ({} kWh) for {}",
                        m.consumption.energy, m.month
                    ),
                ));
            }
            Ok(EnergyPoint {
                date: midnight(month_day(&m.month)?),
                value: m.consumption.energy.normalize(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    points.sort_by_key(|p| p.date);
    Ok(points)
}

/// The year document of delivery point `pdl` holding `points` (all in
/// `year`); `None` when the year is out of range.
pub fn year_series(pdl: &str, year: i32, points: Vec<EnergyPoint>) -> Option<EnergySeries> {
    let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let end = NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?;
    Some(EnergySeries {
        start_date: midnight(start),
        end_date: midnight(end),
        source: SOURCE.to_owned(),
        theme: "electricity".to_owned(),
        unit: "kWh".to_owned(),
        meter_id: pdl.to_owned(),
        series: points,
    })
}

/// The sum of a schedule's parts, for messages and tests.
pub fn total(deadlines: &[Deadline]) -> Decimal {
    deadlines
        .iter()
        .map(|d| d.electricity_amount + d.gaz_amount)
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::energy::edf::api::{BillConsult, BillsDocuments, MonthlyElec};
    use crate::energy::edf::fixture::Account;
    use gleaner_framework::doctypes::Doctype;

    fn account() -> Account {
        Account::load().unwrap()
    }

    fn contract() -> ContractRef {
        ContractRef {
            number: "004012345678".into(),
            label: "Tarif Bleu 004012345678 (PARIS)".into(),
        }
    }

    #[test]
    fn paris_midnights_read_back_as_their_day_in_winter_and_summer() {
        for (y, m, d) in [
            (2025, 1, 12),
            (2025, 3, 30),
            (2025, 3, 31),
            (2025, 7, 12),
            (2025, 10, 26),
            (2025, 10, 27),
            (2025, 12, 31),
        ] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(paris_date(paris_midnight_ms(day)), Some(day), "{day}");
        }
        // 2025-01-12 00:00 Paris is 2025-01-11 23:00 UTC.
        let ms = paris_midnight_ms(NaiveDate::from_ymd_opt(2025, 1, 12).unwrap());
        assert_eq!(ms, 1_736_636_400_000);
        let ms = paris_midnight_ms(NaiveDate::from_ymd_opt(2025, 7, 12).unwrap());
        assert_eq!(ms, 1_752_271_200_000);
    }

    #[test]
    fn invoices_map_to_energy_bills_and_credits_to_refunds() {
        let docs: BillsDocuments = serde_json::from_value(account().bills_documents()).unwrap();
        let bills = &docs[0].listOfBillsByAccDTO[0].listOfbills;
        let (bill, file) =
            invoice_bill(&bills[0], &contract(), "https://particulier.edf.fr/x").unwrap();
        bill.validate().unwrap();
        assert_eq!(bill.vendor, "EDF");
        assert_eq!(bill.date.format("%Y-%m-%d").to_string(), "2025-01-08");
        assert_eq!(bill.amount, Decimal::new(4115, 2));
        assert_eq!(bill.is_refund, None);
        assert_eq!(bill.bill_type, Some(BillType::Energy));
        assert_eq!(bill.vendor_ref.as_deref(), Some("10248500123"));
        assert_eq!(file.name, "2025-01-08_EDF_41.15EUR.pdf");
        let (refund, file) =
            invoice_bill(&bills[1], &contract(), "https://particulier.edf.fr/y").unwrap();
        assert_eq!(refund.is_refund, Some(true));
        assert_eq!(refund.amount, Decimal::new(1862, 2));
        assert_eq!(file.name, "2025-12-09_EDF_avoir_18.62EUR.pdf");
        assert_eq!(file.metadata.qualification.unwrap().label, "energy_invoice");
    }

    #[test]
    fn paid_instalments_are_monthly_bills_of_64_30_on_the_12th() {
        let consult: BillConsult = serde_json::from_value(account().bill_consult()).unwrap();
        let schedule = consult.payment_schedule.unwrap();
        assert_eq!(schedule.deadlines.len(), 12);
        assert_eq!(total(&schedule.deadlines), Decimal::new(77160, 2));
        for (i, d) in schedule.deadlines.iter().enumerate() {
            let bill = instalment_bill(d, &contract(), "E25000012345").unwrap();
            bill.validate().unwrap();
            assert_eq!(bill.amount, Decimal::new(6430, 2));
            assert_eq!(
                bill.date.format("%Y-%m-%d").to_string(),
                format!("2025-{:02}-12", i + 1)
            );
            assert_eq!(bill.recurrence.as_deref(), Some("monthly"));
        }
        let file = schedule_file(
            NaiveDate::from_ymd_opt(2025, 1, 12).unwrap(),
            "E25000012345",
            &contract(),
            "u",
        );
        assert_eq!(file.name, "2025_EDF_echeancier_E25000012345.pdf");
    }

    #[test]
    fn monthly_consumption_becomes_one_document_per_year() {
        let acc = account();
        let answer: MonthlyElec =
            serde_json::from_value(acc.monthly_elec("2025-01", "2025-12")).unwrap();
        let pts = points(&answer.monthly_elec_energies).unwrap();
        assert_eq!(pts.len(), 12);
        assert_eq!(pts[0].date.to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert_eq!(pts[0].value, Decimal::from(489));
        let doc = year_series("09876543210123", 2025, pts).unwrap();
        doc.validate().unwrap();
        assert_eq!(doc.start_date.to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert_eq!(doc.end_date.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        let fewer = year_series("09876543210123", 2025, vec![]).unwrap();
        assert_eq!(doc.dedup_key(), fewer.dedup_key());
        let half: MonthlyElec =
            serde_json::from_value(acc.monthly_elec("2024-01", "2024-12")).unwrap();
        assert_eq!(half.monthly_elec_energies.len(), 6);
    }

    #[test]
    fn a_garbled_month_or_a_negative_energy_is_a_schema_change() {
        let mut answer: MonthlyElec =
            serde_json::from_value(account().monthly_elec("2025-01", "2025-12")).unwrap();
        answer.monthly_elec_energies[0].month = "janvier 2025".into();
        assert_eq!(
            points(&answer.monthly_elec_energies).unwrap_err().code,
            ErrorCode::SchemaChanged
        );
        answer.monthly_elec_energies[0].month = "2025-01".into();
        answer.monthly_elec_energies[1].consumption.energy = Decimal::new(-5, 0);
        assert_eq!(
            points(&answer.monthly_elec_energies).unwrap_err().code,
            ErrorCode::SchemaChanged
        );
    }
}
