//! What bank konnectors build on: accounts, operations and balances saved
//! with the pending-to-booked matching and an incremental window.
//!
//! A bank konnector's run, for each account the bank lists:
//!
//! ```no_run
//! # use gleaner_framework::{RunContext, Result};
//! # use gleaner_framework::bank::OperationBatch;
//! # use gleaner_framework::doctypes::{BankAccount, BankOperation};
//! # async fn fetch(_: &str, _: chrono::NaiveDate, _: chrono::NaiveDate) -> Vec<BankOperation> { vec![] }
//! # async fn run(ctx: &mut RunContext, account: BankAccount) -> Result<()> {
//! let account_id = ctx.save_bank_account(&account).await?;
//! let window = ctx.sync_window(&account.vendor_id)?;
//! let operations = fetch(&account.vendor_id, window.from, window.to).await;
//! let summary = ctx
//!     .save_bank_operations(OperationBatch {
//!         vendor_account_id: account.vendor_id.clone(),
//!         window,
//!         operations,
//!     })
//!     .await?;
//! ctx.save_balances(&account_id, &account.vendor_id, &[(ctx.today(), account.balance)])
//!     .await?;
//! # let _ = summary;
//! # Ok(())
//! # }
//! ```
//!
//! - [`RunContext::save_bank_account`] stages the account and returns its
//!   document id (the stored one, or a new one chosen now), for
//!   [`BankOperation::account`].
//! - [`RunContext::sync_window`] gives the days to fetch (see [`window`]).
//! - [`RunContext::save_bank_operations`] matches booked operations to the
//!   stored pending ones (see [`mod@reconcile`] for the rule), stages every
//!   operation, deletes the pending ones the bank cancelled, and moves the
//!   account's cursor to the window's end. Everything is committed in the
//!   run's one transaction, with the cursor, or not at all.
//! - [`RunContext::save_balances`] merges daily balances into the yearly
//!   [`BalanceHistory`] documents.
//!
//! After every run, [`linking`] links bills to the bank operations that
//! paid them, across konnectors.

pub mod linking;
pub mod reconcile;
pub mod window;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use reconcile::{Fetched, Match, PendingCandidate, Reconciliation, reconcile};
pub use window::{
    DEFAULT_HISTORY_DAYS, DEFAULT_LOOKBACK_DAYS, HISTORY_DAYS_FIELD, LOOKBACK_DAYS_FIELD,
    SyncWindow,
};

use crate::context::RunContext;
use crate::doctypes::{BalanceHistory, BankAccount, BankOperation, Doctype};
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::store::{DocStore, StagedDoc};

/// The most days of history an account field may ask for (100 years).
const MAX_HISTORY_DAYS: u32 = 36_500;
/// The longest lookback an account field may ask for.
const MAX_LOOKBACK_DAYS: u32 = 366;

/// One bank account's operations for one window: everything the bank
/// gave for those days, pending and booked, all pages together.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationBatch {
    /// The bank's id for the account (every operation's `vendorAccountId`).
    pub vendor_account_id: String,
    /// The window the operations were fetched for
    /// ([`RunContext::sync_window`]).
    pub window: SyncWindow,
    /// The operations.
    pub operations: Vec<BankOperation>,
}

/// What [`RunContext::save_bank_operations`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileSummary {
    /// Operations staged (new, changed or unchanged: the commit tells).
    pub created_or_updated: u64,
    /// Booked operations that update a stored pending document.
    pub booked_from_pending: u64,
    /// Stored pending operations the bank no longer shows: deleted.
    pub pending_vanished: u64,
}

/// The bank methods' bookkeeping during one run.
#[derive(Debug, Default)]
pub(crate) struct BankRun {
    /// Bank account `vendorId` → document id, from `save_bank_account`.
    accounts: HashMap<String, String>,
    /// Bank accounts whose operations were saved this run.
    batches: HashSet<String>,
}

impl RunContext {
    /// Stages a bank account and returns its document id: the stored one
    /// when the account exists, else a new id chosen now. Put it in each
    /// operation's [`BankOperation::account`] (or leave that `None`:
    /// [`RunContext::save_bank_operations`] fills it in).
    pub async fn save_bank_account(&mut self, account: &BankAccount) -> Result<String> {
        account.validate()?;
        let key = account.dedup_key();
        let staged_id = self
            .staged(BankAccount::DOCTYPE, &key)
            .and_then(|d| d.id.clone());
        let id = match staged_id {
            Some(id) => id,
            None => {
                let store = Arc::clone(self.store());
                store
                    .find_id(self.account_id(), BankAccount::DOCTYPE, &key)
                    .await?
                    .unwrap_or_else(crate::ids::new_id)
            }
        };
        self.stage_with_id(account, id.clone())?;
        self.bank_run()
            .accounts
            .insert(account.vendor_id.clone(), id.clone());
        Ok(id)
    }

