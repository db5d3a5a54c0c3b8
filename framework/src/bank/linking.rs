//! Linking bills to the bank operations that paid them.
//!
//! A bill (`io.cozy.bills`, from any konnector) is paid by a **debit**; a
//! health-cost refund (a bill with `isRefund`) arrives as a **credit**.
//! This module finds those pairs. It is pure: facts in, links out. The pass
//! that reads the store and writes the links is
//! [`crate::store::DocStore::link_bills_and_operations`].
//!
//! Two rules are implemented, so that they can be measured against each
//! other on the labelled set of `fixtures/linking/` (see [`evaluation`]):
//!
//! - [`Rule::Cozy`], the baseline: Cozy's `linkBankOperations` as
//!   cozy-konnector-libs implements it. Each bill, on its own, takes the
//!   operations whose amount is the bill's within ±0.001 (debits:
//!   `-(originalAmount || amount)`; credits of refunds: `groupAmount ||
//!   amount`), dated from 15 days before to 29 days after the bill
//!   (`originalDate || date` for debits), whose lowercased label contains
//!   one of the konnector's identifiers; it keeps the one with the lowest
//!   `0.7 × days apart + 0.3 × amount difference`. Health bills (Cozy's
//!   list of health vendors) look for their debit without identifiers but
//!   only among operations categorized as health expenses: Gleaner's
//!   operations carry no category, so for them only the credit search
//!   applies. Nothing stops two bills from taking the same operation.
//! - [`Rule::Scored`], Gleaner's: every (bill, operation) pair that passes
//!   the gates (sign, currency, amount within a cent, date window) gets a
//!   score in `[0, 1]` from four pieces of evidence: the vendor named in
//!   the label (through [`VENDORS`], a table of aliases), a contract or
//!   invoice reference of the bill found in the label, how close the dates
//!   are, and how exact the amount is. Pairs under
//!   [`Tuning::threshold`] are dropped; the rest are assigned **one to
//!   one**, best score first, so a debit pays one bill and a bill is paid
//!   once. A label that names another contract of the same vendor rules the
//!   pair out. Health refunds that the insurer paid in one transfer
//!   (bills sharing a `groupAmount`) are matched as one group.
//!
//! Pending operations (`isComing`) are never linked: they may vanish or
//! change when booked; the booked operation is linked instead.

pub mod evaluation;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;

/// The doctype of bills.
pub const BILLS: &str = "io.cozy.bills";
/// The doctype of bank operations.
pub const OPERATIONS: &str = "io.cozy.bank.operations";

/// What the matcher knows of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct BillFacts {
    /// The bill's document id.
    pub id: String,
    /// `vendor`, as the konnector wrote it.
    pub vendor: String,
    /// `date` (the day).
    pub date: NaiveDate,
    /// `amount`, positive.
    pub amount: Decimal,
    /// `currency`, when given.
    pub currency: Option<String>,
    /// `isRefund`: the amount is paid to the user (a credit).
    pub is_refund: bool,
    /// `isThirdPartyPayer`: someone else paid, no operation to find.
    pub third_party_payer: bool,
    /// `originalDate`: for a refund, the date of the expense.
    pub original_date: Option<NaiveDate>,
    /// `originalAmount`: for a refund, the amount of the expense.
    pub original_amount: Option<Decimal>,
    /// `groupAmount`: the amount of the transfer that paid several refunds.
    pub group_amount: Option<Decimal>,
    /// `contractId` and `vendorRef`, as given.
    pub references: Vec<String>,
}

/// What the matcher knows of a bank operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationFacts {
    /// The operation's document id.
    pub id: String,
    /// `label`.
    pub label: String,
    /// `originalBankLabel`, when the bank gave a raw label too.
    pub original_label: Option<String>,
    /// `date` (the day).
    pub date: NaiveDate,
    /// `amount`, signed: negative for debits.
    pub amount: Decimal,
    /// `currency`, when given.
    pub currency: Option<String>,
    /// `isComing`: pending, not booked yet.
    pub is_coming: bool,
}

/// A bill linked to an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The bill's id.
    pub bill: String,
    /// The operation's id.
    pub operation: String,
    /// The pair's score (for [`Rule::Cozy`]: `1 / (1 + Cozy's distance)`).
    pub score: f64,
}

/// Which labels Cozy's rule looks for in an operation's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CozyIdentifiers {
    /// The bill's vendor name, lowercased (what a konnector that passes
    /// its own name as `identifiers` gets).
    VendorName,
    /// The vendor name plus every alias of [`VENDORS`]: Cozy's rule given
    /// Gleaner's alias table, to tell the aliases' share of the
    /// improvement from the scoring's.
    Aliases,
}

/// The weights and limits of [`Rule::Scored`].
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Weight of the vendor evidence (an alias in the label).
    pub vendor: f64,
    /// Weight of a contract or invoice reference found in the label.
    pub reference: f64,
    /// Weight of the date distance.
    pub date: f64,
    /// Weight of the amount's exactness.
    pub amount: f64,
    /// What a weak alias (shared by two vendors, or generic) is worth,
    /// against 1 for a strong one.
    pub weak_alias: f64,
    /// Pairs scoring under this are never linked.
    pub threshold: f64,
    /// How many days before the bill's date its operation may be.
    pub days_before: i64,
    /// How many days after the bill's date its operation may be.
    pub days_after: i64,
    /// Amounts this close are exact.
    pub exact: Decimal,
    /// Amounts this close are a rounding of each other (a bill computed to
    /// the tenth of a cent, paid to the cent); further apart, no match.
    pub rounding: Decimal,
}

