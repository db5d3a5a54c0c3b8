//! GoCardless Bank Account Data (bank): the accounts, balances and
//! transactions (booked and pending) of one bank, through GoCardless' PSD2
//! aggregation API (formerly Nordigen), which many self-hosted finance
//! tools use.
//!
//! Read in this order: `manifest.toml` (fields: the portal's secret id and
//! key, the bank's institution id, history and lookback days), [`auth`]
//! (token pair, refresh, the sealed session), [`link`] (agreement,
//! requisition, the link the person opens, polling until linked), [`api`]
//! (paths, answers, error bodies, rate-limit headers), [`quota`] (the
//! bank's daily limit per account), [`mapping`] (pure mapping to
//! `io.cozy.bank.*`), `sandbox/` (the local stand-in for GoCardless and a
//! bank).
//!
//! Facts (paths, fields, enums, error bodies) come from GoCardless'
//! published OpenAPI file (`shared/specs/gocardless-bad-v2.json`) and its
//! public documentation (token lifetimes, rate-limit headers, the 4 calls
//! a day per account and endpoint some banks allow).

pub mod api;
pub mod auth;
pub mod link;
pub mod mapping;
pub mod quota;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use gleaner_framework::bank::{OperationBatch, SyncWindow};
use gleaner_framework::filters::Currency;
use gleaner_framework::http::{Method, Response};
use gleaner_framework::{ErrorCode, Konnector, KonnectorError, Manifest, Result, RunContext, async_trait};
use rust_decimal::Decimal;

use api::{AccountBalances, AccountDetails, AccountMeta, AccountTransactions, ApiError, Scope};
use auth::{CachedBalance, Session};
use link::Linked;
use quota::{QuotaExhausted, Skipped};

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(GoCardless::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// Account details are fetched again after this long (they rarely change,
/// and each fetch counts against the bank's daily limit).
pub const DETAILS_MAX_AGE: Duration = Duration::days(7);

/// The GoCardless Bank Account Data konnector.
pub struct GoCardless {
    manifest: Manifest,
}

impl GoCardless {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("bank/gocardless/manifest.toml", MANIFEST)?,
        })
    }
}

#[async_trait]
impl Konnector for GoCardless {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let mut session = Session::restore(ctx).await?;
        let result = fetch(ctx, &mut session).await;
        // Kept whatever the outcome (see `auth`): tokens, link, call counts.
        session.persist(ctx);
        result
    }
}

/// What the run did, for the final word.
#[derive(Default)]
struct Tally {
    /// Successful calls to the rate-limited endpoints.
    fetched: u32,
    /// Calls not made because the bank's daily limit was reached.
    skipped: Vec<Skipped>,
}

async fn fetch(ctx: &mut RunContext, s: &mut Session) -> Result<()> {
    auth::access_token(ctx, s).await?;
    s.persist(ctx);
    let linked = link::linked(ctx, s).await?;
    s.tidy(ctx.now(), &linked.requisition.accounts);
    s.persist(ctx);
    let mut tally = Tally::default();
    let total = linked.requisition.accounts.len() as u64;
    if total == 0 {
        ctx.warn(format!(
            "the bank link to {} gives access to no account; reconnect the bank and select the accounts there",
            linked.link.institution_name
        ));
    }
    for (i, id) in linked.requisition.accounts.iter().enumerate() {
        ctx.progress(i as u64, Some(total), format!("account {}", i + 1));
        account(ctx, s, &linked, id, &mut tally).await?;
        s.persist(ctx);
    }
    ctx.progress(total, Some(total), "done");
    let exhausted = QuotaExhausted::new(tally.skipped);
    match exhausted {
        // Nothing could be read at all: the run says when to come back.
        Some(e) if tally.fetched == 0 => Err(e.into_error(ctx.now())),
        Some(e) => {
            for warning in e.warnings() {
                ctx.warn(warning);
            }
            Ok(())
        }
        None => Ok(()),
    }
}

