//! The sandbox bank's books, generated from `fixtures/nextgenpsd2/ledger.json`
//! (accounts, monthly rules, a card payment with a tip) and from the Free
//! Mobile sandbox's invoices (`fixtures/free-mobile/invoices.json`: one
//! SEPA direct debit per line invoice, 1 to 3 days after its date, for its
//! amount) and the Orange sandbox's (`fixtures/orange/bills.json`: each
//! bill's `debitDate` and `bankLabel`), so that `gleaner demo` links those
//! bills to their debits;
//! and the one-off credits of `ledger.json`'s `one_off` list: the health
//! refunds the Ameli and Alan sandboxes pay (their shared care data), and
//! EDF's yearly invoice debit and overpayment refund (`fixtures/edf/`).
//!
//! Everything is dated; what the bank shows depends on the sandbox's
//! clock: a booked transaction from its booking day on; the card payment
//! of each month is pending from its day for `booking_delay_days`, then
//! booked with another label and amount (the tip), under another id.

use chrono::{Datelike, NaiveDate, TimeDelta};
use rust_decimal::Decimal;
use serde::Deserialize;

const LEDGER: &str = include_str!("../../../../../fixtures/nextgenpsd2/ledger.json");
const FREE_MOBILE: &str = include_str!("../../../../../fixtures/free-mobile/invoices.json");
const ORANGE: &str = include_str!("../../../../../fixtures/orange/bills.json");

/// One account of the sandbox bank.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Its `resourceId`.
    pub resource_id: String,
    /// Its IBAN.
    pub iban: String,
    /// Its currency code.
    pub currency: String,
    /// Its name.
    pub name: String,
    /// The product.
    pub product: String,
    /// ISO 20022 account type.
    pub cash_account_type: String,
    /// The owner.
    pub owner_name: String,
    /// The balance before the first transaction.
    #[serde(with = "rust_decimal::serde::str")]
    pub opening_balance: Decimal,
}

/// One transaction and when the bank shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    /// Index of its account in [`Ledger::accounts`].
    pub account: usize,
    /// Its `transactionId`.
    pub id: String,
    /// Booked on this day; `None` for a pending authorisation.
    pub booked_on: Option<NaiveDate>,
    /// Its value date.
    pub value_date: NaiveDate,
    /// A pending one is shown from its value date until this day
    /// (exclusive), when its booked twin appears.
    pub pending_until: Option<NaiveDate>,
    /// The signed amount.
    pub amount: Decimal,
    /// Who is paid.
    pub creditor: Option<String>,
    /// Who pays.
    pub debtor: Option<String>,
    /// The payment's text.
    pub label: String,
    /// ISO 20022 bank transaction code.
    pub code: String,
    /// A direct debit's mandate.
    pub mandate: Option<String>,
}

impl Tx {
    /// Booked and shown on `today`.
    pub fn booked_by(&self, today: NaiveDate) -> bool {
        self.booked_on.is_some_and(|d| d <= today)
    }

    /// Pending on `today`.
    pub fn pending_on(&self, today: NaiveDate) -> bool {
        self.booked_on.is_none()
            && self.value_date <= today
            && self.pending_until.is_none_or(|until| today < until)
    }
}

/// The bank's books.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// The bank's name.
    pub institution: String,
    /// The PSU-ID it knows.
    pub psu_id: String,
    /// Its accounts.
    pub accounts: Vec<Account>,
    /// Every transaction, booked ones sorted by booking day (newest first).
    pub txs: Vec<Tx>,
}

#[derive(Deserialize)]
struct Rules {
    institution: String,
    psu_id: String,
    start: NaiveDate,
    end: NaiveDate,
    accounts: Vec<Account>,
    monthly: Vec<Monthly>,
    card_with_tip: CardWithTip,
    free_mobile: FreeMobileRule,
    #[serde(default)]
    one_off: Vec<OneOff>,
}

/// A transaction that happens once: the refunds of the Ameli and mutual
/// sandboxes' care events (the shared health data of their fixtures), so
/// that `gleaner demo` links those refunds to their credits.
#[derive(Deserialize)]
struct OneOff {
    account: usize,
    id: String,
    date: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    #[serde(default)]
    creditor: Option<String>,
    #[serde(default)]
    debtor: Option<String>,
    label: String,
    code: String,
}

#[derive(Deserialize)]
struct Monthly {
    account: usize,
    id: String,
    day: u32,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    #[serde(default)]
    creditor: Option<String>,
    #[serde(default)]
    debtor: Option<String>,
    label: String,
    code: String,
}

#[derive(Deserialize)]
struct CardWithTip {
    account: usize,
    id: String,
    day: u32,
    booking_delay_days: i64,
    creditor: String,
    #[serde(with = "rust_decimal::serde::str")]
    pending_amount: Decimal,
    pending_label: String,
    #[serde(with = "rust_decimal::serde::str")]
    booked_amount: Decimal,
    booked_label: String,
    code: String,
}