impl Default for Tuning {
    /// The weights Gleaner uses. They were set by reasoning about the
    /// evidence (a vendor alias alone, with exact amount and close dates,
    /// is enough; a reference alone is enough; nothing else is), not fitted
    /// to the labelled set.
    fn default() -> Self {
        Self {
            vendor: 0.40,
            reference: 0.25,
            date: 0.20,
            amount: 0.15,
            weak_alias: 0.7,
            threshold: 0.60,
            days_before: 15,
            days_after: 40,
            exact: Decimal::new(1, 3),
            rounding: Decimal::new(1, 2),
        }
    }
}

/// A matching rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Cozy's `linkBankOperations` (the baseline).
    Cozy(CozyIdentifiers),
    /// Gleaner's scored, one-to-one rule.
    Scored(Tuning),
}

impl Rule {
    /// Cozy's rule with the vendor name as identifier.
    pub fn cozy() -> Self {
        Self::Cozy(CozyIdentifiers::VendorName)
    }

    /// Gleaner's rule with its default [`Tuning`].
    pub fn scored() -> Self {
        Self::Scored(Tuning::default())
    }
}

/// How a vendor bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorRole {
    /// Its bills are paid by debits (and its refunds come as credits).
    Biller,
    /// It never takes the user's money: nothing is linked to its bills.
    /// Enedis runs the grid; consumption is billed by the supplier (EDF,
    /// Engie ...), so an Enedis document is never what a debit paid.
    NotABiller,
}

/// A vendor of the alias table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorAliases {
    /// The names a bill's `vendor` may have (normalized, see [`normalize`]).
    pub names: &'static [&'static str],
    /// Words in a bank label that name this vendor alone.
    pub strong: &'static [&'static str],
    /// Words in a bank label that may name this vendor or another (a
    /// parent company, a generic prefix).
    pub weak: &'static [&'static str],
    /// How it bills.
    pub role: VendorRole,
}

/// The alias table: how vendors appear in bank labels (normalized, whole
/// words). A vendor missing here is looked for by its own name.
pub const VENDORS: &[VendorAliases] = &[
    VendorAliases {
        names: &["free mobile", "freemobile"],
        strong: &["free mobile", "freemobile"],
        weak: &["free telecom", "prlv sepa free"],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["free", "freebox", "free telecom"],
        strong: &["free telecom", "freebox", "free box"],
        weak: &["prlv sepa free"],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["edf", "edf particuliers", "electricite de france"],
        strong: &["edf", "e d f", "electricite de france"],
        weak: &[],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["enedis"],
        strong: &["enedis"],
        weak: &[],
        role: VendorRole::NotABiller,
    },
    VendorAliases {
        names: &["engie"],
        strong: &["engie"],
        weak: &["gdf suez"],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["totalenergies", "total energies", "total direct energie"],
        strong: &["totalenergies", "total energies", "total direct energie"],
        weak: &["direct energie"],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["orange", "sosh"],
        strong: &["orange", "sosh", "orange sa"],
        weak: &[],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["sfr", "red by sfr"],
        strong: &["sfr", "s f r", "red by sfr"],
        weak: &[],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["bouygues telecom", "bouygues"],
        strong: &["bouygues telecom", "bouygtel", "bbox"],
        weak: &["bouygues"],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["ameli", "cpam", "assurance maladie"],
        strong: &[
            "ameli",
            "cpam",
            "c p a m",
            "assurance maladie",
            "caisse primaire",
        ],
        weak: &[],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["harmonie", "harmonie mutuelle"],
        strong: &["harmonie mutuelle"],
        weak: &["harmonie"],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["alan", "alan sa"],
        strong: &["alan sa", "alan insurance"],
        weak: &["alan"],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["mgen"],
        strong: &["mgen"],
        weak: &[],
        role: VendorRole::Biller,
    },
    VendorAliases {
        names: &["veolia", "veolia eau"],
        strong: &["veolia"],
        weak: &[],
        role: VendorRole::Biller,
    },
];

/// Cozy's health vendors (`HEALTH_VENDORS` in cozy-konnector-libs).
const COZY_HEALTH_VENDORS: &[&str] = &[
    "Ameli",
    "Harmonie",
    "Malakoff Mederic",
    "MGEN",
    "Generali",
    "ascoreSante",
    "EoviMCD",
    "Humanis",
    "Alan",
    "lamutuellegenerale",
];

/// Lowercases, folds French accents, turns every run of other characters
/// than letters and digits into one space, and trims: `"PRLV SEPA E.D.F."`
/// becomes `"prlv sepa e d f"`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        let folded: &str = match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' => "a",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'î' | 'ï' | 'í' => "i",
            'ô' | 'ö' | 'ó' => "o",
            'ù' | 'û' | 'ü' | 'ú' => "u",
            'ç' => "c",
            'ÿ' => "y",
            'ñ' => "n",
            'œ' => "oe",
            'æ' => "ae",
            _ => "",
        };
        if !folded.is_empty() {
            out.push_str(folded);
            space = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Letters and digits only, lowercased: how references are compared
/// (`"06 12 34 56 78"` and `"0612345678"` agree).
fn compact(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// The alias table's entry for a bill's vendor: the entry with this
/// name, else the one whose longest name is in the vendor's as whole words
/// (`Free Mobile SAS` is Free Mobile, `EDF SA` is EDF).
pub fn vendor_entry(vendor: &str) -> Option<&'static VendorAliases> {
    let name = normalize(vendor);
    if let Some(v) = VENDORS.iter().find(|v| v.names.contains(&name.as_str())) {
        return Some(v);
    }
    VENDORS
        .iter()
        .filter_map(|v| {
            v.names
                .iter()
                .filter(|n| has_words(&name, n))
                .map(|n| n.len())
                .max()
                .map(|len| (len, v))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, v)| v)
}

/// Whether `phrase` (normalized) is in `label` (normalized) as whole words.
fn has_words(label: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return false;
    }
    label.match_indices(phrase).any(|(at, _)| {
        let before = at == 0 || label.as_bytes().get(at - 1) == Some(&b' ');
        let end = at + phrase.len();
        let after = end == label.len() || label.as_bytes().get(end) == Some(&b' ');
        before && after
    })
}