/// A rate-limited call for one account, unless the bank's daily limit is
/// known to be reached: `None` then (recorded in the tally).
async fn limited(
    ctx: &RunContext,
    s: &mut Session,
    id: &str,
    label: &str,
    scope: Scope,
    query: &[(&str, String)],
    tally: &mut Tally,
) -> Result<Option<Response>> {
    let now = ctx.now();
    if let Some(q) = s.quota(id, scope)
        && q.exhausted_at(now)
    {
        tracing::info!(%scope, until = %q.reset_at, "the bank's daily limit is reached; not asking");
        tally.skipped.push(Skipped {
            account: label.to_owned(),
            scope,
            until: q.reset_at,
        });
        return Ok(None);
    }
    let resp = auth::send(ctx, s, Method::GET, &api::account_path(id, Some(scope)), query, None)
        .await?;
    if resp.status.is_success() {
        tally.fetched += 1;
        if let Some(q) = api::quota_of(&resp, now) {
            s.set_quota(id, scope, q);
        }
        return Ok(Some(resp));
    }
    Err(account_error(&resp, label, scope.as_str(), s))
}

/// What a refused account call means.
fn account_error(resp: &Response, label: &str, what: &str, s: &mut Session) -> KonnectorError {
    let err = ApiError::parse(&resp.body);
    let status = resp.status.as_u16();
    let institution = s
        .saved
        .link
        .as_ref()
        .map(|l| l.institution_name.clone())
        .unwrap_or_else(|| "the bank".to_owned());
    let said = format!(
        "GoCardless answered {status} for the {what} of {label} ({})",
        err.text()
    );
    match status {
        401 if err.is_invalid_token() => {
            KonnectorError::login_failed(format!("{said}: a fresh access token was refused"))
        }
        // EUA expired, access expired or revoked, account gone, no valid
        // agreement, suspended: only a new link helps.
        401 | 404 | 409 if status != 409 || err.summary.contains("suspended") => {
            s.drop_link();
            link::reconnect(&institution, &said)
        }
        403 if err.summary.contains("IP address") => KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("{said}; allow this machine's address in the Bank Account Data portal"),
        ),
        403 if err.summary.contains("scope") => KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("{said}; the bank link does not cover it: reconnect the bank"),
        ),
        403 => {
            s.drop_link();
            link::reconnect(&institution, &said)
        }
        _ => KonnectorError::vendor_down(said),
    }
}