    /// The days to fetch for a bank account: on the first run,
    /// `history_days` back (account field, default 365); later, from the
    /// saved cursor minus `lookback_days` (account field, default 10).
    /// See [`window`]. A field that is not a number of days is
    /// `INVALID_DATA` naming it.
    pub fn sync_window(&self, vendor_account_id: &str) -> Result<SyncWindow> {
        let fields = &self.fields_map();
        let history = window::days_field(
            fields.get(HISTORY_DAYS_FIELD).map(String::as_str),
            HISTORY_DAYS_FIELD,
            DEFAULT_HISTORY_DAYS,
            MAX_HISTORY_DAYS,
        )?;
        let lookback = window::days_field(
            fields.get(LOOKBACK_DAYS_FIELD).map(String::as_str),
            LOOKBACK_DAYS_FIELD,
            DEFAULT_LOOKBACK_DAYS,
            MAX_LOOKBACK_DAYS,
        )?;
        let cursor = window::cursor_of(self.framework_state(), vendor_account_id);
        Ok(SyncWindow::compute(self.today(), cursor, history, lookback))
    }

    /// Saves one bank account's operations for one window, with the
    /// pending-to-booked matching (see [`mod@reconcile`]): a booked operation
    /// that is the booking of a stored pending one updates that document
    /// (same id); stored pending operations inside the window that the
    /// bank no longer shows are deleted; the account's cursor moves to
    /// `window.to`. All of it is committed with the run, or nothing.
    ///
    /// Operations without a bank id that repeat exactly (two identical
    /// card payments on one day) are kept apart: the second is keyed
    /// `<key>#2`, the third `<key>#3`. Operations with a bank id that
    /// repeat are one operation (the last one given wins).
    ///
    /// Call it once per bank account and run, with everything the bank
    /// gave for the window (all pages, pending and booked).
    pub async fn save_bank_operations(
        &mut self,
        batch: OperationBatch,
    ) -> Result<ReconcileSummary> {
        let OperationBatch {
            vendor_account_id: vid,
            window,
            mut operations,
        } = batch;
        if vid.trim().is_empty() {
            return Err(KonnectorError::invalid_data(
                "a batch of io.cozy.bank.operations has no vendorAccountId",
            ));
        }
        if !self.bank_run().batches.insert(vid.clone()) {
            return Err(KonnectorError::new(
                ErrorCode::UnknownError,
                format!(
                    "save_bank_operations was called twice for one bank account in this run; pass all of its operations for the window at once (vendorAccountId {})",
                    mask(&vid)
                ),
            ));
        }
        let account_doc = self.bank_run().accounts.get(&vid).cloned();

        // 1. Validate, fill the account, key.
        let mut keys = Vec::with_capacity(operations.len());
        let mut repeats: HashMap<String, u32> = HashMap::new();
        for op in &mut operations {
            if op.vendor_account_id != vid {
                return Err(KonnectorError::invalid_data(format!(
                    "an io.cozy.bank.operations document of the batch for account {} belongs to account {}",
                    mask(&vid),
                    mask(&op.vendor_account_id)
                )));
            }
            op.validate()?;
            if op.account.is_none() {
                op.account.clone_from(&account_doc);
            }
            let key = op.dedup_key();
            let key = if op.vendor_id.is_some() {
                key
            } else {
                let n = repeats.entry(key.clone()).or_insert(0);
                *n += 1;
                if *n == 1 { key } else { format!("{key}#{n}") }
            };
            keys.push(key);
        }
        drop(repeats);

        // 2. The stored pending candidates, and the matching.
        let store = Arc::clone(self.store());
        let account_id = self.account_id().to_owned();
        let candidates = load_candidates(store.as_ref(), &account_id, &vid, &window).await?;
        let (matched, vanished) = {
            let fetched: Vec<Fetched<'_>> = keys
                .iter()
                .zip(&operations)
                .map(|(key, op)| Fetched { key, op })
                .collect();
            let mut stored_keys = HashSet::new();
            for key in reconcile::keys_to_check(&window, &candidates, &fetched) {
                if store
                    .find_id(&account_id, BankOperation::DOCTYPE, key)
                    .await?
                    .is_some()
                {
                    stored_keys.insert(key.to_owned());
                }
            }
            let r = reconcile(&window, &candidates, &fetched, &stored_keys);
            let matched: HashMap<usize, usize> =
                r.matches.iter().map(|m| (m.fetched, m.pending)).collect();
            (matched, r.vanished)
        };

        // 3. Stage.
        self.reserve_docs(operations.len());
        let summary = ReconcileSummary {
            created_or_updated: operations.len() as u64,
            booked_from_pending: matched.len() as u64,
            pending_vanished: vanished.len() as u64,
        };
        for (i, (op, key)) in operations.iter().zip(keys).enumerate() {
            let (id, replaces) = match matched.get(&i).and_then(|&p| candidates.get(p)) {
                Some(c) => (Some(c.id.clone()), Some(c.key.clone())),
                None => (None, None),
            };
            // Canonical already: BankOperation's fields are in key order.
            let json = serde_json::to_string(op).map_err(|e| {
                KonnectorError::invalid_data(format!(
                    "cannot encode an io.cozy.bank.operations document: {e}"
                ))
            })?;
            self.stage_raw(StagedDoc {
                doctype: BankOperation::DOCTYPE,
                key,
                id,
                json: json.into_boxed_str(),
                replaces,
            });
        }
        for p in vanished {
            if let Some(c) = candidates.get(p) {
                self.stage_delete(BankOperation::DOCTYPE, c.key.clone());
            }
        }
        window::set_cursor(self.framework_state_mut(), &vid, window.to);
        tracing::info!(
            operations = summary.created_or_updated,
            booked_from_pending = summary.booked_from_pending,
            pending_vanished = summary.pending_vanished,
            "bank operations staged"
        );
        Ok(summary)
    }