/// The references of a bill worth finding in a label: at least 6
/// characters with a digit (a phone number, a contract or invoice number),
/// compacted; a French phone number also in its international form.
fn reference_tokens(references: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for r in references {
        let c = compact(r);
        if c.len() < 6 || !c.chars().any(|ch| ch.is_ascii_digit()) {
            continue;
        }
        if c.len() == 10
            && c.starts_with('0')
            && c.chars().all(|ch| ch.is_ascii_digit())
            && let Some(rest) = c.get(1..)
        {
            out.push(format!("33{rest}"));
        }
        out.push(c);
    }
    out.sort();
    out.dedup();
    out
}

fn days(from: NaiveDate, to: NaiveDate) -> i64 {
    (to - from).num_days()
}

fn cents(amount: Decimal) -> Option<i64> {
    (amount.abs() * Decimal::ONE_HUNDRED).round().to_i64()
}

/// A JSON amount (number or string) in cents, without sign: what
/// [`candidate_cents`] holds.
pub fn cents_of(amount: &Value) -> Option<i64> {
    decimal_of(amount).and_then(cents)
}

/// The amounts, in cents and without sign, an operation must have to be a
/// candidate for one of `bills` under either rule (amount, original
/// amount, group amount, a cent either side); sorted, no duplicates.
pub fn candidate_cents(bills: &[BillFacts]) -> Vec<i64> {
    let mut out: Vec<i64> = bills
        .iter()
        .flat_map(|b| [Some(b.amount), b.original_amount, b.group_amount])
        .flatten()
        .filter_map(cents)
        .flat_map(|c| [c - 1, c, c + 1])
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Finds the links `rule` makes between `bills` and `operations`.
///
/// The result is sorted by bill id, then operation id; it depends only on
/// the facts, not on their order.
pub fn link(bills: &[BillFacts], operations: &[OperationFacts], rule: &Rule) -> Vec<Link> {
    let mut bills: Vec<&BillFacts> = bills.iter().collect();
    bills.sort_by(|a, b| a.id.cmp(&b.id));
    let mut ops: Vec<&OperationFacts> = operations.iter().filter(|o| !o.is_coming).collect();
    ops.sort_by(|a, b| a.id.cmp(&b.id));
    let index = AmountIndex::new(&ops);
    let mut links = match rule {
        Rule::Cozy(identifiers) => cozy(&bills, &ops, &index, *identifiers),
        Rule::Scored(tuning) => scored(&bills, &ops, &index, tuning),
    };
    links.sort_by(|a, b| (&a.bill, &a.operation).cmp(&(&b.bill, &b.operation)));
    links
}

/// Operations by sign and amount in cents, for candidate lookups.
struct AmountIndex {
    by_cents: HashMap<(bool, i64), Vec<usize>>,
}

impl AmountIndex {
    fn new(ops: &[&OperationFacts]) -> Self {
        let mut by_cents: HashMap<(bool, i64), Vec<usize>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            if op.amount.is_zero() {
                continue;
            }
            if let Some(c) = cents(op.amount) {
                by_cents
                    .entry((op.amount.is_sign_positive(), c))
                    .or_default()
                    .push(i);
            }
        }
        Self { by_cents }
    }

    /// Operations of this sign within a cent of `amount` (a superset of
    /// the candidates: the caller checks the exact difference).
    fn near(&self, credit: bool, amount: Decimal) -> impl Iterator<Item = usize> + '_ {
        let c = cents(amount).unwrap_or(i64::MIN / 2);
        (c - 1..=c + 1)
            .filter_map(move |k| self.by_cents.get(&(credit, k)))
            .flatten()
            .copied()
    }
}

fn currencies_differ(bill: &BillFacts, op: &OperationFacts) -> bool {
    match (&bill.currency, &op.currency) {
        (Some(a), Some(b)) => !a.trim().eq_ignore_ascii_case(b.trim()),
        _ => false,
    }
}

// ---------------------------------------------------------------- Cozy

fn cozy(
    bills: &[&BillFacts],
    ops: &[&OperationFacts],
    index: &AmountIndex,
    identifiers: CozyIdentifiers,
) -> Vec<Link> {
    let delta = Decimal::new(1, 3);
    let mut links = Vec::new();
    for bill in bills {
        if bill.third_party_payer {
            continue;
        }
        let idents: Vec<String> = {
            let mut v = vec![bill.vendor.to_lowercase()];
            if identifiers == CozyIdentifiers::Aliases
                && let Some(entry) = vendor_entry(&bill.vendor)
            {
                v.extend(entry.strong.iter().chain(entry.weak).map(|s| s.to_string()));
            }
            v
        };
        let health = COZY_HEALTH_VENDORS.contains(&bill.vendor.as_str());
        let label_ok = |op: &OperationFacts| {
            let label = op.label.to_lowercase();
            idents.iter().any(|i| label.contains(i.as_str()))
        };
        // The debit: health bills would need health-categorized operations,
        // which Gleaner's operations are not.
        if !health {
            let amount = bill.original_amount.unwrap_or(bill.amount);
            let date = bill.original_date.unwrap_or(bill.date);
            if let Some(op) = cozy_best(ops, index, false, amount, date, delta, &label_ok) {
                links.push(Link {
                    bill: bill.id.clone(),
                    operation: op.0.clone(),
                    score: op.1,
                });
            }
        }
        if bill.is_refund {
            let amount = bill.group_amount.unwrap_or(bill.amount);
            if let Some(op) = cozy_best(ops, index, true, amount, bill.date, delta, &label_ok) {
                links.push(Link {
                    bill: bill.id.clone(),
                    operation: op.0.clone(),
                    score: op.1,
                });
            }
        }
    }
    links
}