#[derive(Deserialize)]
struct FreeMobileRule {
    account: usize,
    id: String,
    creditor: String,
    label: String,
    delays_days: Vec<i64>,
    code: String,
}

#[derive(Deserialize)]
struct Invoices {
    invoices: Vec<Invoice>,
}

#[derive(Deserialize)]
struct Invoice {
    kind: String,
    line: String,
    year: i32,
    month_number: u32,
    amount: String,
    date_param: String,
}

/// The Orange sandbox's data: each bill says its debit (day and label).
#[derive(Deserialize)]
struct OrangeData {
    contracts: Vec<OrangeContract>,
}

#[derive(Deserialize)]
struct OrangeContract {
    bills: Vec<OrangeBill>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrangeBill {
    id: String,
    /// In cents.
    amount: i64,
    debit_date: NaiveDate,
    bank_label: String,
}

/// `{DD}`, `{MM}`, `{YYYY}` of `day`.
fn fill(template: &str, day: NaiveDate) -> String {
    template
        .replace("{DD}", &format!("{:02}", day.day()))
        .replace("{MM}", &format!("{:02}", day.month()))
        .replace("{YYYY}", &format!("{}", day.year()))
}

/// `day` of the month of `first`, or its last day.
fn day_of(first: NaiveDate, day: u32) -> NaiveDate {
    (0..4)
        .find_map(|back| first.with_day(day.saturating_sub(back).max(1)))
        .unwrap_or(first)
}

fn bad(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl Ledger {
    /// The ledger of the fixtures.
    pub fn load() -> std::io::Result<Self> {
        let rules: Rules = serde_json::from_str(LEDGER).map_err(|e| bad(format!("ledger.json: {e}")))?;
        let invoices: Invoices =
            serde_json::from_str(FREE_MOBILE).map_err(|e| bad(format!("invoices.json: {e}")))?;
        let n = rules.accounts.len();
        let check = |i: usize| {
            if i < n {
                Ok(i)
            } else {
                Err(bad(format!("ledger.json: no account {i}")))
            }
        };
        let mut txs = Vec::new();
        let mut month = rules.start.with_day(1).unwrap_or(rules.start);
        while month <= rules.end {
            let stamp = |d: NaiveDate| d.format("%Y%m%d").to_string();
            for m in &rules.monthly {
                let day = day_of(month, m.day);
                txs.push(Tx {
                    account: check(m.account)?,
                    id: format!("{}-{}", m.id, stamp(day)),
                    booked_on: Some(day),
                    value_date: day,
                    pending_until: None,
                    amount: m.amount,
                    creditor: m.creditor.clone(),
                    debtor: m.debtor.clone(),
                    label: fill(&m.label, day),
                    code: m.code.clone(),
                    mandate: None,
                });
            }
            let c = &rules.card_with_tip;
            let day = day_of(month, c.day);
            let booked = day + TimeDelta::days(c.booking_delay_days);
            txs.push(Tx {
                account: check(c.account)?,
                id: format!("P-{}-{}", c.id, stamp(day)),
                booked_on: None,
                value_date: day,
                pending_until: Some(booked),
                amount: c.pending_amount,
                creditor: Some(c.creditor.clone()),
                debtor: None,
                label: fill(&c.pending_label, day),
                code: c.code.clone(),
                mandate: None,
            });
            txs.push(Tx {
                account: check(c.account)?,
                id: format!("{}-{}", c.id, stamp(day)),
                booked_on: Some(booked),
                value_date: day,
                pending_until: None,
                amount: c.booked_amount,
                creditor: Some(c.creditor.clone()),
                debtor: None,
                label: fill(&c.booked_label, day),
                code: c.code.clone(),
                mandate: None,
            });
            month = month
                .checked_add_months(chrono::Months::new(1))
                .ok_or_else(|| bad("ledger.json: `end` is too far"))?;
        }
        let fm = &rules.free_mobile;
        let line_invoices = invoices.invoices.iter().filter(|i| i.kind == "pdf");
        for (k, invoice) in line_invoices.enumerate() {
            let billed = NaiveDate::parse_from_str(&invoice.date_param, "%Y%m%d")
                .map_err(|e| bad(format!("invoices.json: date {}: {e}", invoice.date_param)))?;
            let delay = fm.delays_days.get(k % fm.delays_days.len().max(1)).copied().unwrap_or(1);
            let debited = billed + TimeDelta::days(delay);
            let amount: Decimal = invoice
                .amount
                .parse()
                .map_err(|e| bad(format!("invoices.json: amount {}: {e}", invoice.amount)))?;
            let label = fm
                .label
                .replace("{LINE}", &invoice.line)
                .replace("{MM}", &format!("{:02}", invoice.month_number))
                .replace("{YYYY}", &invoice.year.to_string());
            txs.push(Tx {
                account: check(fm.account)?,
                id: format!("{}-{}-{}", fm.id, invoice.line, invoice.date_param),
                booked_on: Some(debited),
                value_date: debited,
                pending_until: None,
                amount: -amount,
                creditor: Some(fm.creditor.clone()),
                debtor: None,
                label,
                code: fm.code.clone(),
                mandate: Some(format!("{}-{}", fm.id, invoice.line)),
            });
        }
        let orange: OrangeData =
            serde_json::from_str(ORANGE).map_err(|e| bad(format!("orange/bills.json: {e}")))?;
        for bill in orange.contracts.iter().flat_map(|c| &c.bills) {
            txs.push(Tx {
                account: check(fm.account)?,
                id: format!("OR-{}", bill.id),
                booked_on: Some(bill.debit_date),
                value_date: bill.debit_date,
                pending_until: None,
                amount: -Decimal::new(bill.amount, 2),
                creditor: Some("ORANGE SA".to_owned()),
                debtor: None,
                label: bill.bank_label.clone(),
                code: fm.code.clone(),
                mandate: Some("OR-ORANGE".to_owned()),
            });
        }
        for o in &rules.one_off {
            txs.push(Tx {
                account: check(o.account)?,
                id: format!("{}-{}", o.id, o.date.format("%Y%m%d")),
                booked_on: Some(o.date),
                value_date: o.date,
                pending_until: None,
                amount: o.amount,
                creditor: o.creditor.clone(),
                debtor: o.debtor.clone(),
                label: fill(&o.label, o.date),
                code: o.code.clone(),
                mandate: None,
            });
        }
        txs.sort_by(|a, b| {
            b.booked_on
                .unwrap_or(b.value_date)
                .cmp(&a.booked_on.unwrap_or(a.value_date))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(Self {
            institution: rules.institution,
            psu_id: rules.psu_id,
            accounts: rules.accounts,
            txs,
        })
    }

    /// The account with this `resourceId`.
    pub fn account(&self, resource_id: &str) -> Option<(usize, &Account)> {
        self.accounts
            .iter()
            .enumerate()
            .find(|(_, a)| a.resource_id == resource_id)
    }

    /// The end-of-day booked balance of account `index` on `day`.
    pub fn booked_balance(&self, index: usize, day: NaiveDate) -> Decimal {
        let opening = self
            .accounts
            .get(index)
            .map_or(Decimal::ZERO, |a| a.opening_balance);
        opening
            + self
                .txs
                .iter()
                .filter(|t| t.account == index && t.booked_by(day))
                .map(|t| t.amount)
                .sum::<Decimal>()
    }

    /// The sum of account `index`'s pending amounts on `today`.
    pub fn pending_sum(&self, index: usize, today: NaiveDate) -> Decimal {
        self.txs
            .iter()
            .filter(|t| t.account == index && t.pending_on(today))
            .map(|t| t.amount)
            .sum()
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
    fn the_card_payment_is_pending_two_days_then_booked_with_its_tip() {
        let l = Ledger::load().unwrap();
        let pending = l.txs.iter().find(|t| t.id == "P-BIS-20260120").unwrap();
        let booked = l.txs.iter().find(|t| t.id == "BIS-20260120").unwrap();
        assert!(!pending.pending_on(day("2026-01-19")));
        assert!(pending.pending_on(day("2026-01-21")));
        assert!(!booked.booked_by(day("2026-01-21")));
        assert!(!pending.pending_on(day("2026-01-22")));
        assert!(booked.booked_by(day("2026-01-22")));
        assert_ne!(pending.amount, booked.amount);
        assert_ne!(pending.label, booked.label);
    }

    #[test]
    fn every_free_mobile_line_invoice_has_its_debit_one_to_three_days_later() {
        let l = Ledger::load().unwrap();
        let invoices: Invoices = serde_json::from_str(FREE_MOBILE).unwrap();
        let lines: Vec<&Invoice> = invoices.invoices.iter().filter(|i| i.kind == "pdf").collect();
        assert!(lines.len() >= 18);
        for i in lines {
            let billed = NaiveDate::parse_from_str(&i.date_param, "%Y%m%d").unwrap();
            let amount: Decimal = i.amount.parse().unwrap();
            let debit = l
                .txs
                .iter()
                .find(|t| t.id == format!("FM-{}-{}", i.line, i.date_param))
                .unwrap();
            let days = (debit.booked_on.unwrap() - billed).num_days();
            assert!((1..=3).contains(&days), "{days}");
            assert_eq!(debit.amount, -amount);
            assert!(debit.label.starts_with("PRLV SEPA FREE MOBILE"));
        }
    }

    #[test]
    fn balances_add_the_booked_transactions() {
        let l = Ledger::load().unwrap();
        let before = l.booked_balance(0, day("2024-11-30"));
        assert_eq!(before, l.accounts[0].opening_balance);
        let d = day("2026-01-20");
        let on = l.booked_balance(0, d);
        let prev = l.booked_balance(0, d - TimeDelta::days(1));
        let moved: Decimal = l
            .txs
            .iter()
            .filter(|t| t.account == 0 && t.booked_on == Some(d))
            .map(|t| t.amount)
            .sum();
        assert_eq!(on - prev, moved);
        assert_eq!(l.pending_sum(0, day("2026-01-21")), Decimal::new(-4250, 2));
    }
}
