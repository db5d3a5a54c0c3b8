//! Orange (telco): the customer area's bills of every line (mobile and
//! internet), as bills and PDFs.
//!
//! Read in this order: `manifest.toml` (identity, fields, hosts), [`routes`]
//! (the URLs, headers and selectors), [`auth`] (a saved session, else the
//! scripted two-step login in the headless browser, handed to plain HTTP),
//! [`api`] (the JSON answers), [`pages`] (the few HTML pages: maintenance,
//! the login form's refusals), [`map`] (pure mapping to doctypes),
//! `sandbox/` (the local stand-in for both hosts, for tests and
//! `gleaner demo`).
//!
//! The run: the contracts
//! (`/ecd_wp/portfoliomanager/contracts/users/current`), then for each
//! active one its recent bills
//! (`/ecd_wp/facture/v2.0/billsAndPaymentInfos/users/current/contracts/{cid}`,
//! amounts in cents, PDFs at `/ecd_wp/facture/v1.0/pdf{hrefPdf}`) and, only
//! when they do not reach back far enough, the older ones (the list at
//! `billsHistory.oldBillsHref`, PDFs at `/ecd_wp/facture/historicPDF`).
//! "Far enough" is the `history_months` field (default
//! [`DEFAULT_HISTORY_MONTHS`]) on the first run, then the newest bill date
//! the state keeps per contract: later runs read one page per contract and
//! download only new PDFs.
//!
//! Facts about the site come from public sources (read, not copied):
//! - Woob's `modules/orange` (`browser.py`: `login.orange.fr/api/login` and
//!   `/api/password`, 401 for a wrong password, 403 when blocked;
//!   `contracts_api`, `bills_api_par`, `doc_api_par`; `pages/bills.py`:
//!   `billsHistory/billList`, `date`, `amount` in cents, `hrefPdf`,
//!   `cid`, `offerName`, `status` "actif", `holder`);
//! - Cozy's orange konnector (github.com/konnectors/orange, the clisk
//!   version: `#login`, `#password`, `#btnSubmit`, `#login-label`,
//!   `#password-label`, the keep-connected button, the captcha container,
//!   the `X-Orange-Caller-Id`/`X-Orange-Origin-Id: ECQ` headers,
//!   `oldBillsHref`, `historicPDF?entityName&partitionKeyName&
//!   partitionKeyValue&tecId&cid`, `telco.publicNumber`, `vendorRef` =
//!   `id` or `tecId`).
//!
//! No second factor: neither source meets one in the login flow (Cozy's
//! asks the person to solve a captcha when one shows; that is
//! `CHALLENGE_ASKED` here).

pub mod api;
pub mod auth;
pub mod map;
pub mod pages;
pub mod routes;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Months, NaiveDate};
use gleaner_framework::{
    ErrorCode, Konnector, KonnectorError, Manifest, Result, RunContext, async_trait,
};
use serde::{Deserialize, Serialize};

use api::{BillsAndPaymentInfos, BillsHistory, Contract, Invoice, OldBills};
use routes::Site;

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(Orange::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// Months of bills the first run reads when `history_months` is not set.
pub const DEFAULT_HISTORY_MONTHS: u32 = 36;

/// The Orange konnector.
pub struct Orange {
    manifest: Manifest,
}

impl Orange {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("telco/orange/manifest.toml", MANIFEST)?,
        })
    }
}

/// What the konnector keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrangeState {
    /// Per contract id, the newest bill date seen.
    #[serde(default)]
    pub contracts: BTreeMap<String, ContractCursor>,
}

/// Where one contract's bills were read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractCursor {
    /// The newest bill's date.
    pub newest: NaiveDate,
}

/// Whether the older bills' list must be read: the recent list does not
/// reach back to `reach` (the newest bill already seen, or the history's
/// start, whichever is later).
pub fn needs_old_bills(
    recent: &[Invoice],
    cursor: Option<NaiveDate>,
    since: NaiveDate,
) -> bool {
    let reach = cursor.map_or(since, |c| c.max(since));
    recent.iter().map(|i| i.date).min().is_none_or(|oldest| oldest > reach)
}

fn history_months(ctx: &RunContext) -> Result<u32> {
    match ctx.field("history_months") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            KonnectorError::new(
                ErrorCode::InvalidData,
                format!("history_months must be a number of months, not `{v}`"),
            )
        }),
        _ => Ok(DEFAULT_HISTORY_MONTHS),
    }
}

