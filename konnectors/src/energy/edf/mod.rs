//! EDF particuliers (energy): the customer area's invoices and monthly
//! instalments as bills with their PDFs, and the monthly electricity
//! consumption as `io.cozy.timeseries.energy`.
//!
//! Read in this order: `manifest.toml` (identity, fields, hosts),
//! [`routes`] (every URL), [`auth`] (the ForgeRock SSO login, the e-mailed
//! code for a new device), [`api`] (the JSON services' answers), [`map`]
//! (pure mapping to doctypes), [`fixture`] and `sandbox/` (the local
//! stand-in for the site, for tests and `gleaner demo`).
//!
//! The run: log in (or reuse the kept session), read the contracts, open
//! "Mes documents", read the invoices (`getBillsDocuments`) and the payment
//! schedule (`bill/consult`); for what is new since the last run only,
//! fetch a CSRF token and save each bill with its PDF
//! (`getDocumentGetXByData`); then read the consumption year by year
//! ("pages" of `begin-month`/`end-month`), from where the last run stopped.
//! The state keeps the invoice numbers seen, the last instalment saved and
//! the last month of consumption, so a later run downloads nothing it has
//! and asks only the consumption of the current year again.
//!
//! Facts about the site (URLs, JSON fields, login stages, error messages)
//! come from public sources:
//! - Woob's `edf` module, `modules/edf/par/browser.py` and `pages.py`
//!   (github.com/laurentb/weboob, rbignon/woob): the SSO's REST
//!   authentication (`/sso/json/authenticate?realm=/INTERNET`, stages
//!   `UsernameAuth2`, `HOTPcust3`, `PasswordAuth2`, the device token,
//!   "Code incorrect", the `ivoiream` cookie), `checkAuthenticate`,
//!   `getListContracts` (`errorCode`, `customerAccordContracts`),
//!   `getMyDocuments` before `getBillsDocuments`, the bill fields
//!   (`documentNumber`, `parNumber`, `billAmount`, `creationDate` in ms),
//!   `initPage` and the download's `csrfToken/dn/pn/di/bn/an`;
//! - Cozy's EDF konnector (github.com/konnectors/edf: `src/index.js` up to
//!   v1.11, plain HTTP, then the clisk version): the same services,
//!   `bill/consult` (`monthlyPaymentAllowedStatus: MENS`,
//!   `paymentSchedule.deadlines[].encashmentDate/electricityAmount/
//!   gazAmount/payment: EFFECTUE`), `getPaymentsDocuments` and the
//!   `CalendrierPaiement` PDF, refunds for negative amounts, the 401
//!   "Compte utilisateur verrouillé", the monthly consumption's
//!   `monthlyElecEnergies[].month/consumption.energy` (kWh);
//! - Cozy's older EDF konnector (cozy-labs, the Edelia fetchers): the
//!   consumption path `/api/v1/sites/-/monthly-elec-consumptions` with
//!   `begin-month`, `end-month`, `ended=false`; the `person-ext-id` and
//!   `site-ext-id` headers from the Home Assistant `edf_api` client.
//!
//! The real site now logs in through scripts (Cozy moved to a browser
//! konnector in 2023); this is the plain-HTTP variant the older konnector
//! and Woob used. Where the sources stop (the device stage's name, the
//! consumption API's host and session), see [`auth`] and
//! `fixtures/edf/README.md`.

pub mod api;
pub mod auth;
#[cfg(any(test, feature = "sandbox"))]
pub mod fixture;
pub mod map;
pub mod routes;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate};
use gleaner_framework::{Konnector, Manifest, Result, RunContext, async_trait};
use serde::{Deserialize, Serialize};

use map::ContractRef;

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(Edf::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// Months of history read on the first run unless `history_months` says.
pub const DEFAULT_HISTORY_MONTHS: u32 = 36;

/// What a run keeps for the next one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Invoice numbers already saved.
    #[serde(default)]
    pub invoices: BTreeSet<String>,
    /// Per customer account: the day of the last instalment saved.
    #[serde(default)]
    pub instalments_through: BTreeMap<String, NaiveDate>,
    /// Per delivery point: the last month with consumption (`YYYY-MM`).
    #[serde(default)]
    pub consumption_through: BTreeMap<String, String>,
}

/// The EDF konnector.
pub struct Edf {
    manifest: Manifest,
}

impl Edf {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("energy/edf/manifest.toml", MANIFEST)?,
        })
    }
}

/// Calendar years of consumption the customer area shows: the current one
/// and the two before.
pub const CONSUMPTION_YEARS: i32 = 3;

/// The years of consumption to ask for: from the year of the last month
/// seen (the next year once December is seen), else from the history's
/// start but not before the [`CONSUMPTION_YEARS`] the site shows, to
/// `today`'s year.
pub fn consumption_years(through: Option<&str>, since: NaiveDate, today: NaiveDate) -> Vec<i32> {
    let first = through
        .and_then(|m| map::month_day(m).ok())
        .map(|d| {
            if d.month() == 12 {
                d.year() + 1
            } else {
                d.year()
            }
        })
        .unwrap_or_else(|| since.year().max(today.year() - (CONSUMPTION_YEARS - 1)));
    (first..=today.year()).collect()
}