fn cozy_best(
    ops: &[&OperationFacts],
    index: &AmountIndex,
    credit: bool,
    amount: Decimal,
    date: NaiveDate,
    delta: Decimal,
    label_ok: &dyn Fn(&OperationFacts) -> bool,
) -> Option<(String, f64)> {
    let mut best: Option<(f64, &OperationFacts)> = None;
    let mut candidates: Vec<usize> = index.near(credit, amount).collect();
    // Cozy's sortBy is stable over the operations as fetched (id order).
    candidates.sort_unstable();
    for i in candidates {
        let Some(op) = ops.get(i) else { continue };
        let diff = (op.amount.abs() - amount).abs();
        let d = days(date, op.date);
        if diff > delta || !(-15..=29).contains(&d) || !label_ok(op) {
            continue;
        }
        let distance = 0.7 * d.abs() as f64 + 0.3 * diff.to_f64().unwrap_or(0.0);
        if best.is_none_or(|(b, _)| distance < b) {
            best = Some((distance, op));
        }
    }
    best.map(|(distance, op)| (op.id.clone(), 1.0 / (1.0 + distance)))
}

// -------------------------------------------------------------- Scored

/// A bill, or a group of refunds paid by one transfer.
struct Unit<'a> {
    bills: Vec<&'a BillFacts>,
    vendor: String,
    entry: Option<&'static VendorAliases>,
    date: NaiveDate,
    amount: Decimal,
    currency_of: &'a BillFacts,
    credit: bool,
    refs: Vec<String>,
}

fn units<'a>(bills: &[&'a BillFacts]) -> Vec<Unit<'a>> {
    let mut groups: BTreeMap<(String, NaiveDate, String), Vec<&'a BillFacts>> = BTreeMap::new();
    let mut out = Vec::new();
    for bill in bills {
        let entry = vendor_entry(&bill.vendor);
        if bill.third_party_payer || entry.is_some_and(|e| e.role == VendorRole::NotABiller) {
            continue;
        }
        match bill.group_amount {
            Some(g) if bill.is_refund && g != bill.amount => {
                groups
                    .entry((
                        normalize(&bill.vendor),
                        bill.date,
                        g.normalize().to_string(),
                    ))
                    .or_default()
                    .push(bill);
            }
            _ => out.push(Unit {
                bills: vec![bill],
                vendor: bill.vendor.clone(),
                entry,
                date: bill.date,
                amount: bill.amount,
                currency_of: bill,
                credit: bill.is_refund,
                refs: reference_tokens(&bill.references),
            }),
        }
    }
    for (_, members) in groups {
        let Some(first) = members.first().copied() else {
            continue;
        };
        let refs: Vec<String> = members.iter().flat_map(|b| b.references.clone()).collect();
        out.push(Unit {
            vendor: first.vendor.clone(),
            entry: vendor_entry(&first.vendor),
            date: first.date,
            amount: first.group_amount.unwrap_or(first.amount),
            currency_of: first,
            credit: true,
            refs: reference_tokens(&refs),
            bills: members,
        });
    }
    out
}

/// A label prepared for matching: normalized words and compacted text.
struct Label {
    words: String,
    compact: String,
}

impl Label {
    fn of(op: &OperationFacts) -> Self {
        let mut text = op.label.clone();
        if let Some(original) = &op.original_label {
            text.push(' ');
            text.push_str(original);
        }
        Self {
            words: normalize(&text),
            compact: compact(&text),
        }
    }
}

fn vendor_evidence(unit: &Unit<'_>, label: &Label, tuning: &Tuning) -> f64 {
    match unit.entry {
        Some(entry) => {
            if entry.strong.iter().any(|a| has_words(&label.words, a)) {
                1.0
            } else if entry.weak.iter().any(|a| has_words(&label.words, a)) {
                tuning.weak_alias
            } else {
                0.0
            }
        }
        None => {
            if has_words(&label.words, &normalize(&unit.vendor)) {
                1.0
            } else {
                0.0
            }
        }
    }
}

fn date_evidence(d: i64, tuning: &Tuning) -> f64 {
    if d < 0 {
        let before = tuning.days_before.max(1) as f64;
        0.8 - 0.5 * (-d) as f64 / before
    } else if d <= 7 {
        1.0
    } else {
        let span = (tuning.days_after - 7).max(1) as f64;
        1.0 - 0.6 * (d - 7) as f64 / span
    }
}

/// One scored pair.
struct Candidate {
    unit: usize,
    op: usize,
    score: f64,
    days: i64,
}