/// One account: metadata, details, balances, transactions, then the
/// documents.
async fn account(
    ctx: &mut RunContext,
    s: &mut Session,
    linked: &Linked,
    id: &str,
    tally: &mut Tally,
) -> Result<()> {
    let resp = auth::send(ctx, s, Method::GET, &api::account_path(id, None), &[], None).await?;
    if !resp.status.is_success() {
        return Err(account_error(&resp, "an account", "metadata", s));
    }
    let meta: AccountMeta = resp.json()?;
    match meta.status.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("EXPIRED" | "SUSPENDED") => {
            s.drop_link();
            return Err(link::reconnect(
                &linked.link.institution_name,
                &format!(
                    "GoCardless says an account of the bank link is {}",
                    meta.status.as_deref().unwrap_or_default()
                ),
            ));
        }
        Some("PROCESSING" | "DISCOVERED") => {
            ctx.warn(format!(
                "GoCardless is still importing an account of {} ({}); the next run reads it",
                linked.link.institution_name,
                meta.status.as_deref().unwrap_or_default()
            ));
            return Ok(());
        }
        _ => {}
    }
    let now = ctx.now();
    let today = ctx.today();

    // Details: cached for a week.
    let cache = s.saved.cache.get(id).cloned().unwrap_or_default();
    let fresh = cache
        .details_at
        .is_some_and(|at| now - at < DETAILS_MAX_AGE);
    let label = cache
        .details
        .as_ref()
        .map(|d| mapping::account_label(&meta, d))
        .unwrap_or_else(|| mapping::account_label(&meta, &Default::default()));
    let details = match (&cache.details, fresh) {
        (Some(d), true) => d.clone(),
        _ => match limited(ctx, s, id, &label, Scope::Details, &[], tally).await? {
            Some(resp) => {
                let d = resp.json::<AccountDetails>()?.account;
                let entry = s.saved.cache.entry(id.to_owned()).or_default();
                entry.details = Some(d.clone());
                entry.details_at = Some(now);
                s.dirty = true;
                d
            }
            None => cache.details.clone().unwrap_or_default(),
        },
    };
    let label = mapping::account_label(&meta, &details);
    let vendor_account_id = mapping::vendor_account_id(&meta, &details);

    // Balances: the current one, and the days for the history.
    let balances_src = api::account_path("{id}", Some(Scope::Balances));
    let (balance, points) = match limited(ctx, s, id, &label, Scope::Balances, &[], tally).await? {
        Some(resp) => {
            let b = resp.json::<AccountBalances>()?.balances;
            let current = mapping::current_balance(&b, &balances_src)?;
            let points = mapping::balance_points(&b, today, &balances_src)?;
            if let Some((amount, cur, day)) = &current {
                s.saved.cache.entry(id.to_owned()).or_default().balance = Some(CachedBalance {
                    amount: amount.to_string(),
                    currency: cur.to_string(),
                    date: *day,
                });
                s.dirty = true;
            }
            (current, points)
        }
        None => (cached_balance(s, id), Vec::new()),
    };
    let Some(balance) = balance else {
        ctx.warn(format!(
            "no balance is known yet for {label}; the account is read once the bank's daily limit allows"
        ));
        return Ok(());
    };
    let doc = mapping::account(&meta, &details, &linked.link.institution_name, balance);
    let account_doc = ctx.save_bank_account(&doc).await?;
    if !points.is_empty() {
        ctx.save_balances(&account_doc, &vendor_account_id, &points)
            .await?;
    }

    // Transactions, for the window the framework gives, within what the
    // agreement allows.
    let window = clamp(ctx.sync_window(&vendor_account_id)?, today, linked.link.max_historical_days);
    let query = [
        ("date_from", window.from.format("%Y-%m-%d").to_string()),
        ("date_to", window.to.format("%Y-%m-%d").to_string()),
    ];
    let Some(resp) = limited(ctx, s, id, &label, Scope::Transactions, &query, tally).await? else {
        return Ok(());
    };
    let txs: AccountTransactions = resp.json()?;
    let source = api::account_path("{id}", Some(Scope::Transactions));
    let operations = mapping::operations(
        &txs.transactions,
        &vendor_account_id,
        Some(&account_doc),
        today,
        &source,
    )?;
    let summary = ctx
        .save_bank_operations(OperationBatch {
            vendor_account_id,
            window,
            operations,
        })
        .await?;
    tracing::info!(
        saved = summary.created_or_updated,
        booked_from_pending = summary.booked_from_pending,
        pending_vanished = summary.pending_vanished,
        "operations"
    );
    Ok(())
}

/// The window, no earlier than the agreement's history allows.
pub fn clamp(window: SyncWindow, today: NaiveDate, max_historical_days: u32) -> SyncWindow {
    let oldest = today - Duration::days(i64::from(max_historical_days.max(1)) - 1);
    SyncWindow {
        from: window.from.max(oldest).min(window.to),
        ..window
    }
}

fn cached_balance(s: &Session, id: &str) -> Option<(Decimal, Currency, Option<NaiveDate>)> {
    let b = s.saved.cache.get(id)?.balance.as_ref()?;
    Some((
        b.amount.parse().ok()?,
        b.currency.parse().ok()?,
        b.date,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_window_stays_inside_the_agreement() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let w = SyncWindow {
            from: NaiveDate::from_ymd_opt(2025, 11, 30).unwrap(),
            to: today,
            first_run: true,
        };
        let c = clamp(w, today, 90);
        assert_eq!(c.from, NaiveDate::from_ymd_opt(2026, 9, 2).unwrap());
        assert_eq!((c.to, c.first_run), (today, true));
        assert_eq!(clamp(w, today, 730).from, w.from);
    }

    #[test]
    fn the_manifest_loads() {
        let k = GoCardless::new().unwrap();
        assert_eq!(k.manifest().slug, "gocardless");
        assert!(k.manifest().fields["secret_key"].kind.is_secret());
    }
}