/// A URL on the customer area with a query.
fn with_query(ctx: &RunContext, path: &str, query: &[(&str, &str)]) -> Result<String> {
    let mut url = url::Url::parse(&ctx.url(path)?).map_err(|e| {
        gleaner_framework::KonnectorError::new(
            gleaner_framework::ErrorCode::UnknownError,
            format!("bad URL for {path}: {e}"),
        )
    })?;
    url.query_pairs_mut().extend_pairs(query);
    Ok(url.into())
}

#[async_trait]
impl Konnector for Edf {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let today = ctx.today();
        let history = ctx
            .field("history_months")
            .ok()
            .and_then(|m| m.trim().parse::<u32>().ok())
            .unwrap_or(DEFAULT_HISTORY_MONTHS);
        let since = today
            .checked_sub_months(Months::new(history))
            .unwrap_or(NaiveDate::MIN);
        let mut state: State = serde_json::from_value(ctx.state().clone()).unwrap_or_default();

        let contracts = auth::open_session(ctx).await?;
        // Customer account → label; the delivery points of electricity.
        let mut refs: BTreeMap<String, ContractRef> = BTreeMap::new();
        let mut meters: Vec<String> = Vec::new();
        for accord in contracts.accords() {
            let offer = accord
                .contracts
                .first()
                .and_then(|c| c.subscribe_offer.as_ref())
                .and_then(|o| o.offer_name.clone());
            let city = accord.adress.as_ref().and_then(|a| a.city.clone());
            let mut label = accord.number.clone();
            if let Some(offer) = offer {
                label = format!("{offer} {label}");
            }
            if let Some(city) = city {
                label = format!("{label} ({city})");
            }
            refs.insert(
                accord.number.clone(),
                ContractRef {
                    number: accord.number.clone(),
                    label,
                },
            );
            for c in &accord.contracts {
                let elec = c
                    .subscribe_offer
                    .as_ref()
                    .and_then(|o| o.energy.as_deref())
                    .is_none_or(|e| e.eq_ignore_ascii_case("ELECTRICITE"));
                if elec && !meters.contains(&c.pdlnumber) {
                    meters.push(c.pdlnumber.clone());
                }
            }
        }
        let contract_of = |number: &str| {
            refs.get(number).cloned().unwrap_or_else(|| ContractRef {
                number: number.to_owned(),
                label: number.to_owned(),
            })
        };

        // "Mes documents" first, or the bill list fails (Woob, Cozy).
        let resp = ctx
            .http()
            .get(&ctx.url(routes::MY_DOCUMENTS)?)
            .send()
            .await?;
        api::check(&resp)?;
        let docs: api::BillsDocuments =
            api::get_json(ctx, &ctx.url(routes::BILLS_DOCUMENTS)?).await?;
        let consult: api::BillConsult = api::get_json(ctx, &ctx.url(routes::BILL_CONSULT)?).await?;

        // What is new: invoices not seen, paid instalments after the last.
        let mut new_invoices = Vec::new();
        for bp in &docs {
            let Some(bp_dto) = &bp.bpDto else { continue };
            for acc in &bp.listOfBillsByAccDTO {
                for bill in &acc.listOfbills {
                    if state.invoices.contains(&bill.document_number) {
                        continue;
                    }
                    if map::day(bill.creation_date, "the invoice date")? < since {
                        continue;
                    }
                    new_invoices.push((bp_dto.clone(), acc.accDTO.clone(), bill.clone()));
                }
            }
        }
        let mut new_deadlines = Vec::new();
        let schedule_account = consult
            .fe_souscription_response
            .as_ref()
            .map(|s| s.trade_number.clone());
        if let (Some(account), Some(schedule), Some("MENS")) = (
            &schedule_account,
            &consult.payment_schedule,
            consult.monthly_payment_allowed_status.as_deref(),
        ) {
            let after = state.instalments_through.get(account).copied();
            for d in &schedule.deadlines {
                if d.payment != "EFFECTUE" {
                    continue;
                }
                let day = map::day(d.encashment_date, "an instalment date")?;
                let fresh = match after {
                    Some(last) => day > last,
                    None => day >= since,
                };
                if fresh {
                    new_deadlines.push((day, d.clone()));
                }
            }
        }