fn refused_session(what: &str) -> KonnectorError {
    KonnectorError::new(
        ErrorCode::UnknownError,
        format!("the customer area refused the session while reading {what}"),
    )
}

#[async_trait]
impl Konnector for Orange {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let site = Site::new(ctx.base_url())?;
        let months = history_months(ctx)?;
        let today = ctx.today();
        let since = today
            .checked_sub_months(Months::new(months))
            .unwrap_or(NaiveDate::MIN);
        let mut state: OrangeState =
            serde_json::from_value(ctx.state().clone()).unwrap_or_default();

        let contracts = auth::open_session(ctx, &site).await?;
        let mut work: Vec<(Contract, Vec<Invoice>)> = Vec::new();
        for contract in contracts.contracts.into_iter().filter(Contract::is_active) {
            let url = site.ec(&routes::bills(&contract.cid))?;
            let resp = auth::api_answer(auth::api_get(ctx, &url).await?)?
                .ok_or_else(|| refused_session("the bills"))?;
            // Woob: an empty answer means no bills yet.
            let history = if resp.body.iter().all(u8::is_ascii_whitespace) {
                BillsHistory {
                    bill_list: Vec::new(),
                    old_bills_href: None,
                }
            } else {
                resp.json::<BillsAndPaymentInfos>()?.bills_history
            };
            let mut invoices = Vec::new();
            for bill in &history.bill_list {
                match bill.invoice() {
                    Some(inv) => invoices.push(inv),
                    None => ctx.warn(format!(
                        "a bill of {} dated {} has no id; skipped",
                        contract.line(),
                        bill.date
                    )),
                }
            }
            let cursor = state.contracts.get(&contract.cid).map(|c| c.newest);
            if let Some(href) = &history.old_bills_href
                && needs_old_bills(&invoices, cursor, since)
            {
                let url = site.ec(href)?;
                let resp = auth::api_answer(auth::api_get(ctx, &url).await?)?
                    .ok_or_else(|| refused_session("the older bills"))?;
                let old: OldBills = resp.json()?;
                invoices.extend(old.old_bills.iter().map(|b| b.invoice(&contract.cid)));
            }
            invoices.retain(|i| i.date >= since);
            work.push((contract, invoices));
        }

        let total: usize = work.iter().map(|(_, i)| i.len()).sum();
        let mut done = 0u64;
        for (contract, invoices) in &work {
            for invoice in invoices {
                let pdf_url = site.ec(&invoice.pdf_path)?;
                let (bill, file) = map::bill_for(invoice, contract, pdf_url);
                ctx.progress(done, Some(total as u64), format!("bill {}", file.name));
                ctx.save_bill(bill, Some(file)).await?;
                done += 1;
            }
            if let Some(newest) = invoices.iter().map(|i| i.date).max() {
                let entry = state
                    .contracts
                    .entry(contract.cid.clone())
                    .or_insert(ContractCursor { newest });
                entry.newest = entry.newest.max(newest);
            }
        }
        ctx.progress(done, Some(total as u64), "done");
        ctx.set_state(serde_json::to_value(&state).map_err(|e| {
            KonnectorError::new(ErrorCode::UnknownError, format!("state: {e}"))
        })?);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn inv(date: &str) -> Invoice {
        Invoice {
            id: date.into(),
            date: date.parse().unwrap(),
            amount: Decimal::ONE,
            pdf_path: String::new(),
        }
    }

    #[test]
    fn old_bills_are_read_only_when_the_recent_page_does_not_reach_back() {
        let recent = [inv("2025-12-05"), inv("2025-07-05")];
        let since: NaiveDate = "2023-11-30".parse().unwrap();
        // First run: three years back, the recent page holds six months.
        assert!(needs_old_bills(&recent, None, since));
        // A later run: the newest seen bill is on the recent page.
        let seen: NaiveDate = "2025-12-05".parse().unwrap();
        assert!(!needs_old_bills(&recent, Some(seen), since));
        // A run after a long pause: bills were missed in between.
        let long_ago: NaiveDate = "2025-03-05".parse().unwrap();
        assert!(needs_old_bills(&recent, Some(long_ago), since));
        // A short history that the recent page covers.
        let short: NaiveDate = "2025-09-01".parse().unwrap();
        assert!(!needs_old_bills(&recent, None, short));
        assert!(needs_old_bills(&[], None, since));
    }
}
