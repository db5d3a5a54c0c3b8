//! Pure mapping from Alan's care events to Cozy bills (`health_costs`
//! refunds) and the monthly statements they link.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use gleaner_framework::doctypes::{Bill, BillType, FileMetadata, Qualification};
use gleaner_framework::filters::Currency;
use gleaner_framework::{BillFile, ErrorCode, KonnectorError, Result};
use rust_decimal::Decimal;

use super::api::CareEvent;

/// The vendor name on every bill.
pub const VENDOR: &str = "Alan";

/// The status of a care event Alan has paid.
pub const REFUNDED: &str = "refunded";

/// One refunded care event, mapped: the bill and its month's statement.
#[derive(Debug, Clone)]
pub struct Refund {
    /// The bill (`groupAmount` set by [`refunds`]).
    pub bill: Bill,
    /// The statement of the month Alan paid it.
    pub file: BillFile,
    /// The day of the care.
    pub care_date: NaiveDate,
}

/// A `YYYY-MM-DD` date of care event `id`'s field `field`.
pub fn parse_day(value: &str, id: u64, field: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!("care event {id}: `{field}` is {value:?}, not a YYYY-MM-DD date"),
        )
    })
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

fn euros(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// The bill of one care event of `beneficiary`, or `None` when Alan has
/// not paid it yet (a status other than `refunded`). `statement_url` gives
/// the absolute URL of a month's statement.
pub fn refund_for(
    beneficiary: &str,
    event: &CareEvent,
    statement_url: &dyn Fn(i32, u32) -> String,
) -> Result<Option<Refund>> {
    if event.status != REFUNDED {
        return Ok(None);
    }
    let id = event.id;
    let first = event.care_acts.first().ok_or_else(|| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!("refunded care event {id} has no care act"),
        )
    })?;
    let care_date = parse_day(&event.care_date, id, "care_date")?;
    let paid = event.estimated_payment_date.as_deref().ok_or_else(|| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!("refunded care event {id} has no estimated_payment_date"),
        )
    })?;
    let paid = parse_day(paid, id, "estimated_payment_date")?;

    let spent: i64 = event.care_acts.iter().map(|a| a.spent_amount).sum();
    let social_security: Option<i64> = event
        .care_acts
        .iter()
        .map(|a| a.ss_base)
        .try_fold(0i64, |sum, part| part.map(|p| sum + p));
    // Cozy: tiers payant when Alan paid the user nothing (`null`).
    let third_party_payer = event.care_acts.iter().all(|a| a.reimbursed_to_user.is_none());
    let alan: i64 = event
        .care_acts
        .iter()
        .map(|a| {
            a.reimbursed_to_user
                .or(a.reimbursed_to_professional)
                .unwrap_or(0)
        })
        .sum();

    let date = midnight(paid);
    let mut bill = Bill::new(VENDOR, date, euros(alan), Currency::EUR);
    bill.bill_type = Some(BillType::HealthCosts);
    bill.is_refund = Some(true);
    bill.vendor_ref = Some(id.to_string());
    bill.subtype = Some(first.display_label.clone());
    bill.original_date = Some(midnight(care_date));
    bill.original_amount = Some(euros(spent));
    bill.social_security_refund = social_security.map(euros);
    bill.third_party_refund = Some(euros(alan));
    bill.is_third_party_payer = Some(third_party_payer);
    bill.beneficiary = Some(beneficiary.to_owned());

    let name = format!("{:04}_{:02}_alan.pdf", paid.year(), paid.month());
    let month_start = NaiveDate::from_ymd_opt(paid.year(), paid.month(), 1).unwrap_or(paid);
    let file = BillFile {
        name,
        url: statement_url(paid.year(), paid.month()),
        mime: "application/pdf",
        metadata: FileMetadata {
            qualification: Some(Qualification {
                label: "health_invoice".into(),
            }),
            datetime: Some(midnight(month_start)),
            issue_date: Some(midnight(month_start)),
            invoice_number: None,
            contract_reference: None,
            carbon_copy: Some(true),
            electronic_safe: None,
        },
    };
    Ok(Some(Refund {
        bill,
        file,
        care_date,
    }))
}

