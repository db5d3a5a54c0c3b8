//! Measures a linking [`Rule`] on a labelled set.
//!
//! The set (`fixtures/linking/labelled.json`, written by
//! `fixtures/linking/make_set.py`) is a list of households, each one store:
//! bills and operations as Cozy documents, the true links with the kind of
//! case (`plain`, `label-variant`, `refund` ...) and decoys, pairs that
//! look like links and are not (`same-amount-other-vendor`,
//! `amount-slightly-off` ...). The rule runs on each household's documents;
//! a link it makes is a true positive when the set has it, a false positive
//! otherwise; a true link it misses is a false negative.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BillFacts, OperationFacts, Rule, bill_facts, link, operation_facts};
use crate::error::KonnectorError;

/// A labelled set.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledSet {
    /// The households (one store each).
    pub households: Vec<Household>,
}

/// One household: its documents and the truth about them.
#[derive(Debug, Clone, Deserialize)]
pub struct Household {
    /// A name for reports.
    pub name: String,
    /// `io.cozy.bills` documents, with `_id`.
    pub bills: Vec<Value>,
    /// `io.cozy.bank.operations` documents, with `_id`.
    pub operations: Vec<Value>,
    /// The true links.
    pub links: Vec<LabelledPair>,
    /// Pairs that must not be linked.
    pub decoys: Vec<LabelledPair>,
}

/// A labelled (bill, operation) pair.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledPair {
    /// The bill's `_id`.
    pub bill: String,
    /// The operation's `_id`.
    pub operation: String,
    /// The kind of case.
    pub kind: String,
}

impl LabelledSet {
    /// Parses a set from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, KonnectorError> {
        serde_json::from_str(text).map_err(|e| {
            KonnectorError::invalid_data(format!("the labelled linking set does not parse: {e}"))
        })
    }

    /// How many labelled pairs (true links and decoys) it holds.
    pub fn pairs(&self) -> usize {
        self.households
            .iter()
            .map(|h| h.links.len() + h.decoys.len())
            .sum()
    }
}

/// How a rule did on one kind of case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindScore {
    /// Pairs of this kind.
    pub pairs: u64,
    /// For true links: found. For decoys: linked (wrongly).
    pub linked: u64,
}

/// How a rule did on a set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Links made that the set has.
    pub true_positives: u64,
    /// Links made that the set does not have.
    pub false_positives: u64,
    /// True links not made.
    pub false_negatives: u64,
    /// By kind of true link.
    pub links: BTreeMap<String, KindScore>,
    /// By kind of decoy.
    pub decoys: BTreeMap<String, KindScore>,
    /// The wrong links made, as `(bill, operation)` ids, sorted.
    pub wrong: Vec<(String, String)>,
    /// The true links missed, as `(bill, operation)` ids, sorted.
    pub missed: Vec<(String, String)>,
}

impl Scores {
    /// Links made that are right, over links made (1 when none is made).
    pub fn precision(&self) -> f64 {
        let made = self.true_positives + self.false_positives;
        if made == 0 {
            1.0
        } else {
            self.true_positives as f64 / made as f64
        }
    }

    /// True links found, over true links (1 when there are none).
    pub fn recall(&self) -> f64 {
        let all = self.true_positives + self.false_negatives;
        if all == 0 {
            1.0
        } else {
            self.true_positives as f64 / all as f64
        }
    }
}

fn id_of(doc: &Value) -> Option<&str> {
    doc.get("_id").and_then(Value::as_str)
}

/// Runs `rule` on every household of `set` and scores it. A document the
/// matcher cannot read is an error: the set is made to be read whole.
pub fn evaluate(set: &LabelledSet, rule: &Rule) -> Result<Scores, KonnectorError> {
    let mut scores = Scores::default();
    for h in &set.households {
        let bad = |what: &str, doc: &Value| {
            KonnectorError::invalid_data(format!(
                "household {}: a {what} the matcher cannot read: {doc}",
                h.name
            ))
        };
        let bills: Vec<BillFacts> = h
            .bills
            .iter()
            .map(|d| {
                id_of(d)
                    .and_then(|id| bill_facts(id, d))
                    .ok_or_else(|| bad("bill", d))
            })
            .collect::<Result<_, _>>()?;
        let ops: Vec<OperationFacts> = h
            .operations
            .iter()
            .map(|d| {
                id_of(d)
                    .and_then(|id| operation_facts(id, d))
                    .ok_or_else(|| bad("operation", d))
            })
            .collect::<Result<_, _>>()?;
        let made: HashSet<(String, String)> = link(&bills, &ops, rule)
            .into_iter()
            .map(|l| (l.bill, l.operation))
            .collect();
        let truth: HashSet<(String, String)> = h
            .links
            .iter()
            .map(|p| (p.bill.clone(), p.operation.clone()))
            .collect();
        scores.true_positives += made.intersection(&truth).count() as u64;
        scores.false_positives += made.difference(&truth).count() as u64;
        scores.false_negatives += truth.difference(&made).count() as u64;
        scores.wrong.extend(made.difference(&truth).cloned());
        scores.missed.extend(truth.difference(&made).cloned());
        for (pairs, by_kind) in [
            (&h.links, &mut scores.links),
            (&h.decoys, &mut scores.decoys),
        ] {
            for p in pairs {
                let k = by_kind.entry(p.kind.clone()).or_default();
                k.pairs += 1;
                if made.contains(&(p.bill.clone(), p.operation.clone())) {
                    k.linked += 1;
                }
            }
        }
    }
    scores.wrong.sort();
    scores.missed.sort();
    Ok(scores)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bank::linking::CozyIdentifiers;

    fn set() -> LabelledSet {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/linking/labelled.json"
        );
        LabelledSet::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The improved rule's floor on the labelled set, and never worse than
    /// Cozy's rule (with its vendor-name identifiers or with Gleaner's
    /// aliases).
    #[test]
    fn the_scored_rule_beats_cozys_on_the_labelled_set() {
        let set = set();
        assert!(set.pairs() >= 200, "{} pairs", set.pairs());
        let scored = evaluate(&set, &Rule::scored()).unwrap();
        for cozy in [
            Rule::Cozy(CozyIdentifiers::VendorName),
            Rule::Cozy(CozyIdentifiers::Aliases),
        ] {
            let c = evaluate(&set, &cozy).unwrap();
            assert!(scored.precision() >= c.precision(), "{scored:?} {c:?}");
            assert!(scored.recall() >= c.recall(), "{scored:?} {c:?}");
        }
        assert!(scored.precision() >= 0.98, "{scored:?}");
        assert!(scored.recall() >= 0.95, "{scored:?}");
        // No decoy of any kind is linked.
        for (kind, k) in &scored.decoys {
            assert_eq!(k.linked, 0, "decoy {kind}: {scored:?}");
        }
    }
}
