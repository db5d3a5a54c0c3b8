//! `io.cozy.timeseries.energy`: a consumption series.
//!
//! Cozy has no standard energy series, so Gleaner defines this one on the
//! shape of Cozy's `io.cozy.timeseries.*` doctypes: `startDate`, `endDate`,
//! `source`, `theme` and `series[]`, one point per interval.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Doctype, require};
use crate::error::KonnectorError;

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyPoint {
    /// The start of the interval.
    pub date: DateTime<Utc>,
    /// The value.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub value: Decimal,
}

/// An `io.cozy.timeseries.energy` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnergySeries {
    /// The first interval's start.
    pub start_date: DateTime<Utc>,
    /// The last interval's end.
    pub end_date: DateTime<Utc>,
    /// Where it comes from, such as `enedis.fr`.
    pub source: String,
    /// `electricity` or `gas`.
    pub theme: String,
    /// The unit of every value, such as `Wh` or `kWh`.
    pub unit: String,
    /// The meter or delivery point.
    pub meter_id: String,
    /// The points.
    pub series: Vec<EnergyPoint>,
}

impl Doctype for EnergySeries {
    const DOCTYPE: &'static str = "io.cozy.timeseries.energy";

    fn dedup_key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.source,
            self.meter_id,
            self.start_date.to_rfc3339(),
            self.end_date.to_rfc3339()
        )
    }

    fn validate(&self) -> Result<(), KonnectorError> {
        require("source", Self::DOCTYPE, &self.source)?;
        require("meterId", Self::DOCTYPE, &self.meter_id)?;
        if self.end_date < self.start_date {
            return Err(KonnectorError::invalid_data(
                "io.cozy.timeseries.energy document ends before it starts",
            ));
        }
        Ok(())
    }
}
