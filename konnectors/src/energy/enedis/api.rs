//! The Data Connect metering API: paths, parameters, answers and errors,
//! from Enedis' published spec (`metering_data_dc/v5`).

use chrono::NaiveDate;
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext};
use serde::Deserialize;

use super::auth;

/// Daily consumption, `[start, end)`, in Wh.
pub const DAILY_CONSUMPTION: &str = "/metering_data_dc/v5/daily_consumption";

/// `{ "meter_reading": ... }`
#[derive(Debug, Clone, Deserialize)]
pub struct DailyConsumption {
    /// The readings.
    pub meter_reading: MeterReading,
}

/// A series of readings of one usage point.
#[derive(Debug, Clone, Deserialize)]
pub struct MeterReading {
    /// The usage point (PRM), 14 digits.
    pub usage_point_id: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Day after the last, `YYYY-MM-DD`.
    pub end: String,
    /// `BRUT` (raw) or corrected.
    #[serde(default)]
    pub quality: Option<String>,
    /// What is measured.
    pub reading_type: ReadingType,
    /// One value per day.
    #[serde(default)]
    pub interval_reading: Vec<IntervalReading>,
}

/// What a series measures.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadingType {
    /// `energy`.
    pub measurement_kind: String,
    /// `P1D`.
    pub measuring_period: String,
    /// `Wh`.
    pub unit: String,
    /// `sum`.
    pub aggregate: String,
}

/// One reading: a string value and its date.
#[derive(Debug, Clone, Deserialize)]
pub struct IntervalReading {
    /// The value, as a string of digits.
    pub value: String,
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
}

/// Enedis' error body.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Fetches the daily consumption of `usage_point` over `[start, end)`.
/// `Ok(None)`: Enedis has no data for the period (404 `no_data_found`).
pub async fn daily_consumption(
    ctx: &RunContext,
    usage_point: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Option<MeterReading>> {
    let mut url = url::Url::parse(&ctx.url(DAILY_CONSUMPTION)?)
        .map_err(|e| KonnectorError::new(ErrorCode::UnknownError, format!("bad API URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("usage_point_id", usage_point)
        .append_pair("start", &start.format("%Y-%m-%d").to_string())
        .append_pair("end", &end.format("%Y-%m-%d").to_string());
    let resp = auth::get(ctx, url.as_str()).await?;
    let status = resp.status.as_u16();
    if resp.status.is_success() {
        return resp
            .json::<DailyConsumption>()
            .map(|d| Some(d.meter_reading));
    }
    let err: ApiError = resp.json().unwrap_or(ApiError {
        error: String::new(),
        error_description: resp.text().chars().take(200).collect(),
    });
    let said = format!(
        "Enedis answered {status} {} ({})",
        err.error, err.error_description
    );
    Err(match status {
        404 => return Ok(None),
        403 => KonnectorError::new(
            ErrorCode::UserActionNeededOauthOutdated,
            format!("{said}: the consent for usage point {usage_point} is gone; consent again"),
        ),
        400 => KonnectorError::new(
            ErrorCode::UnknownError,
            format!("{said} for {start}..{end}"),
        ),
        _ => KonnectorError::vendor_down(said),
    })
}
