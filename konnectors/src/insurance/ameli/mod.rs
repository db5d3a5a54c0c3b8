//! Ameli (health insurance): the compte ameli's payments, as health
//! refund bills with their statements (décomptes) as PDFs.
//!
//! Read in this order: `manifest.toml` (identity, fields, hosts), [`auth`]
//! (the login form, the anti-CSRF token, the security code emailed to a new
//! device), [`routes`] (the site map), [`pages`] (extraction, no HTTP),
//! [`map`] (pure mapping to doctypes), `sandbox/` (the local stand-in for
//! the site, for tests and `gleaner demo`).
//!
//! The run: log in, then read the payments list ("Mes paiements",
//! `paiements.do?actionEvt=afficherPaiementsComplementaires`, a JSON answer
//! whose `tableauPaiement` is the list's HTML) for a date window, page by
//! page (`indexPaiement`), then each new payment's detail
//! (`actionEvt=chargerDetailPaiements`: beneficiaries, acts, care dates,
//! amounts, *participations forfaitaires*), and save one bill per act with
//! the payment's statement PDF.
//!
//! **History and cursor.** Every run asks the list for the last
//! `history_months` (an optional account field, default
//! [`DEFAULT_HISTORY_MONTHS`]), newest payments first. The state keeps the
//! date of the newest payment saved and the ids of that day's payments: a
//! later run stops paging at the first page that reaches an older payment
//! (usually the first page), and opens the detail of no payment it already
//! saved, so it downloads nothing again either. The state is committed with
//! the run's documents: a failed run reads the same payments again.
//!
//! Facts about the site come from public sources: Cozy's konnector
//! (github.com/konnectors/cozy-konnector-ameli, `src/index.js` and
//! `src/urlService.js`: URLs, form fields, `_ct` token servlet, list and
//! detail selectors, bill fields and file names) and Woob's `ameli` module
//! (gitlab.com/woob/woob, `modules/ameli/browser.py` and `pages.py`: the
//! date window of the payments call, the login errors, the `authStep`
//! emailed-code steps `OTP_NECESSAIRE` / `ENVOI_OTP` / `SAISIE_OTP`,
//! `numOTP1..6`, `enrolerDevice` and the `trustConnect0` cookie). The real
//! site now runs those code steps on `ameliconnect.ameli.fr`; the sandbox
//! keeps them on the portal's login form (same fields and steps).

pub mod auth;
pub mod map;
pub mod pages;
pub mod routes;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Months, NaiveDate};
use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::{Konnector, KonnectorError, Manifest, Result, RunContext, async_trait};
use serde::{Deserialize, Serialize};

use pages::{PaymentDetail, PaymentRow, PaymentsAnswer};

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(Ameli::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// Months of payments the first run reads when the account does not say.
pub const DEFAULT_HISTORY_MONTHS: u32 = 24;

/// The most list pages one run reads (a guard against a paging loop).
pub const MAX_LIST_PAGES: usize = 50;

/// What the konnector keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The date of the newest payment seen.
    pub last_payment_date: Option<NaiveDate>,
    /// The ids of the payments of that day already saved.
    #[serde(default)]
    pub seen_on_last_date: BTreeSet<String>,
}

/// The Ameli konnector.
pub struct Ameli {
    manifest: Manifest,
}

impl Ameli {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("insurance/ameli/manifest.toml", MANIFEST)?,
        })
    }
}

