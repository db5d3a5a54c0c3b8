//! Pure mapping: Enedis readings to `io.cozy.timeseries.energy` documents.
//!
//! One document per usage point and calendar month: `startDate` is the
//! month's first day and `endDate` the next month's, whatever part of the
//! month has data yet, so a later run that brings more days of the month
//! updates the same document (same dedup key) instead of adding one.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use gleaner_framework::doctypes::{EnergyPoint, EnergySeries};
use gleaner_framework::{KonnectorError, Result};
use rust_decimal::Decimal;

use super::api::MeterReading;

/// The `source` of the documents.
pub const SOURCE: &str = "enedis.fr";

/// The first day of `d`'s month.
pub fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The first day of the month after `d`'s.
pub fn next_month(d: NaiveDate) -> NaiveDate {
    let first = month_start(d);
    first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first)
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The points of a reading, checked: daily energy in Wh, values that are
/// whole numbers, dates that parse.
pub fn points(reading: &MeterReading) -> Result<Vec<EnergyPoint>> {
    let rt = &reading.reading_type;
    if rt.unit != "Wh" || rt.measuring_period != "P1D" || rt.measurement_kind != "energy" {
        return Err(KonnectorError::page_changed(format!(
            "Enedis sent {} {} {}, not daily energy in Wh",
            rt.measurement_kind, rt.measuring_period, rt.unit
        )));
    }
    reading
        .interval_reading
        .iter()
        .map(|r| {
            let date = NaiveDate::parse_from_str(&r.date, "%Y-%m-%d").map_err(|e| {
                KonnectorError::page_changed(format!("Enedis date `{}`: {e}", r.date))
            })?;
            // Its month document ends on the next month's first day.
            if month_start(date)
                .checked_add_months(chrono::Months::new(1))
                .is_none()
            {
                return Err(KonnectorError::page_changed(format!(
                    "Enedis date `{}` is out of range",
                    r.date
                )));
            }
            // A string of digits, as the API documents it: no sign, no
            // fraction, no exponent.
            let digits = r.value.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(KonnectorError::page_changed(format!(
                    "Enedis value `{}` on {} is not a whole number of Wh",
                    r.value, r.date
                )));
            }
            let value: Decimal = digits.parse().map_err(|e| {
                KonnectorError::page_changed(format!(
                    "Enedis value `{}` on {}: {e}",
                    r.value, r.date
                ))
            })?;
            Ok(EnergyPoint {
                date: midnight(date),
                value,
            })
        })
        .collect()
}

/// The month document holding `points` (all in the month of `month`).
pub fn month_series(usage_point: &str, month: NaiveDate, points: Vec<EnergyPoint>) -> EnergySeries {
    EnergySeries {
        start_date: midnight(month_start(month)),
        end_date: midnight(next_month(month)),
        source: SOURCE.to_owned(),
        theme: "electricity".to_owned(),
        unit: "Wh".to_owned(),
        meter_id: usage_point.to_owned(),
        series: points,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::energy::enedis::api::DailyConsumption;
    use gleaner_framework::doctypes::Doctype;

    const SAMPLE: &str = include_str!("../../../../fixtures/enedis/daily_consumption.json");

    fn sample() -> MeterReading {
        serde_json::from_str::<DailyConsumption>(SAMPLE)
            .unwrap()
            .meter_reading
    }

    #[test]
    fn readings_become_dated_exact_points() {
        let r = sample();
        let pts = points(&r).unwrap();
        assert_eq!(pts.len(), r.interval_reading.len());
        assert_eq!(pts[0].date.to_rfc3339(), "2019-05-06T00:00:00+00:00");
        assert_eq!(pts[0].value, Decimal::from(540));
        assert_eq!(pts[4].value, Decimal::from(12345));
        assert_eq!(pts[3].value, Decimal::ZERO);
    }

    #[test]
    fn a_month_document_is_keyed_by_its_month() {
        let r = sample();
        let doc = month_series(
            &r.usage_point_id,
            NaiveDate::from_ymd_opt(2019, 5, 6).unwrap(),
            points(&r).unwrap(),
        );
        doc.validate().unwrap();
        assert_eq!(doc.start_date.to_rfc3339(), "2019-05-01T00:00:00+00:00");
        assert_eq!(doc.end_date.to_rfc3339(), "2019-06-01T00:00:00+00:00");
        let fewer = month_series(
            &r.usage_point_id,
            NaiveDate::from_ymd_opt(2019, 5, 1).unwrap(),
            vec![],
        );
        assert_eq!(doc.dedup_key(), fewer.dedup_key());
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["meterId"], "16401220101758");
        assert_eq!(json["series"][1]["value"], serde_json::json!(1200));
        assert_eq!(
            next_month(NaiveDate::from_ymd_opt(2019, 12, 31).unwrap()),
            NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
        );
    }

    #[test]
    fn another_unit_or_a_garbled_value_fails_loudly() {
        let mut r = sample();
        r.reading_type.unit = "kWh".into();
        assert_eq!(
            points(&r).unwrap_err().code,
            gleaner_framework::ErrorCode::PageChanged
        );
        let mut r = sample();
        r.interval_reading[2].value = "12,5".into();
        let e = points(&r).unwrap_err();
        assert!(e.message.contains("12,5"), "{}", e.message);
    }

    #[test]
    fn values_are_whole_non_negative_wh_and_dates_have_a_month_after() {
        // The API gives each value as a string of digits: a fraction or a
        // sign is not an Enedis answer.
        for value in ["12.5", "-3", "1e3"] {
            let mut r = sample();
            r.interval_reading[2].value = value.into();
            let e = points(&r).unwrap_err();
            assert!(e.message.contains(value), "{}", e.message);
        }
        // chrono reads signed years up to 262143; a point in that last
        // month would get a month document that ends where it starts.
        let mut r = sample();
        r.interval_reading[2].date = "+262143-12-31".into();
        let e = points(&r).unwrap_err();
        assert!(e.message.contains("+262143-12-31"), "{}", e.message);
    }
}
