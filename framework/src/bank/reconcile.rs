//! Pending-to-booked matching: a pure function, tested alone.
//!
//! Banks show a card payment twice: first **pending** (`isComing`, an
//! authorisation, often with a provisional label, date and amount), then
//! **booked**, often under another id, label, date or a slightly different
//! amount (exchange rate, tip). The booked operation must update the
//! pending document, never create a second one. The rule:
//!
//! 1. The candidates are the stored pending operations of the bank account
//!    dated inside the run's window.
//! 2. A candidate fetched again under its key (still pending, or booked
//!    under the same bank id) is simply updated in place.
//! 3. A fetched **booked** operation with no stored twin (no stored
//!    document under its key) may match a remaining candidate when: same
//!    bank account, same sign, amounts within max(1.00, 5 % of the pending
//!    amount), and booked date from one day before to ten days after the
//!    pending date. Score = days apart + amount difference + label
//!    dissimilarity (0 to 1); the pairs are taken greedily by best score,
//!    one-to-one (two identical card payments on one day give two pairs).
//! 4. A matched pending document is **updated in place**: same id, the
//!    booked content, the booked key (the store re-keys it).
//! 5. A candidate neither fetched again nor matched has **vanished** (an
//!    authorisation the bank cancelled): it is deleted.
//! 6. A booked operation with no pending twin is simply created.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, TimeDelta};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::window::SyncWindow;
use crate::doctypes::BankOperation;

/// How many days before the pending date a booking may be dated.
pub const DAYS_BEFORE: i64 = 1;
/// How many days after the pending date a booking may be dated.
pub const DAYS_AFTER: i64 = 10;

/// A stored pending operation: a matching candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCandidate {
    /// The stored document's id (kept by a match).
    pub id: String,
    /// The key it is stored under.
    pub key: String,
    /// The operation.
    pub op: BankOperation,
}

/// A fetched operation with the key it is staged under.
#[derive(Debug, Clone, Copy)]
pub struct Fetched<'a> {
    /// The staging key (the dedup key, with `#2`, `#3` ... for repeats).
    pub key: &'a str,
    /// The operation.
    pub op: &'a BankOperation,
}

/// A booked operation matched to the pending document it updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index into the fetched operations.
    pub fetched: usize,
    /// Index into the candidates.
    pub pending: usize,
    /// The pair's score (lower is better).
    pub score: f64,
}

/// What [`reconcile`] decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciliation {
    /// Booked operations that update a pending document.
    pub matches: Vec<Match>,
    /// Candidates (indexes) fetched again under their own key.
    pub fetched_again: Vec<usize>,
    /// Candidates (indexes) that vanished: to delete.
    pub vanished: Vec<usize>,
}

/// The sign of an amount: -1, 0 or 1.
fn sign(d: &Decimal) -> i8 {
    if d.is_zero() {
        0
    } else if d.is_sign_negative() {
        -1
    } else {
        1
    }
}

fn day(op: &BankOperation) -> NaiveDate {
    op.date.date_naive()
}

/// Words of a label, upper-cased, without pure numbers (dates, card
/// numbers, references change between pending and booked).
fn words(label: &str) -> HashSet<String> {
    label
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2 && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_uppercase)
        .collect()
}

/// 0 for labels sharing all the words of the shorter one, 1 for labels
/// with no word in common (`CB AMAZON 12/03` and `AMAZON EU SARL`: 0.5).
pub fn label_dissimilarity(a: &str, b: &str) -> f64 {
    let (a, b) = (words(a), words(b));
    let smaller = a.len().min(b.len());
    if smaller == 0 {
        return 1.0;
    }
    let common = a.intersection(&b).count();
    1.0 - common as f64 / smaller as f64
}

/// The score of `booked` as the booking of `pending`, or `None` when the
/// rule does not allow the pair.
pub fn score(pending: &BankOperation, booked: &BankOperation) -> Option<f64> {
    if pending.vendor_account_id != booked.vendor_account_id
        || sign(&pending.amount) != sign(&booked.amount)
    {
        return None;
    }
    let diff = (booked.amount - pending.amount).abs();
    let tolerance = (pending.amount.abs() * Decimal::new(5, 2)).max(Decimal::ONE);
    if diff > tolerance {
        return None;
    }
    let days = (day(booked) - day(pending)).num_days();
    if !(-DAYS_BEFORE..=DAYS_AFTER).contains(&days) {
        return None;
    }
    Some(
        days.unsigned_abs() as f64
            + diff.to_f64().unwrap_or(f64::MAX)
            + label_dissimilarity(&pending.label, &booked.label),
    )
}

/// The candidates inside the window that are not fetched again under
/// their key: the ones a booked operation may match or that vanished.
fn open_candidates(
    window: &SyncWindow,
    candidates: &[PendingCandidate],
    fetched_keys: &HashSet<&str>,
) -> (Vec<usize>, Vec<usize>) {
    let mut open = Vec::new();
    let mut again = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if !window.contains(day(&c.op)) {
            continue;
        }
        if fetched_keys.contains(c.key.as_str()) {
            again.push(i);
        } else {
            open.push(i);
        }
    }
    (open, again)
}

