//! Dates as pages show them (`framework::filters`).
//!
//! Properties: no panic; a date that parses is a real calendar day that
//! reads back the same from `yyyy-mm-dd`, `dd/mm/yyyy` and the French long
//! form (`2 janvier 2025`) when its year has four digits; a month and year
//! that parse is the first day of a month and reads back the same.

use chrono::{Datelike, NaiveDate};
use gleaner_framework::filters::{parse_date, parse_month_year_fr};

const MOIS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

fn reads_back(origin: &str, d: NaiveDate) {
    assert!(
        NaiveDate::from_ymd_opt(d.year(), d.month(), d.day()) == Some(d),
        "{origin:?} gave an invalid date {d:?}"
    );
    if !(0..=9999).contains(&d.year()) {
        return;
    }
    let mois = MOIS[d.month0() as usize];
    for text in [
        d.format("%Y-%m-%d").to_string(),
        d.format("%d/%m/%Y").to_string(),
        format!("{} {mois} {:04}", d.day(), d.year()),
    ] {
        let again = parse_date(&text).unwrap_or_else(|e| panic!("{origin:?} -> {text:?}: {e}"));
        assert_eq!(again, d, "{origin:?} -> {text:?}");
    }
}

/// Checks one input of the `date` fuzz target: returns when the module's
/// properties hold (or the input is not one the target reads), panics
/// naming the broken one otherwise.
pub fn check_date(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_date(s) {
        reads_back(s, d);
    }
    if let Ok(m) = parse_month_year_fr(s) {
        assert_eq!(m.day(), 1, "{s:?}");
        reads_back(s, m);
        let text = format!("{} {:04}", MOIS[m.month0() as usize], m.year());
        let again = parse_month_year_fr(&text).unwrap_or_else(|e| panic!("{s:?} -> {text:?}: {e}"));
        assert_eq!(again, m, "{s:?} -> {text:?}");
    }
}