fn scored(
    bills: &[&BillFacts],
    ops: &[&OperationFacts],
    index: &AmountIndex,
    tuning: &Tuning,
) -> Vec<Link> {
    let units = units(bills);
    // Every reference of each vendor, to spot a label naming another
    // contract of the same vendor.
    let mut vendor_refs: HashMap<String, HashSet<&str>> = HashMap::new();
    for u in &units {
        let set = vendor_refs.entry(normalize(&u.vendor)).or_default();
        set.extend(u.refs.iter().map(String::as_str));
    }
    let mut labels: HashMap<usize, Label> = HashMap::new();
    let mut candidates = Vec::new();
    for (ui, unit) in units.iter().enumerate() {
        let mut near: Vec<usize> = index.near(unit.credit, unit.amount).collect();
        near.sort_unstable();
        for oi in near {
            let Some(op) = ops.get(oi) else { continue };
            let diff = (op.amount.abs() - unit.amount).abs();
            let d = days(unit.date, op.date);
            if diff > tuning.rounding
                || d < -tuning.days_before
                || d > tuning.days_after
                || currencies_differ(unit.currency_of, op)
            {
                continue;
            }
            let label = labels.entry(oi).or_insert_with(|| Label::of(op));
            let own = unit.refs.iter().any(|r| label.compact.contains(r.as_str()));
            let other = !own
                && vendor_refs
                    .get(&normalize(&unit.vendor))
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| !unit.refs.iter().any(|o| o == r) && label.compact.contains(r))
                    });
            if other {
                continue;
            }
            let amount = if diff <= tuning.exact { 1.0 } else { 0.5 };
            let score = tuning.vendor * vendor_evidence(unit, label, tuning)
                + tuning.reference * if own { 1.0 } else { 0.0 }
                + tuning.date * date_evidence(d, tuning)
                + tuning.amount * amount;
            if score + 1e-9 >= tuning.threshold {
                candidates.push(Candidate {
                    unit: ui,
                    op: oi,
                    score,
                    days: d,
                });
            }
        }
    }
    candidates.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(Ordering::Equal)
            .then(a.days.abs().cmp(&b.days.abs()))
            .then(a.unit.cmp(&b.unit))
            .then(a.op.cmp(&b.op))
    });
    let assigned = assign(&candidates, units.len(), ops.len());
    let mut links = Vec::new();
    for (ui, pick) in assigned.iter().enumerate() {
        let Some((oi, score)) = pick else { continue };
        let (Some(unit), Some(op)) = (units.get(ui), ops.get(*oi)) else {
            continue;
        };
        for bill in &unit.bills {
            links.push(Link {
                bill: bill.id.clone(),
                operation: op.id.clone(),
                score: *score,
            });
        }
    }
    links
}

/// The one-to-one assignment: best score first (candidates come sorted),
/// then two links are swapped whenever the swap raises their total score,
/// or keeps it and brings the dates closer (sum of squared days): a
/// debit paid late and the next month's debit of the same amount are not
/// crossed. Returns each unit's operation and score.
fn assign(candidates: &[Candidate], units: usize, ops: usize) -> Vec<Option<(usize, f64)>> {
    let mut by_unit: Vec<Option<(usize, f64)>> = vec![None; units];
    let mut by_op: Vec<Option<usize>> = vec![None; ops];
    let mut pairs: HashMap<(usize, usize), (f64, i64)> = HashMap::new();
    let mut of_unit: HashMap<usize, Vec<usize>> = HashMap::new();
    for c in candidates {
        pairs.insert((c.unit, c.op), (c.score, c.days));
        of_unit.entry(c.unit).or_default().push(c.op);
        if by_unit[c.unit].is_none() && by_op[c.op].is_none() {
            by_unit[c.unit] = Some((c.op, c.score));
            by_op[c.op] = Some(c.unit);
        }
    }
    // Each swap raises (total score, -total squared days) strictly, so this
    // ends; the bound only guards against float ties.
    for _ in 0..32 {
        let mut swapped = false;
        for u1 in 0..units {
            let Some((o1, _)) = by_unit[u1] else { continue };
            for &o2 in of_unit.get(&u1).map(Vec::as_slice).unwrap_or_default() {
                let Some(u2) = by_op[o2] else { continue };
                if u2 == u1 {
                    continue;
                }
                let (Some(a), Some(b), Some(c), Some(d)) = (
                    pairs.get(&(u1, o1)),
                    pairs.get(&(u2, o2)),
                    pairs.get(&(u1, o2)),
                    pairs.get(&(u2, o1)),
                ) else {
                    continue;
                };
                let now = a.0 + b.0;
                let then = c.0 + d.0;
                let sq = |x: i64| x * x;
                let better = then > now + 1e-9
                    || ((then - now).abs() <= 1e-9 && sq(c.1) + sq(d.1) < sq(a.1) + sq(b.1));
                if better {
                    by_unit[u1] = Some((o2, c.0));
                    by_unit[u2] = Some((o1, d.0));
                    by_op[o2] = Some(u1);
                    by_op[o1] = Some(u2);
                    swapped = true;
                    break;
                }
            }
        }
        if !swapped {
            break;
        }
    }
    by_unit
}

// ------------------------------------------------------ JSON documents