#[async_trait]
impl Konnector for Ameli {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let state: State = serde_json::from_value(ctx.state().clone()).unwrap_or_default();
        let today = ctx.today();
        let from = first_day(today, history_months(ctx));
        let ct = auth::login(ctx).await?;
        let rows = list_payments(ctx, &ct, from, today, state.last_payment_date).await?;
        let fresh: Vec<&PaymentRow> = rows
            .iter()
            .filter(|r| is_new(&state, r))
            .filter(|r| {
                let known = matches!(
                    r.nature.as_str(),
                    "REMBOURSEMENT_SOINS" | map::THIRD_PARTY_PAYMENT
                );
                if !known {
                    tracing::info!(nature = %r.nature, "payment of another nature skipped");
                }
                known
            })
            .collect();
        tracing::info!(
            listed = rows.len(),
            new = fresh.len(),
            %from,
            "ameli payments"
        );
        let total = fresh.len() as u64;
        // Oldest first, as Cozy sorts them.
        let mut ordered = fresh;
        ordered.sort_by_key(|r| r.date);
        for (done, row) in ordered.iter().enumerate() {
            ctx.progress(done as u64, Some(total), format!("payment of {}", row.date));
            let detail = fetch_detail(ctx, &ct, row).await?;
            for (date, amount) in &detail.unmatched_participations {
                ctx.warn(format!(
                    "the payment of {} withholds a participation of {amount} EUR for {date} that matches no act",
                    row.date
                ));
            }
            for (bill, file) in map::bills_for(row, &detail) {
                ctx.save_bill(bill, file).await?;
            }
        }
        ctx.progress(total, Some(total), "done");
        let next = next_state(&state, &rows);
        ctx.set_state(serde_json::to_value(&next).map_err(|e| {
            KonnectorError::invalid_data(format!("cannot encode the ameli state: {e}"))
        })?);
        Ok(())
    }
}

/// Whether the cursor says `row` was not saved yet: a later day than the
/// cursor's, or the cursor's day and not one of its payments.
pub fn is_new(state: &State, row: &PaymentRow) -> bool {
    match state.last_payment_date {
        None => true,
        Some(last) => {
            row.date > last || (row.date == last && !state.seen_on_last_date.contains(&row.id))
        }
    }
}

/// The account's `history_months`, or the default (with a warning when
/// the field holds something else than a number of months).
fn history_months(ctx: &mut RunContext) -> u32 {
    let Ok(raw) = ctx.field("history_months").map(str::to_owned) else {
        return DEFAULT_HISTORY_MONTHS;
    };
    match raw.trim().parse::<u32>() {
        Ok(months) if (1..=600).contains(&months) => months,
        _ => {
            ctx.warn(format!(
                "history_months \"{raw}\" is not a number of months from 1 to 600: reading {DEFAULT_HISTORY_MONTHS} months"
            ));
            DEFAULT_HISTORY_MONTHS
        }
    }
}

/// `today` minus `months` months.
pub fn first_day(today: NaiveDate, months: u32) -> NaiveDate {
    today
        .checked_sub_months(Months::new(months))
        .unwrap_or(NaiveDate::MIN)
}

/// The state after a run that listed `rows`: the newest date, and every id
/// of that date (with the ones already known when it did not move).
pub fn next_state(old: &State, rows: &[PaymentRow]) -> State {
    let newest = rows.iter().map(|r| r.date).max();
    let last = match (old.last_payment_date, newest) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut seen: BTreeSet<String> = rows
        .iter()
        .filter(|r| Some(r.date) == last)
        .map(|r| r.id.clone())
        .collect();
    if last == old.last_payment_date {
        seen.extend(old.seen_on_last_date.iter().cloned());
    }
    State {
        last_payment_date: last,
        seen_on_last_date: seen,
    }
}

/// The pages of the payments list for `from..=to`, newest first: all of
/// them, or, with a cursor, up to the first page that reaches a payment
/// older than `known_until` (the rest is known).
async fn list_payments(
    ctx: &RunContext,
    ct: &str,
    from: NaiveDate,
    to: NaiveDate,
    known_until: Option<NaiveDate>,
) -> Result<Vec<PaymentRow>> {
    let mut rows = Vec::new();
    let mut index = None;
    for _ in 0..MAX_LIST_PAGES {
        let url = ctx.url(&routes::payments_list(from, to, index))?;
        let resp = ctx
            .http()
            .get(&url)
            .header(routes::CT, ct)
            .header("Accept", "application/json")
            .send()
            .await?;
        auth::check_status(&resp, "the payments list")?;
        let answer: PaymentsAnswer = resp.json()?;
        let page = {
            let html = HtmlPage::parse(resp.url.as_str(), &answer.table);
            pages::parse_payments(&html)?
        };
        let reaches_known = known_until
            .is_some_and(|known| page.rows.iter().any(|r| r.date < known));
        rows.extend(page.rows);
        if reaches_known {
            return Ok(rows);
        }
        match page.next_index {
            Some(next) if Some(next) != index => index = Some(next),
            _ => return Ok(rows),
        }
    }
    Err(KonnectorError::page_changed(format!(
        "the payments list had more than {MAX_LIST_PAGES} pages: its paging may have changed"
    )))
}

