//! Enedis Data Connect (energy): a Linky meter's daily consumption, through
//! Enedis' official API, after the customer's OAuth2 consent.
//!
//! Read in this order: `manifest.toml` (its `[oauth]` section: consent page,
//! token endpoint, the `duration` parameter, the `usage_point_id` the
//! redirect brings), [`auth`] (bearer calls, one refresh on a 401), [`api`]
//! (the metering endpoint, its answers and errors), [`map`] (pure mapping to
//! `io.cozy.timeseries.energy`, one document per month), `sandbox/` (the
//! local stand-in for consent, tokens and API).
//!
//! Facts (paths, parameters, field names, error bodies) come from Enedis'
//! published OpenAPI files (`shared/specs/enedis-*.json`).

pub mod api;
pub mod auth;
pub mod map;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use gleaner_framework::{Konnector, Manifest, Result, RunContext, async_trait};

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(Enedis::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// Days fetched on the first run.
pub const FIRST_RUN_DAYS: u64 = 365;

/// Days fetched again on later runs (late or corrected readings).
pub const LOOKBACK_DAYS: u64 = 7;

/// The Enedis konnector.
pub struct Enedis {
    manifest: Manifest,
}

impl Enedis {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("energy/enedis/manifest.toml", MANIFEST)?,
        })
    }
}

#[async_trait]
impl Konnector for Enedis {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let points: Vec<String> = ctx
            .field("usage_point_id")?
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        let today = ctx.today();
        let mut last: BTreeMap<String, String> = ctx
            .state()
            .get("last_date")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        for point in &points {
            let from = last
                .get(point)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .map(|d| d - chrono::Days::new(LOOKBACK_DAYS))
                .unwrap_or(today - chrono::Days::new(FIRST_RUN_DAYS));
            let mut months = Vec::new();
            let mut m = map::month_start(from);
            while m < today {
                months.push(m);
                m = map::next_month(m);
            }
            for (i, month) in months.iter().enumerate() {
                ctx.progress(
                    i as u64,
                    Some(months.len() as u64),
                    format!("{point} {month}"),
                );
                let end = map::next_month(*month).min(today);
                let Some(reading) = api::daily_consumption(ctx, point, *month, end).await? else {
                    continue;
                };
                let pts = map::points(&reading)?;
                if let Some(p) = pts.last() {
                    last.insert(point.clone(), p.date.format("%Y-%m-%d").to_string());
                }
                if !pts.is_empty() {
                    ctx.save(&map::month_series(point, *month, pts))?;
                }
            }
            ctx.progress(months.len() as u64, Some(months.len() as u64), "done");
        }
        ctx.set_state(serde_json::json!({ "last_date": last }));
        Ok(())
    }
}