fn day_of(value: &Value) -> Option<NaiveDate> {
    let text = value.as_str()?;
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a stored `io.cozy.bills` document; `None` when it lacks a
/// vendor, a date or an amount the matcher can use.
pub fn bill_facts(id: &str, doc: &Value) -> Option<BillFacts> {
    let vendor = doc.get("vendor").and_then(text_of)?;
    let date = doc.get("date").and_then(day_of)?;
    let amount = doc.get("amount").and_then(decimal_of)?;
    let references = ["contractId", "vendorRef"]
        .iter()
        .filter_map(|k| doc.get(*k).and_then(text_of))
        .collect();
    Some(BillFacts {
        id: id.to_owned(),
        vendor,
        date,
        amount: amount.abs(),
        currency: doc.get("currency").and_then(text_of),
        is_refund: doc.get("isRefund").and_then(Value::as_bool) == Some(true),
        third_party_payer: doc.get("isThirdPartyPayer").and_then(Value::as_bool) == Some(true),
        original_date: doc.get("originalDate").and_then(day_of),
        original_amount: doc.get("originalAmount").and_then(decimal_of),
        group_amount: doc.get("groupAmount").and_then(decimal_of),
        references,
    })
}

/// Reads a stored `io.cozy.bank.operations` document; `None` when it lacks
/// a label, a date or an amount.
pub fn operation_facts(id: &str, doc: &Value) -> Option<OperationFacts> {
    Some(OperationFacts {
        id: id.to_owned(),
        label: doc.get("label").and_then(text_of)?,
        original_label: doc.get("originalBankLabel").and_then(text_of),
        date: doc.get("date").and_then(day_of)?,
        amount: doc.get("amount").and_then(decimal_of)?,
        currency: doc.get("currency").and_then(text_of),
        is_coming: doc.get("isComing").and_then(Value::as_bool) == Some(true),
    })
}

/// The prefix of the entries of an operation's `bills`.
const BILL_REF_PREFIX: &str = "io.cozy.bills:";

/// An operation's `bills` entry for a bill id: `io.cozy.bills:<id>`.
pub fn bill_ref(bill_id: &str) -> String {
    format!("{BILL_REF_PREFIX}{bill_id}")
}

/// The bill ids an operation's `bills` field holds (Cozy's
/// `["io.cozy.bills:<id>", ...]`), in the field's order.
pub fn operation_bills(doc: &Value) -> Vec<String> {
    doc.get("bills")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.strip_prefix(BILL_REF_PREFIX).unwrap_or(s).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The operation ids a bill's link back holds
/// (`relationships.bankOperations.data[]._id`).
pub fn bill_operations(doc: &Value) -> Vec<String> {
    doc.pointer("/relationships/bankOperations/data")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("_id").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Sets an operation's `bills` to these bill ids (removes the field when
/// there are none, as the doctype leaves it out when empty).
pub fn set_operation_bills(doc: &mut Value, bill_ids: &[String]) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    if bill_ids.is_empty() {
        obj.remove("bills");
    } else {
        obj.insert(
            "bills".to_owned(),
            Value::Array(
                bill_ids
                    .iter()
                    .map(|id| Value::String(bill_ref(id)))
                    .collect(),
            ),
        );
    }
}

/// Sets a bill's link back, `relationships.bankOperations.data`, to these
/// operation ids (removes it, and `relationships` if nothing else is in
/// it, when there are none). Other relationships are kept.
pub fn set_bill_operations(doc: &mut Value, operation_ids: &[String]) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    if operation_ids.is_empty() {
        let empty = match obj.get_mut("relationships").and_then(Value::as_object_mut) {
            Some(rel) => {
                rel.remove("bankOperations");
                rel.is_empty()
            }
            None => false,
        };
        if empty {
            obj.remove("relationships");
        }
        return;
    }
    let data: Vec<Value> = operation_ids
        .iter()
        .map(|id| serde_json::json!({"_id": id, "_type": OPERATIONS}))
        .collect();
    let rel = obj
        .entry("relationships")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !rel.is_object() {
        *rel = Value::Object(serde_json::Map::new());
    }
    if let Some(rel) = rel.as_object_mut() {
        rel.insert(
            "bankOperations".to_owned(),
            serde_json::json!({ "data": data }),
        );
    }
}

/// A stored bill as the pass sees it: its facts and its current link back.
#[derive(Debug, Clone)]
pub struct StoredBill {
    /// The facts.
    pub facts: BillFacts,
    /// The operation ids its link back holds now.
    pub linked: Vec<String>,
}

/// A stored operation as the pass sees it.
#[derive(Debug, Clone)]
pub struct StoredOperation {
    /// The facts.
    pub facts: OperationFacts,
    /// The bill ids its `bills` holds now.
    pub linked: Vec<String>,
}

/// What the pass must write: only the documents whose links change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkPlan {
    /// Operation id → its new `bills` (bill ids, sorted).
    pub operations: Vec<(String, Vec<String>)>,
    /// Bill id → its new link back (operation ids, sorted).
    pub bills: Vec<(String, Vec<String>)>,
    /// How many (bill, operation) links there are after the pass.
    pub links: u64,
}