        let total = (new_invoices.len() + new_deadlines.len()) as u64;
        let mut done = 0u64;
        if total > 0 {
            // The site's scripts send `Date.now()` as a cache buster; the
            // day's midnight keeps a recorded run replayable.
            let stamp = map::midnight(today).timestamp_millis().to_string();
            let init: api::InitPage =
                api::get_json(ctx, &with_query(ctx, routes::INIT_PAGE, &[("_", &stamp)])?).await?;
            let csrf = init.data;
            for (bp, acc, bill) in &new_invoices {
                let url = with_query(
                    ctx,
                    routes::DOCUMENT,
                    &routes::document_query(
                        &csrf,
                        routes::DN_INVOICE,
                        &bill.par_number,
                        &bill.document_number,
                        &bp.bp_number_crypt,
                        &acc.num_acc_crypt,
                    ),
                )?;
                let (doc, file) = map::invoice_bill(bill, &contract_of(&acc.num_acc), &url)?;
                ctx.progress(
                    done,
                    Some(total),
                    format!("invoice {}", bill.document_number),
                );
                ctx.save_bill(doc, Some(file)).await?;
                state.invoices.insert(bill.document_number.clone());
                done += 1;
            }
            if let (Some(account), Some(schedule), false) = (
                &schedule_account,
                &consult.payment_schedule,
                new_deadlines.is_empty(),
            ) {
                let payments: api::PaymentsDocuments =
                    api::get_json(ctx, &ctx.url(routes::PAYMENTS_DOCUMENTS)?).await?;
                let found = payments.iter().find_map(|bp| {
                    let bp_dto = bp.bpDto.as_ref()?;
                    bp.listOfPaymentsByAccDTO
                        .iter()
                        .filter(|a| a.accDTO.num_acc == *account)
                        .find_map(|a| Some((bp_dto, &a.accDTO, a.lastPaymentDocument.as_ref()?)))
                });
                let contract = contract_of(account);
                let start = map::day(schedule.start_date, "the schedule's start")?;
                let file = match found {
                    Some((bp, acc, doc)) => {
                        let url = with_query(
                            ctx,
                            routes::DOCUMENT,
                            &routes::document_query(
                                &csrf,
                                routes::DN_SCHEDULE,
                                &doc.par_number,
                                &doc.document_number,
                                &bp.bp_number_crypt,
                                &acc.num_acc_crypt,
                            ),
                        )?;
                        Some((
                            doc.document_number.clone(),
                            map::schedule_file(start, &doc.document_number, &contract, &url),
                        ))
                    }
                    None => {
                        ctx.warn(format!(
                            "EDF lists no payment-schedule document for {account}: its instalments are saved without a PDF"
                        ));
                        None
                    }
                };
                let reference = file
                    .as_ref()
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| account.clone());
                for (day, d) in &new_deadlines {
                    let bill = map::instalment_bill(d, &contract, &reference)?;
                    ctx.progress(done, Some(total), format!("instalment {day}"));
                    ctx.save_bill(bill, file.as_ref().map(|(_, f)| f.clone()))
                        .await?;
                    let last = state
                        .instalments_through
                        .entry(account.clone())
                        .or_insert(*day);
                    if *day > *last {
                        *last = *day;
                    }
                    done += 1;
                }
            }
        }
        ctx.progress(done, Some(total), "bills done");

        // Consumption, a calendar year per request.
        let bp_number = docs
            .iter()
            .find_map(|bp| bp.bpDto.as_ref().map(|b| b.bp_number.clone()))
            .unwrap_or_default();
        for pdl in &meters {
            let years = consumption_years(
                state.consumption_through.get(pdl).map(String::as_str),
                since,
                today,
            );
            for year in years {
                let (begin, end) = (format!("{year}-01"), format!("{year}-12"));
                ctx.progress(done, Some(total), format!("consumption {pdl} {year}"));
                let answer = api::monthly_elec(ctx, &bp_number, pdl, &begin, &end).await?;
                let points = map::points(&answer.monthly_elec_energies)?;
                let Some(last) = points.last().map(|p| p.date.format("%Y-%m").to_string()) else {
                    continue;
                };
                if let Some(doc) = map::year_series(pdl, year, points) {
                    ctx.save(&doc)?;
                }
                state.consumption_through.insert(pdl.clone(), last);
            }
        }

        let value = serde_json::to_value(&state).map_err(|e| {
            gleaner_framework::KonnectorError::new(
                gleaner_framework::ErrorCode::UnknownError,
                format!("cannot encode the state: {e}"),
            )
        })?;
        ctx.set_state(value);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn consumption_years_start_at_the_cursor_or_the_history() {
        let today = d(2026, 1, 15);
        assert_eq!(
            consumption_years(None, d(2024, 1, 15), today),
            [2024, 2025, 2026]
        );
        assert_eq!(consumption_years(None, d(2025, 3, 1), today), [2025, 2026]);
        assert_eq!(
            consumption_years(None, d(2019, 1, 15), today),
            [2024, 2025, 2026]
        );
        assert_eq!(
            consumption_years(Some("2025-12"), d(2023, 1, 1), today),
            [2026]
        );
        assert_eq!(
            consumption_years(Some("2025-11"), d(2023, 1, 1), today),
            [2025, 2026]
        );
    }
}