/// A payment's detail, parsed.
async fn fetch_detail(ctx: &RunContext, ct: &str, row: &PaymentRow) -> Result<PaymentDetail> {
    let url = ctx.url(&routes::payment_detail(
        &row.id,
        &row.nature,
        &row.group_index,
        &row.payment_index,
    ))?;
    let resp = ctx.http().get(&url).header(routes::CT, ct).send().await?;
    auth::check_status(&resp, "a payment's detail")?;
    let page = HtmlPage::parse(resp.url.as_str(), &resp.text());
    if !page.exists("div.entete")?
        && let Ok(kind) = pages::classify(&page)
    {
        return Err(auth::unexpected(kind, "a payment's detail"));
    }
    pages::parse_detail(&page)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn row(id: &str, date: &str) -> PaymentRow {
        PaymentRow {
            id: id.into(),
            nature: "REMBOURSEMENT_SOINS".into(),
            group_index: "0".into(),
            payment_index: "0".into(),
            date: date.parse().unwrap(),
            label: "Remboursement de soins".into(),
            amount: Decimal::ONE,
            pdf_url: None,
        }
    }

    #[test]
    fn the_cursor_is_the_newest_day_and_its_payments() {
        let first = next_state(
            &State::default(),
            &[row("a", "2025-12-08"), row("b", "2025-11-28"), row("c", "2025-12-08")],
        );
        assert_eq!(first.last_payment_date, "2025-12-08".parse().ok());
        assert_eq!(first.seen_on_last_date.len(), 2);
        // Nothing new: unchanged.
        assert_eq!(next_state(&first, &[row("a", "2025-12-08")]), first);
        // A later payment moves the cursor and forgets the older ids.
        let later = next_state(&first, &[row("a", "2025-12-08"), row("d", "2026-01-05")]);
        assert_eq!(later.last_payment_date, "2026-01-05".parse().ok());
        assert_eq!(later.seen_on_last_date, BTreeSet::from(["d".to_owned()]));
        // No payment at all: the old state stays.
        assert_eq!(next_state(&first, &[]), first);
    }

    #[test]
    fn only_payments_after_the_cursor_are_new() {
        let state = next_state(&State::default(), &[row("a", "2025-12-08")]);
        assert!(!is_new(&state, &row("a", "2025-12-08")));
        assert!(is_new(&state, &row("b", "2025-12-08")));
        assert!(!is_new(&state, &row("c", "2025-11-28")));
        assert!(is_new(&state, &row("d", "2025-12-09")));
        assert!(is_new(&State::default(), &row("a", "2025-12-08")));
    }

    #[test]
    fn the_first_window_goes_back_the_history_depth() {
        let today: NaiveDate = "2026-11-30".parse().unwrap();
        assert_eq!(first_day(today, 24), "2024-11-30".parse::<NaiveDate>().unwrap());
    }

    #[test]
    fn the_state_reads_back_from_json() {
        let s = State {
            last_payment_date: "2025-12-08".parse().ok(),
            seen_on_last_date: BTreeSet::from(["x".to_owned()]),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(serde_json::from_value::<State>(v).unwrap(), s);
        assert_eq!(
            serde_json::from_value::<State>(serde_json::Value::Null).unwrap_or_default(),
            State::default()
        );
    }
}
