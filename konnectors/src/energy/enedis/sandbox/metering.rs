//! `GET /metering_data_dc/v5/daily_consumption`: a day's energy per
//! reading, in Wh, for a consented usage point.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

use super::{Inner, USAGE_POINT_ID, error, lock};

pub(super) async fn daily_consumption(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = s.clock.now();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let grant_point = match token.and_then(|t| {
        lock(&s.access)
            .get(t)
            .map(|g| (g.expires_at, g.usage_point.clone()))
    }) {
        Some((expires_at, point)) if expires_at > now => point,
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is missing, invalid or expired",
            );
        }
    };
    let bad = |d: &str| error(StatusCode::BAD_REQUEST, "Invalid_request", d);
    let Some(point) = q.get("usage_point_id") else {
        return bad("usage_point_id parameter is required");
    };
    if point.len() != 14 || !point.chars().all(|c| c.is_ascii_digit()) {
        return bad("usage_point_id parameter must be 14 digits long");
    }
    let date = |k: &str, missing: &'static str, format: &'static str| {
        let v = q.get(k).ok_or(missing)?;
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format)
    };
    let start = match date(
        "start",
        "Start date parameter is required",
        "Start date parameter must be in the format YYYY-MM-DD",
    ) {
        Ok(d) => d,
        Err(m) => return bad(m),
    };
    let end = match date(
        "end",
        "End date parameter is required",
        "End date parameter must be in the format YYYY-MM-DD",
    ) {
        Ok(d) => d,
        Err(m) => return bad(m),
    };
    if end > now.date_naive() {
        return bad("The end date parameter must be earlier than the current date");
    }
    if start >= end {
        return bad("Start date should be before end date");
    }
    if grant_point.as_deref().is_some_and(|p| p != point) || point != USAGE_POINT_ID {
        return error(
            StatusCode::FORBIDDEN,
            "ADAM_DC_0008",
            "No consent can be found for this customer and this usage point.",
        );
    }
    let readings: Vec<Value> = start
        .iter_days()
        .take_while(|d| *d < end)
        .map(|d| {
            let wh = s.daily[(d.ordinal0() as usize).min(365)];
            json!({"value": wh.to_string(), "date": d.format("%Y-%m-%d").to_string()})
        })
        .collect();
    let body = json!({"meter_reading": {
        "usage_point_id": point,
        "start": start.format("%Y-%m-%d").to_string(),
        "end": end.format("%Y-%m-%d").to_string(),
        "quality": "BRUT",
        "reading_type": {"measurement_kind": "energy", "measuring_period": "P1D", "unit": "Wh", "aggregate": "sum"},
        "interval_reading": readings,
    }});
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
