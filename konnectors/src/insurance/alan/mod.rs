//! Alan (insurance): the health costs Alan refunded, as `health_costs`
//! bills, with the monthly statements ("décomptes") as PDFs.
//!
//! Read in this order: `manifest.toml` (identity, fields, hosts), [`auth`]
//! (JSON login to a bearer token), [`api`] (paths and answer types),
//! [`map`] (pure mapping to bills, `groupAmount`), `sandbox/` (the local
//! stand-in for the API, for tests and `gleaner demo`).
//!
//! A run logs in, reads the user and their beneficiaries, then pages
//! through each beneficiary's care events (newest first). The first run
//! goes back `history_months` (default [`DEFAULT_HISTORY_MONTHS`]); the
//! state keeps, per insurance profile, the newest care date seen, and later
//! runs stop paging once a page reaches [`LOOKBACK_DAYS`] before it (late
//! refunds of recent care are caught, older pages are not fetched again).
//! Each refunded event is one bill linked to the statement of the month it
//! was paid (several bills share one PDF, downloaded once).
//!
//! Sources (facts, not code):
//! - Cozy's Alan konnector, github.com/konnectors/alan, `src/index.js`:
//!   the plain-HTTP version before the clisk migration (commit e53da1f^:
//!   `POST https://api.alan.com/auth/login` with `email`, `password`,
//!   `refresh_token_type: "web"`, the user id from the JWT's `id`, 401 as
//!   `LOGIN_FAILED` and anything else `VENDOR_DOWN`;
//!   `/api/users/{id}?expand=...beneficiaries...`,
//!   `/api/insurance_profiles/{id}/care_events_public`, the care event
//!   and care act fields, `groupAmount` by payment date, the statements at
//!   `/api/users/{id}/decomptes?year=&month=` named `YYYY_MM_alan.pdf`,
//!   qualification `health_invoice`); and the current clisk version
//!   (`api.alan.com` host, the `token` cookie of `api.alan.com`, `MM`
//!   months, `beneficiaries.insurance_profile.user` expansion).
//! - What they do not show is assumed and listed in
//!   `fixtures/alan/README.md` (the `page` parameter, Alan's part of a
//!   tiers-payant act, the maintenance page).

pub mod api;
pub mod auth;
pub mod map;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Days, Months, NaiveDate};
use gleaner_framework::{Konnector, Manifest, Result, RunContext, Secret, async_trait};

use api::CareEvent;

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(Alan::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// Months of care events read on the first run, unless the account's
/// `history_months` says otherwise.
pub const DEFAULT_HISTORY_MONTHS: u32 = 24;

/// How far before the newest care date seen a later run reads again (a
/// care event can be refunded weeks after the care).
pub const LOOKBACK_DAYS: u64 = 60;

/// The most pages read for one beneficiary (a server that ignored `page`
/// would otherwise be read forever; the request budget stops it too).
pub const MAX_PAGES: u32 = 100;

/// The state key: insurance profile id → newest care date seen.
const STATE_NEWEST: &str = "newest_care_date";

/// The Alan konnector.
pub struct Alan {
    manifest: Manifest,
}

impl Alan {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("insurance/alan/manifest.toml", MANIFEST)?,
        })
    }
}

/// The oldest care date a run reads for a profile: `LOOKBACK_DAYS` before
/// the newest one seen, or `history_months` before `today` on the first run.
pub fn cutoff(newest_seen: Option<NaiveDate>, today: NaiveDate, history_months: u32) -> NaiveDate {
    match newest_seen {
        Some(newest) => newest - Days::new(LOOKBACK_DAYS),
        None => today
            .checked_sub_months(Months::new(history_months))
            .unwrap_or(NaiveDate::MIN),
    }
}

