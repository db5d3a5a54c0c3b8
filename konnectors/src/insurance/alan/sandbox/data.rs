//! The fixture data the sandbox serves: `fixtures/alan/alan.json` and the
//! statement PDFs, embedded at compile time.

use std::sync::OnceLock;

use serde_json::Value;

/// The shared fixture file (the household, its care events, the statements
/// and the bank credits the lead's bank sandbox generates).
pub const FIXTURE_JSON: &str = include_str!("../../../../../fixtures/alan/alan.json");

/// The statements, by (year, month).
const PDFS: &[(i32, u32, &[u8])] = &[
    (
        2025,
        7,
        include_bytes!("../../../../../fixtures/alan/pdf/2025_07_alan.pdf"),
    ),
    (
        2025,
        9,
        include_bytes!("../../../../../fixtures/alan/pdf/2025_09_alan.pdf"),
    ),
    (
        2025,
        10,
        include_bytes!("../../../../../fixtures/alan/pdf/2025_10_alan.pdf"),
    ),
    (
        2025,
        12,
        include_bytes!("../../../../../fixtures/alan/pdf/2025_12_alan.pdf"),
    ),
];

/// The parsed fixture (`Value::Null` if it does not parse, which the
/// sandbox's tests catch).
pub fn fixture() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(FIXTURE_JSON).unwrap_or(Value::Null))
}

/// The user id of the demo account.
pub fn user_id() -> u64 {
    fixture()["user"]["id"].as_u64().unwrap_or(0)
}

/// The care events of an insurance profile, newest first (`None`: unknown
/// profile).
pub fn care_events(profile: &str) -> Option<&'static Vec<Value>> {
    fixture()["care_events"].get(profile)?.as_array()
}

/// The statement of `year`/`month`, if there is one.
pub fn statement(year: i32, month: u32) -> Option<&'static [u8]> {
    PDFS.iter()
        .find(|(y, m, _)| *y == year && *m == month)
        .map(|(_, _, bytes)| *bytes)
}