/// Every refunded event of every beneficiary, mapped, with `groupAmount`
/// set where one transfer paid several of them: Cozy's rule, the sum of
/// the bills paid to the user on the same day when it differs from the
/// bill's own amount (tiers-payant bills are left out: they are not part
/// of a transfer to the user).
pub fn refunds(
    events: &[(String, Vec<CareEvent>)],
    statement_url: &dyn Fn(i32, u32) -> String,
) -> Result<Vec<Refund>> {
    let mut out = Vec::new();
    for (beneficiary, list) in events {
        for event in list {
            if let Some(refund) = refund_for(beneficiary, event, statement_url)? {
                out.push(refund);
            }
        }
    }
    let mut by_day: BTreeMap<NaiveDate, Decimal> = BTreeMap::new();
    for r in &out {
        if r.bill.is_third_party_payer != Some(true) {
            *by_day.entry(r.bill.date.date_naive()).or_default() += r.bill.amount;
        }
    }
    for r in &mut out {
        if r.bill.is_third_party_payer == Some(true) {
            continue;
        }
        if let Some(&sum) = by_day.get(&r.bill.date.date_naive())
            && sum != r.bill.amount
        {
            r.bill.group_amount = Some(sum);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::insurance::alan::api::User;
    use gleaner_framework::doctypes::Doctype;
    use serde::Deserialize;

    /// The shared fixture file, as the sandbox serves it.
    const FIXTURE: &str = include_str!("../../../../fixtures/alan/alan.json");

    #[derive(Deserialize)]
    struct Fixture {
        user: User,
        care_events: BTreeMap<String, Vec<CareEvent>>,
    }

    fn all_refunds() -> Vec<Refund> {
        let f: Fixture = serde_json::from_str(FIXTURE).unwrap();
        let events: Vec<(String, Vec<CareEvent>)> = f
            .user
            .beneficiaries
            .iter()
            .map(|b| {
                (
                    b.insurance_profile.user.normalized_full_name.clone(),
                    f.care_events[&b.insurance_profile_id.to_string()].clone(),
                )
            })
            .collect();
        let url = |y: i32, m: u32| format!("https://api.alan.com/api/users/1/decomptes?year={y}&month={m:02}");
        refunds(&events, &url).unwrap()
    }

    fn find(refunds: &[Refund], care: &str, who: &str) -> Bill {
        refunds
            .iter()
            .find(|r| {
                r.care_date.to_string() == care && r.bill.beneficiary.as_deref() == Some(who)
            })
            .unwrap()
            .bill
            .clone()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_fixture_maps_to_the_seven_refunds_of_the_shared_table() {
        let refunds = all_refunds();
        assert_eq!(refunds.len(), 7);
        // (care date, beneficiary, act, spent, Ameli, Alan, tiers payant, paid on)
        let table = [
            ("2025-07-02", "Camille MARTIN", "Consultation généraliste", "30.00", "19.00", "9.00", false, "2025-07-09"),
            ("2025-07-21", "Louise MARTIN", "Pharmacie", "42.60", "27.69", "14.91", true, "2025-07-25"),
            ("2025-09-08", "Louise MARTIN", "Consultation pédiatre", "32.00", "20.40", "11.60", false, "2025-09-16"),
            ("2025-09-08", "Camille MARTIN", "Consultation généraliste", "30.00", "19.00", "9.00", false, "2025-09-16"),
            ("2025-10-15", "Camille MARTIN", "Soins dentaires", "60.00", "42.00", "18.00", false, "2025-10-22"),
            ("2025-11-24", "Camille MARTIN", "Consultation ophtalmologiste", "50.00", "33.00", "15.00", false, "2025-12-02"),
            ("2025-12-03", "Louise MARTIN", "Radiologie", "48.00", "33.60", "14.40", false, "2025-12-10"),
        ];
        for (care, who, act, spent, ameli, alan, tp, paid) in table {
            let b = find(&refunds, care, who);
            assert_eq!(b.vendor, "Alan");
            assert_eq!(b.bill_type, Some(BillType::HealthCosts));
            assert_eq!(b.is_refund, Some(true));
            assert_eq!(b.subtype.as_deref(), Some(act), "{care} {who}");
            assert_eq!(b.amount, dec(alan), "{care} {who}");
            assert_eq!(b.third_party_refund, Some(dec(alan)));
            assert_eq!(b.original_amount, Some(dec(spent)));
            assert_eq!(b.social_security_refund, Some(dec(ameli)));
            assert_eq!(b.is_third_party_payer, Some(tp));
            assert_eq!(b.date.date_naive().to_string(), paid);
            assert_eq!(b.original_date.unwrap().date_naive().to_string(), care);
            assert!(b.validate().is_ok());
        }
    }

    #[test]
    fn one_transfer_for_two_acts_gives_both_the_group_amount() {
        let refunds = all_refunds();
        let louise = find(&refunds, "2025-09-08", "Louise MARTIN");
        let camille = find(&refunds, "2025-09-08", "Camille MARTIN");
        assert_eq!(louise.group_amount, Some(dec("20.60")));
        assert_eq!(camille.group_amount, Some(dec("20.60")));
        // Alone in their transfer, or paid to the pharmacy: no group.
        assert_eq!(find(&refunds, "2025-07-02", "Camille MARTIN").group_amount, None);
        assert_eq!(find(&refunds, "2025-07-21", "Louise MARTIN").group_amount, None);
        // Two equal acts on one day stay two documents.
        assert_ne!(louise.dedup_key(), camille.dedup_key());
    }

    #[test]
    fn each_bill_links_its_payment_month_statement() {
        let refunds = all_refunds();
        let mut names: Vec<_> = refunds.iter().map(|r| r.file.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names,
            ["2025_07_alan.pdf", "2025_09_alan.pdf", "2025_10_alan.pdf", "2025_12_alan.pdf"]
        );
        let r = refunds.iter().find(|r| r.file.name == "2025_12_alan.pdf").unwrap();
        assert!(r.file.url.ends_with("/decomptes?year=2025&month=12"));
        assert_eq!(
            r.file.metadata.qualification.as_ref().unwrap().label,
            "health_invoice"
        );
    }

    #[test]
    fn unpaid_events_are_skipped_and_bad_dates_are_schema_changes() {
        let mut event: CareEvent = serde_json::from_value(serde_json::json!({
            "id": 1, "status": "in_progress", "care_date": "2025-01-02",
            "estimated_payment_date": null,
            "care_acts": [{"display_label": "X", "spent_amount": 100}]
        }))
        .unwrap();
        let url = |_: i32, _: u32| String::new();
        assert!(refund_for("A", &event, &url).unwrap().is_none());
        event.status = REFUNDED.into();
        let err = refund_for("A", &event, &url).unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaChanged);
        event.estimated_payment_date = Some("02/01/2025".into());
        let err = refund_for("A", &event, &url).unwrap_err();
        assert_eq!(err.code, ErrorCode::SchemaChanged);
        assert!(err.message.contains("estimated_payment_date"), "{}", err.message);
    }
}