/// Reads a profile's care events, page after page (newest first), until a
/// page is empty, shorter than the first, repeats only known events, or
/// reaches events older than `cutoff`. Returns every event read.
async fn care_events(
    ctx: &RunContext,
    token: &Secret,
    profile: u64,
    cutoff: NaiveDate,
) -> Result<Vec<CareEvent>> {
    let mut all: Vec<CareEvent> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut first_len = None;
    for page in 1..=MAX_PAGES {
        let path = api::care_events(profile, page);
        let events: Vec<CareEvent> = api::get_json(ctx, token, &path, "care events list").await?;
        let len = events.len();
        let mut new = 0;
        let mut reached_cutoff = false;
        for event in events {
            let care = map::parse_day(&event.care_date, event.id, "care_date")?;
            reached_cutoff |= care < cutoff;
            if seen.insert(event.id) {
                new += 1;
                all.push(event);
            }
        }
        let first = *first_len.get_or_insert(len);
        if len == 0 || new == 0 || reached_cutoff || len < first {
            break;
        }
    }
    Ok(all)
}

#[async_trait]
impl Konnector for Alan {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let session = auth::login(ctx).await?;
        let user: api::User = api::get_json(
            ctx,
            &session.token,
            &api::user(session.user_id),
            "user answer",
        )
        .await?;

        let history_months = ctx
            .field("history_months")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(DEFAULT_HISTORY_MONTHS);
        let mut newest: BTreeMap<String, String> = ctx
            .state()
            .get(STATE_NEWEST)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let today = ctx.today();

        let mut fetched: Vec<(String, Vec<CareEvent>)> = Vec::new();
        let mut cutoffs: BTreeMap<String, NaiveDate> = BTreeMap::new();
        let total = user.beneficiaries.len() as u64;
        for (i, beneficiary) in user.beneficiaries.iter().enumerate() {
            let profile = beneficiary.insurance_profile_id;
            let name = beneficiary.insurance_profile.user.normalized_full_name.clone();
            ctx.progress(i as u64, Some(total), format!("care events of {name}"));
            let key = profile.to_string();
            let seen = newest
                .get(&key)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            let from = cutoff(seen, today, history_months);
            let events = care_events(ctx, &session.token, profile, from).await?;
            let latest = events
                .iter()
                .filter_map(|e| NaiveDate::parse_from_str(&e.care_date, "%Y-%m-%d").ok())
                .chain(seen)
                .max();
            if let Some(latest) = latest {
                newest.insert(key, latest.format("%Y-%m-%d").to_string());
            }
            cutoffs.insert(name.clone(), from);
            fetched.push((name, events));
        }

        let base = ctx.base_url().clone();
        let user_id = session.user_id;
        let statement_url = move |year: i32, month: u32| {
            base.join(&api::statement(user_id, year, month))
                .map(String::from)
                .unwrap_or_default()
        };
        let refunds = map::refunds(&fetched, &statement_url)?;
        let to_save: Vec<map::Refund> = refunds
            .into_iter()
            .filter(|r| {
                r.bill
                    .beneficiary
                    .as_ref()
                    .and_then(|b| cutoffs.get(b))
                    .is_none_or(|from| r.care_date >= *from)
            })
            .collect();
        let count = to_save.len() as u64;
        for (i, refund) in to_save.into_iter().enumerate() {
            ctx.progress(i as u64, Some(count), format!("refund {}", refund.file.name));
            ctx.save_bill(refund.bill, Some(refund.file)).await?;
        }
        ctx.progress(count, Some(count), "done");
        ctx.set_state(serde_json::json!({ STATE_NEWEST: newest }));
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_first_run_reads_the_history_and_later_ones_a_lookback() {
        let today = day("2026-11-30");
        assert_eq!(cutoff(None, today, 24), day("2024-11-30"));
        assert_eq!(cutoff(None, today, 6), day("2026-05-30"));
        assert_eq!(cutoff(Some(day("2025-11-24")), today, 24), day("2025-09-25"));
    }

    #[test]
    fn the_manifest_loads() {
        let k = Alan::new().unwrap();
        assert_eq!(k.manifest().slug, "alan");
    }
}