/// The keys of the fetched booked operations that could match an open
/// candidate: the caller checks which of them are stored already (a
/// booked operation with a stored twin is not a booking of a pending one)
/// and passes them to [`reconcile`] as `stored_keys`. Empty when no
/// candidate is open, which is the usual case.
pub fn keys_to_check<'a>(
    window: &SyncWindow,
    candidates: &[PendingCandidate],
    fetched: &[Fetched<'a>],
) -> Vec<&'a str> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let keys: HashSet<&str> = fetched.iter().map(|f| f.key).collect();
    let (open, _) = open_candidates(window, candidates, &keys);
    if open.is_empty() {
        return Vec::new();
    }
    let candidate_keys: HashSet<&str> = candidates.iter().map(|c| c.key.as_str()).collect();
    fetched
        .iter()
        .filter(|f| !f.op.is_coming && !candidate_keys.contains(f.key))
        .filter(|f| {
            open.iter()
                .any(|&p| score(&candidates[p].op, f.op).is_some())
        })
        .map(|f| f.key)
        .collect()
}

/// Applies the rule (see the module documentation) to the stored pending
/// `candidates` and this run's `fetched` operations of one bank account.
/// `stored_keys` holds the fetched keys that are stored already (see
/// [`keys_to_check`]).
pub fn reconcile(
    window: &SyncWindow,
    candidates: &[PendingCandidate],
    fetched: &[Fetched<'_>],
    stored_keys: &HashSet<String>,
) -> Reconciliation {
    if candidates.is_empty() {
        return Reconciliation::default();
    }
    let keys: HashSet<&str> = fetched.iter().map(|f| f.key).collect();
    let (open, fetched_again) = open_candidates(window, candidates, &keys);
    let candidate_keys: HashMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.as_str(), i))
        .collect();
    let mut pairs: Vec<Match> = Vec::new();
    if !open.is_empty() {
        for (fi, f) in fetched.iter().enumerate() {
            if f.op.is_coming || candidate_keys.contains_key(f.key) || stored_keys.contains(f.key) {
                continue;
            }
            for &p in &open {
                if let Some(score) = score(&candidates[p].op, f.op) {
                    pairs.push(Match {
                        fetched: fi,
                        pending: p,
                        score,
                    });
                }
            }
        }
    }
    pairs.sort_by(|a, b| {
        a.score
            .total_cmp(&b.score)
            .then(a.fetched.cmp(&b.fetched))
            .then(a.pending.cmp(&b.pending))
    });
    let mut used_fetched = HashSet::new();
    let mut used_pending = HashSet::new();
    let mut matches = Vec::new();
    for m in pairs {
        if used_fetched.contains(&m.fetched) || used_pending.contains(&m.pending) {
            continue;
        }
        used_fetched.insert(m.fetched);
        used_pending.insert(m.pending);
        matches.push(m);
    }
    matches.sort_by_key(|m| m.fetched);
    let vanished = open
        .into_iter()
        .filter(|p| !used_pending.contains(p))
        .collect();
    Reconciliation {
        matches,
        fetched_again,
        vanished,
    }
}

