//! The Enedis JSON mapping (`konnectors::energy::enedis::{api, map}`).
//!
//! The input is the body of a `daily_consumption` answer. Properties: no
//! panic; the points of a reading are one per interval reading, at
//! midnight UTC, with whole non-negative values in Wh (as documented); the month document of each point starts on the first of
//! its month, ends on the first of the next, and holds the point.

use chrono::{Datelike, Timelike};
use gleaner_konnectors::energy::enedis::api::DailyConsumption;
use gleaner_konnectors::energy::enedis::map;

/// Checks one input of the `enedis_map` fuzz target: returns when the module's
/// properties hold (or the input is not one the target reads), panics
/// naming the broken one otherwise.
pub fn check_enedis_map(data: &[u8]) {
    let Ok(answer) = serde_json::from_slice::<DailyConsumption>(data) else {
        return;
    };
    let reading = answer.meter_reading;
    let Ok(points) = map::points(&reading) else {
        return;
    };
    assert_eq!(points.len(), reading.interval_reading.len());
    for p in &points {
        assert_eq!(p.date.num_seconds_from_midnight(), 0, "{p:?}");
        assert!(
            p.value.fract().is_zero() && !p.value.is_sign_negative(),
            "{p:?}"
        );
        let day = p.date.date_naive();
        let series = map::month_series(&reading.usage_point_id, day, vec![p.clone()]);
        assert_eq!(series.start_date.day(), 1, "{series:?}");
        assert!(series.start_date <= p.date, "{series:?}");
        assert!(p.date < series.end_date, "{series:?}");
        assert_eq!(series.end_date.day(), 1, "{series:?}");
    }
}