    /// Merges daily balances into the account's yearly
    /// `io.cozy.bank.balancehistories` documents: the stored (or already
    /// staged) document of each year keeps its other days; a day given
    /// again takes the new balance.
    pub async fn save_balances(
        &mut self,
        account_doc_id: &str,
        vendor_account_id: &str,
        balances: &[(NaiveDate, Decimal)],
    ) -> Result<()> {
        let mut by_year: BTreeMap<i32, Vec<(NaiveDate, Decimal)>> = BTreeMap::new();
        for &(day, balance) in balances {
            by_year.entry(day.year()).or_default().push((day, balance));
        }
        let store = Arc::clone(self.store());
        for (year, days) in by_year {
            let fresh = BalanceHistory::new(year, account_doc_id, vendor_account_id);
            let key = fresh.dedup_key();
            let corrupt = |e: serde_json::Error| {
                KonnectorError::store(format!(
                    "the stored io.cozy.bank.balancehistories document of {year} does not decode: {e}"
                ))
            };
            let staged = self
                .staged(BalanceHistory::DOCTYPE, &key)
                .map(|d| (d.json.clone(), d.id.clone()));
            let (mut history, id) = match staged {
                Some((json, id)) => (
                    serde_json::from_str::<BalanceHistory>(&json).map_err(corrupt)?,
                    id,
                ),
                None => match store
                    .get_by_key(self.account_id(), BalanceHistory::DOCTYPE, &key)
                    .await?
                {
                    Some(stored) => (
                        serde_json::from_value::<BalanceHistory>(stored.data).map_err(corrupt)?,
                        Some(stored.id),
                    ),
                    None => (fresh, None),
                },
            };
            account_doc_id.clone_into(&mut history.account);
            for (day, balance) in days {
                history.set(day, balance)?;
            }
            let id = id.unwrap_or_else(crate::ids::new_id);
            self.stage_with_id(&history, id)?;
        }
        Ok(())
    }
}

/// An account id or number for messages and logs: its last four
/// characters only (`****1234`), as banks print them.
pub fn mask(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let shown = chars.len().saturating_sub(4);
    let tail: String = chars[shown..].iter().collect();
    format!("****{tail}")
}

/// The stored pending operations of the account inside the window.
async fn load_candidates(
    store: &dyn DocStore,
    account_id: &str,
    vendor_account_id: &str,
    window: &SyncWindow,
) -> Result<Vec<PendingCandidate>> {
    store
        .pending_bank_operations(account_id, vendor_account_id, window.from, window.to)
        .await?
        .into_iter()
        .map(|doc| {
            let op = serde_json::from_value::<BankOperation>(doc.data).map_err(|e| {
                KonnectorError::store(format!(
                    "the stored pending io.cozy.bank.operations document {} does not decode: {e}",
                    doc.id
                ))
            })?;
            Ok(PendingCandidate {
                id: doc.id,
                key: doc.key,
                op,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