/// The window a candidate's booking may fall in (for documentation and
/// konnectors that filter early).
pub fn booking_days(pending_day: NaiveDate) -> (NaiveDate, NaiveDate) {
    (
        pending_day - TimeDelta::days(DAYS_BEFORE),
        pending_day + TimeDelta::days(DAYS_AFTER),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::doctypes::Doctype;
    use crate::filters::Currency;
    use chrono::{TimeZone, Utc};

    fn op(
        day: u32,
        cents: i64,
        label: &str,
        vendor_id: Option<&str>,
        pending: bool,
    ) -> BankOperation {
        BankOperation {
            label: label.into(),
            original_bank_label: None,
            operation_type: Some("card".into()),
            date: Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).unwrap(),
            realisation_date: None,
            amount: Decimal::new(cents, 2),
            currency: Currency::EUR,
            account: None,
            vendor_id: vendor_id.map(str::to_owned),
            vendor_account_id: "ACC".into(),
            is_coming: pending,
            bills: Vec::new(),
        }
    }

    fn window() -> SyncWindow {
        SyncWindow {
            from: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            first_run: false,
        }
    }

    fn candidate(id: &str, key: Option<&str>, op: BankOperation) -> PendingCandidate {
        PendingCandidate {
            id: id.into(),
            key: key.map_or_else(|| op.dedup_key(), str::to_owned),
            op,
        }
    }

    fn run(
        candidates: &[PendingCandidate],
        ops: &[BankOperation],
        stored: &[&str],
    ) -> Reconciliation {
        let keys: Vec<String> = ops.iter().map(Doctype::dedup_key).collect();
        let fetched: Vec<Fetched<'_>> = keys
            .iter()
            .zip(ops)
            .map(|(key, op)| Fetched { key, op })
            .collect();
        let stored: HashSet<String> = stored.iter().map(|s| (*s).to_owned()).collect();
        reconcile(&window(), candidates, &fetched, &stored)
    }

    #[test]
    fn two_identical_card_payments_on_one_day_match_one_to_one() {
        let p = op(10, -1200, "CB BOULANGERIE", None, true);
        let key = p.dedup_key();
        let candidates = [
            candidate("p1", Some(&key), p.clone()),
            candidate("p2", Some(&format!("{key}#2")), p),
        ];
        let fetched = [
            op(11, -1200, "BOULANGERIE DU COIN", Some("b1"), false),
            op(11, -1200, "BOULANGERIE DU COIN", Some("b2"), false),
        ];
        let r = run(&candidates, &fetched, &[]);
        assert_eq!(r.matches.len(), 2, "{r:?}");
        let mut pendings: Vec<usize> = r.matches.iter().map(|m| m.pending).collect();
        pendings.sort_unstable();
        assert_eq!(pendings, [0, 1]);
        assert_eq!(r.matches[0].fetched, 0);
        assert_eq!(r.matches[1].fetched, 1);
        assert!(r.vanished.is_empty());
    }

    #[test]
    fn a_pending_item_that_disappears_vanishes() {
        let candidates = [candidate(
            "p1",
            None,
            op(10, -5000, "HOTEL", Some("auth-1"), true),
        )];
        let r = run(&candidates, &[op(12, -999, "OTHER", Some("x"), false)], &[]);
        assert!(r.matches.is_empty());
        assert_eq!(r.vanished, [0]);
        // Outside the window it is left alone.
        let old = [candidate("p0", None, {
            let mut o = op(1, -5000, "HOTEL", Some("auth-0"), true);
            o.date = Utc.with_ymd_and_hms(2026, 2, 20, 0, 0, 0).unwrap();
            o
        })];
        let r = run(&old, &[], &[]);
        assert!(r.vanished.is_empty() && r.matches.is_empty());
    }

    #[test]
    fn a_booked_item_with_no_pending_twin_is_simply_created() {
        let r = run(&[], &[op(12, -2000, "SNCF", Some("b1"), false)], &[]);
        assert_eq!(r, Reconciliation::default());
        // A candidate too different (amount, sign, days) does not match.
        let candidates = [candidate(
            "p1",
            None,
            op(10, -2000, "SNCF", Some("a1"), true),
        )];
        for booked in [
            op(12, -2500, "SNCF", Some("b1"), false),
            op(12, 2000, "SNCF", Some("b1"), false),
            op(25, -2000, "SNCF", Some("b1"), false),
            op(8, -2000, "SNCF", Some("b1"), false),
        ] {
            let r = run(&candidates, &[booked], &[]);
            assert!(r.matches.is_empty(), "{r:?}");
            assert_eq!(r.vanished, [0]);
        }
    }

    #[test]
    fn a_pending_that_books_two_days_later_with_another_label_and_amount_matches() {
        let candidates = [candidate(
            "p1",
            None,
            op(10, -3000, "PAIEMENT CB AMAZON 10/03", None, true),
        )];
        let booked = op(12, -3120, "AMAZON EU SARL", Some("tx-9"), false);
        let r = run(&candidates, std::slice::from_ref(&booked), &[]);
        assert_eq!(r.matches.len(), 1, "{r:?}");
        assert_eq!((r.matches[0].fetched, r.matches[0].pending), (0, 0));
        assert!(r.vanished.is_empty());
        // The same booked operation stored already is not a booking of it.
        let key = booked.dedup_key();
        let r = run(&candidates, &[booked], &[key.as_str()]);
        assert!(r.matches.is_empty());
        assert_eq!(r.vanished, [0]);
    }

    #[test]
    fn a_pending_still_pending_stays() {
        let p = op(10, -1500, "CB CINEMA", Some("auth-7"), true);
        let candidates = [candidate("p1", None, p.clone())];
        let r = run(&candidates, &[p], &[]);
        assert!(r.matches.is_empty() && r.vanished.is_empty());
        assert_eq!(r.fetched_again, [0]);
    }

    #[test]
    fn the_best_pair_wins_and_checks_are_narrowed() {
        let candidates = [
            candidate("p1", None, op(10, -1000, "CB FNAC", Some("a1"), true)),
            candidate("p2", None, op(10, -1000, "CB DARTY", Some("a2"), true)),
        ];
        let ops = [op(11, -1000, "DARTY PARIS", Some("b1"), false)];
        let r = run(&candidates, &ops, &[]);
        assert_eq!(r.matches.len(), 1);
        assert_eq!(r.matches[0].pending, 1);
        assert_eq!(r.vanished, [0]);
        let keys: Vec<String> = ops.iter().map(Doctype::dedup_key).collect();
        let fetched = [Fetched {
            key: &keys[0],
            op: &ops[0],
        }];
        assert_eq!(
            keys_to_check(&window(), &candidates, &fetched),
            [keys[0].as_str()]
        );
        assert!(keys_to_check(&window(), &[], &fetched).is_empty());
        assert_eq!(
            label_dissimilarity("CB AMAZON 12/03", "AMAZON EU SARL"),
            0.5
        );
        assert_eq!(label_dissimilarity("AMAZON", "AMAZON EU SARL"), 0.0);
        assert_eq!(label_dissimilarity("CB FNAC", "DARTY"), 1.0);
    }
}