/// Computes the links with `rule` and what must change in the stored
/// documents to hold exactly them (the pass owns the operations' `bills`
/// and the bills' `relationships.bankOperations`). A second plan over the
/// written documents is empty.
pub fn plan(bills: &[StoredBill], operations: &[StoredOperation], rule: &Rule) -> LinkPlan {
    let bill_facts: Vec<BillFacts> = bills.iter().map(|b| b.facts.clone()).collect();
    let op_facts: Vec<OperationFacts> = operations.iter().map(|o| o.facts.clone()).collect();
    let links = link(&bill_facts, &op_facts, rule);
    let mut by_op: HashMap<&str, Vec<String>> = HashMap::new();
    let mut by_bill: HashMap<&str, Vec<String>> = HashMap::new();
    for l in &links {
        by_op
            .entry(l.operation.as_str())
            .or_default()
            .push(l.bill.clone());
        by_bill
            .entry(l.bill.as_str())
            .or_default()
            .push(l.operation.clone());
    }
    let mut out = LinkPlan {
        links: links.len() as u64,
        ..LinkPlan::default()
    };
    for op in operations {
        let mut want = by_op.remove(op.facts.id.as_str()).unwrap_or_default();
        want.sort();
        want.dedup();
        if op.linked != want {
            out.operations.push((op.facts.id.clone(), want));
        }
    }
    for bill in bills {
        let mut want = by_bill.remove(bill.facts.id.as_str()).unwrap_or_default();
        want.sort();
        want.dedup();
        if bill.linked != want {
            out.bills.push((bill.facts.id.clone(), want));
        }
    }
    out.operations.sort();
    out.bills.sort();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn bill(id: &str, vendor: &str, date: &str, amount: &str) -> BillFacts {
        BillFacts {
            id: id.into(),
            vendor: vendor.into(),
            date: day(date),
            amount: amount.parse().unwrap(),
            currency: Some("EUR".into()),
            is_refund: false,
            third_party_payer: false,
            original_date: None,
            original_amount: None,
            group_amount: None,
            references: vec![],
        }
    }

    fn op(id: &str, label: &str, date: &str, amount: &str) -> OperationFacts {
        OperationFacts {
            id: id.into(),
            label: label.into(),
            original_label: None,
            date: day(date),
            amount: amount.parse().unwrap(),
            currency: Some("EUR".into()),
            is_coming: false,
        }
    }

    fn pairs(links: &[Link]) -> Vec<(&str, &str)> {
        links
            .iter()
            .map(|l| (l.bill.as_str(), l.operation.as_str()))
            .collect()
    }

    #[test]
    fn normalize_folds_case_accents_and_punctuation() {
        assert_eq!(normalize("PRLV SEPA E.D.F. "), "prlv sepa e d f");
        assert_eq!(normalize("Électricité  de-France"), "electricite de france");
        assert!(has_words("prlv sepa free mobile", "free mobile"));
        assert!(!has_words("prlv sepa freebox", "free"));
        assert!(!has_words("prlv sepa free mobile", "mobil"));
    }

    #[test]
    fn both_rules_link_a_plain_direct_debit() {
        let bills = [bill("b1", "Free Mobile", "2025-12-02", "19.99")];
        let ops = [
            op("o1", "PRLV SEPA FREE MOBILE", "2025-12-04", "-19.99"),
            op("o2", "CB CARREFOUR", "2025-12-04", "-19.99"),
        ];
        for rule in [Rule::cozy(), Rule::scored()] {
            assert_eq!(
                pairs(&link(&bills, &ops, &rule)),
                [("b1", "o1")],
                "{rule:?}"
            );
        }
    }

    #[test]
    fn aliases_find_labels_cozy_misses_and_enedis_is_never_linked() {
        let bills = [
            bill("edf", "EDF", "2025-11-10", "84.00"),
            bill("ene", "Enedis", "2025-11-10", "45.00"),
        ];
        let ops = [
            op("o1", "PRLV SEPA E.D.F. CLIENTS", "2025-11-20", "-84.00"),
            op(
                "o2",
                "PRLV SEPA ENEDIS RACCORDEMENT",
                "2025-11-12",
                "-45.00",
            ),
        ];
        assert_eq!(pairs(&link(&bills, &ops, &Rule::cozy())), [("ene", "o2")]);
        assert_eq!(pairs(&link(&bills, &ops, &Rule::scored())), [("edf", "o1")]);
    }

    #[test]
    fn one_debit_pays_one_bill_the_closest() {
        // Two bills of the same amount, one debit: Cozy links both.
        let bills = [
            bill("nov", "Free Mobile", "2025-11-20", "19.99"),
            bill("dec", "Free Mobile", "2025-12-02", "19.99"),
        ];
        let ops = [op("o1", "PRLV SEPA FREE MOBILE", "2025-12-04", "-19.99")];
        assert_eq!(
            pairs(&link(&bills, &ops, &Rule::cozy())),
            [("dec", "o1"), ("nov", "o1")]
        );
        assert_eq!(pairs(&link(&bills, &ops, &Rule::scored())), [("dec", "o1")]);
    }

    #[test]
    fn contract_references_pick_the_right_line_and_rule_out_the_other() {
        let mut a = bill("a", "Free Mobile", "2025-12-02", "19.99");
        a.references = vec!["0612345678".into()];
        let mut b = bill("b", "Free Mobile", "2025-12-02", "19.99");
        b.references = vec!["0798765432".into()];
        let ops = [
            op(
                "o1",
                "PRLV SEPA FREE MOBILE 0798765432",
                "2025-12-03",
                "-19.99",
            ),
            op(
                "o2",
                "PRLV SEPA FREE MOBILE 0612345678",
                "2025-12-04",
                "-19.99",
            ),
        ];
        let bills = [a, b];
        assert_eq!(
            pairs(&link(&bills, &ops, &Rule::scored())),
            [("a", "o2"), ("b", "o1")]
        );
        // Without its own debit, bill a never takes the other line's,
        // even once line b's bill has been paid by it.
        let only = [op(
            "o1",
            "PRLV SEPA FREE MOBILE 0798765432",
            "2025-12-03",
            "-19.99",
        )];
        assert_eq!(pairs(&link(&bills, &only, &Rule::scored())), [("b", "o1")]);
        let mut b_paid_elsewhere = bills.to_vec();
        b_paid_elsewhere[1].date = day("2025-10-02");
        assert!(link(&b_paid_elsewhere, &only, &Rule::scored()).is_empty());
    }

    #[test]
    fn refunds_match_credits_and_bills_never_do() {
        let mut refund = bill("r", "Ameli", "2025-10-01", "16.50");
        refund.is_refund = true;
        let plain = bill("p", "Free Mobile", "2025-10-01", "16.50");
        let ops = [
            op("c1", "VIR SEPA CPAM PARIS", "2025-10-03", "16.50"),
            op("c2", "REMBOURSEMENT FREE MOBILE", "2025-10-03", "16.50"),
        ];
        assert_eq!(
            pairs(&link(
                &[refund.clone(), plain.clone()],
                &ops,
                &Rule::scored()
            )),
            [("r", "c1")]
        );
        // Cozy: "ameli" is not in "vir sepa cpam paris".
        assert!(link(&[refund, plain], &ops, &Rule::cozy()).is_empty());
    }

    #[test]
    fn grouped_refunds_share_their_transfer() {
        let mut a = bill("a", "Ameli", "2025-10-01", "16.50");
        a.is_refund = true;
        a.group_amount = Some("23.50".parse().unwrap());
        let mut b = a.clone();
        b.id = "b".into();
        b.amount = "7.00".parse().unwrap();
        let ops = [op("c", "VIR CPAM DE LYON", "2025-10-04", "23.50")];
        assert_eq!(
            pairs(&link(&[a, b], &ops, &Rule::scored())),
            [("a", "c"), ("b", "c")]
        );
    }

    #[test]
    fn the_threshold_drops_weak_evidence_and_pending_operations_wait() {
        let bills = [bill("b", "Free Mobile", "2025-12-02", "19.99")];
        // A weak alias, 30 days late: under the threshold.
        let late = [op("o", "PRLV SEPA FREE TELECOM", "2026-01-01", "-19.99")];
        assert!(link(&bills, &late, &Rule::scored()).is_empty());
        // The same with a strong alias is linked.
        let late = [op("o", "PRLV SEPA FREE MOBILE", "2026-01-01", "-19.99")];
        assert_eq!(link(&bills, &late, &Rule::scored()).len(), 1);
        let mut pending = op("o", "PRLV SEPA FREE MOBILE", "2025-12-03", "-19.99");
        pending.is_coming = true;
        assert!(link(&bills, &[pending], &Rule::scored()).is_empty());
    }

    #[test]
    fn amounts_a_cent_apart_are_a_rounding_further_apart_no_match() {
        let bills = [bill("b", "EDF", "2025-12-02", "42.345")];
        let ops = [op("o", "PRLV SEPA EDF", "2025-12-12", "-42.35")];
        assert_eq!(link(&bills, &ops, &Rule::scored()).len(), 1);
        assert!(link(&bills, &ops, &Rule::cozy()).is_empty());
        let ops = [op("o", "PRLV SEPA EDF", "2025-12-12", "-42.40")];
        assert!(link(&bills, &ops, &Rule::scored()).is_empty());
    }

    #[test]
    fn documents_are_read_and_written_with_cozy_field_names() {
        let doc = json!({"vendor": "Free Mobile", "date": "2025-12-02T00:00:00Z", "amount": 19.99,
            "currency": "EUR", "contractId": "0612345678", "vendorRef": "f1b1"});
        let b = bill_facts("b1", &doc).unwrap();
        assert_eq!(b.amount, "19.99".parse::<Decimal>().unwrap());
        assert_eq!(b.references, ["0612345678", "f1b1"]);
        assert!(bill_facts("x", &json!({"vendor": "V", "amount": 1})).is_none());
        let mut o = json!({"label": "PRLV", "date": "2025-12-04T00:00:00Z", "amount": -19.99});
        assert!(operation_facts("o1", &o).is_some());
        set_operation_bills(&mut o, &["b1".to_owned()]);
        assert_eq!(o["bills"], json!(["io.cozy.bills:b1"]));
        assert_eq!(operation_bills(&o), ["b1"]);
        set_operation_bills(&mut o, &[]);
        assert!(o.get("bills").is_none());
        let mut b = json!({"vendor": "V", "relationships": {"document": {"data": {"_id": "f"}}}});
        set_bill_operations(&mut b, &["o1".to_owned()]);
        assert_eq!(
            b["relationships"]["bankOperations"]["data"],
            json!([{"_id": "o1", "_type": "io.cozy.bank.operations"}])
        );
        assert_eq!(bill_operations(&b), ["o1"]);
        set_bill_operations(&mut b, &[]);
        assert_eq!(
            b["relationships"],
            json!({"document": {"data": {"_id": "f"}}})
        );
        let mut b = json!({"vendor": "V"});
        set_bill_operations(&mut b, &["o1".to_owned()]);
        set_bill_operations(&mut b, &[]);
        assert_eq!(b, json!({"vendor": "V"}));
    }

    #[test]
    fn a_plan_over_its_own_result_is_empty() {
        let bills = vec![StoredBill {
            facts: bill("b", "Free Mobile", "2025-12-02", "19.99"),
            linked: vec!["stale".into()],
        }];
        let ops = vec![
            StoredOperation {
                facts: op("o", "PRLV SEPA FREE MOBILE", "2025-12-04", "-19.99"),
                linked: vec![],
            },
            StoredOperation {
                facts: op("stale", "CB", "2025-12-04", "-5"),
                linked: vec!["b".into()],
            },
        ];
        let p = plan(&bills, &ops, &Rule::scored());
        assert_eq!(p.links, 1);
        assert_eq!(
            p.operations,
            [
                ("o".to_owned(), vec!["b".to_owned()]),
                ("stale".to_owned(), vec![])
            ]
        );
        assert_eq!(p.bills, [("b".to_owned(), vec!["o".to_owned()])]);
        let bills = vec![StoredBill {
            facts: bills[0].facts.clone(),
            linked: vec!["o".into()],
        }];
        let ops = vec![
            StoredOperation {
                facts: ops[0].facts.clone(),
                linked: vec!["b".into()],
            },
            StoredOperation {
                facts: ops[1].facts.clone(),
                linked: vec![],
            },
        ];
        assert_eq!(
            plan(&bills, &ops, &Rule::scored()),
            LinkPlan {
                links: 1,
                ..LinkPlan::default()
            }
        );
    }
}
