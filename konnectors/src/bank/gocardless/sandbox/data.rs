//! The bank behind the sandbox: `fixtures/gocardless/sandbox.json`, laid
//! on the calendar. Recurring operations fall on their days of the month
//! or week from `history_days` before day 0 (the sandbox's start day) up
//! to today; scripted ones are placed in days relative to day 0, so moving
//! the sandbox's clock books a pending card payment or cancels a
//! pre-authorisation.

use chrono::{Datelike, Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Deserialize;

const SANDBOX: &str = include_str!("../../../../../fixtures/gocardless/sandbox.json");

/// The whole fixture.
#[derive(Debug, Clone, Deserialize)]
pub struct Bank {
    /// The institution, as `GET /institutions/{id}/` answers it.
    pub institution: serde_json::Value,
    /// Days of history before day 0.
    pub history_days: i64,
    /// The accounts.
    pub accounts: Vec<FixtureAccount>,
}

/// One account of the fixture.
#[derive(Debug, Clone, Deserialize)]
pub struct FixtureAccount {
    /// Its GoCardless id for the first link (later links get new ids).
    pub id: String,
    /// The bank's id.
    pub resource_id: String,
    /// IBAN.
    pub iban: String,
    /// BBAN.
    pub bban: Option<String>,
    /// ISO 4217.
    pub currency: String,
    /// Name.
    pub name: String,
    /// Product.
    pub product: String,
    /// ISO 20022 cash account type.
    pub cash_account_type: String,
    /// Owner.
    pub owner_name: String,
    /// BIC.
    pub bic: String,
    /// The balance at the start of the history.
    pub opening_balance: Decimal,
    /// Monthly operations.
    pub monthly: Vec<Monthly>,
    /// Weekly operations.
    pub weekly: Vec<Weekly>,
    /// Operations placed relative to day 0.
    pub scripted: Vec<Scripted>,
}

/// An operation on a day of every month.
#[derive(Debug, Clone, Deserialize)]
pub struct Monthly {
    /// Day of the month (the month's last day when it is shorter).
    pub day: u32,
    /// Signed amount.
    pub amount: Decimal,
    /// Remittance text.
    pub label: String,
    /// Counterpart.
    pub counterpart: Option<String>,
    /// ISO bank transaction code.
    pub code: String,
}

/// An operation on a day of every week.
#[derive(Debug, Clone, Deserialize)]
pub struct Weekly {
    /// 1 (Monday) to 7 (Sunday).
    pub weekday: u32,
    /// Signed amount.
    pub amount: Decimal,
    /// Remittance text.
    pub label: String,
    /// Counterpart.
    pub counterpart: Option<String>,
    /// ISO bank transaction code.
    pub code: String,
}

/// An operation placed in days relative to day 0.
#[derive(Debug, Clone, Deserialize)]
pub struct Scripted {
    /// A name, for ids.
    pub key: String,
    /// First day it shows as pending.
    pub pending_from: Option<i64>,
    /// Its label while pending.
    pub pending_label: Option<String>,
    /// Its amount while pending.
    pub pending_amount: Option<Decimal>,
    /// The day it books.
    pub booked_on: Option<i64>,
    /// The day a pending one that never books disappears.
    pub vanishes_on: Option<i64>,
    /// Its booked label.
    pub label: Option<String>,
    /// Its booked amount.
    pub amount: Option<Decimal>,
    /// Counterpart.
    pub counterpart: Option<String>,
    /// ISO bank transaction code.
    pub code: Option<String>,
}

/// A transaction as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    /// Booked (else pending).
    pub booked: bool,
    /// Booking date (booked) or the day it was authorised (pending).
    pub date: NaiveDate,
    /// Value date.
    pub value_date: NaiveDate,
    /// Signed amount.
    pub amount: Decimal,
    /// Remittance text.
    pub label: String,
    /// Counterpart.
    pub counterpart: Option<String>,
    /// ISO bank transaction code.
    pub code: Option<String>,
    /// The bank's id (booked only).
    pub transaction_id: Option<String>,
    /// GoCardless' id.
    pub internal_id: String,
}

/// Loads the fixture.
pub fn load() -> std::io::Result<Bank> {
    serde_json::from_str(SANDBOX).map_err(std::io::Error::other)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = first.and_then(|f| f.checked_add_months(chrono::Months::new(1)));
    match (first, next) {
        (Some(f), Some(n)) => u32::try_from((n - f).num_days()).unwrap_or(28),
        _ => 28,
    }
}

impl FixtureAccount {
    fn short(&self) -> &str {
        self.resource_id.rsplit('-').next().unwrap_or("0")
    }

    /// Every transaction shown on `today`, for a sandbox started on
    /// `day0` with `history_days` of history: booked ones dated up to
    /// today, and the pending ones.
    pub fn transactions(&self, day0: NaiveDate, history_days: i64, today: NaiveDate) -> Vec<Tx> {
        let start = day0 - Duration::days(history_days);
        let mut out = Vec::new();
        let booked = |date: NaiveDate, k: usize, amount: Decimal, label: &str, cp: &Option<String>, code: &str| Tx {
            booked: true,
            date,
            value_date: date,
            amount,
            label: label.to_owned(),
            counterpart: cp.clone(),
            code: Some(code.to_owned()),
            transaction_id: Some(format!("SFIN-{}-{}-{k}", self.short(), date.format("%Y%m%d"))),
            internal_id: format!("gc-{}-{}-{k}", self.short(), date.format("%Y%m%d")),
        };
        let mut day = start;
        while day <= today {
            for (k, m) in self.monthly.iter().enumerate() {
                if day.day() == m.day.min(days_in_month(day.year(), day.month())) {
                    out.push(booked(day, k, m.amount, &m.label, &m.counterpart, &m.code));
                }
            }
            for (k, w) in self.weekly.iter().enumerate() {
                if day.weekday().number_from_monday() == w.weekday {
                    out.push(booked(day, 100 + k, w.amount, &w.label, &w.counterpart, &w.code));
                }
            }
            day += Duration::days(1);
        }
        let offset = (today - day0).num_days();
        for s in &self.scripted {
            let at = |d: i64| day0 + Duration::days(d);
            let authorised = s.pending_from.map(at);
            match s.booked_on {
                Some(b) if offset >= b => {
                    let date = at(b);
                    out.push(Tx {
                        booked: true,
                        date,
                        value_date: authorised.unwrap_or(date),
                        amount: s.amount.unwrap_or_default(),
                        label: s.label.clone().unwrap_or_default(),
                        counterpart: s.counterpart.clone(),
                        code: s.code.clone(),
                        transaction_id: Some(format!("SFIN-{}-{}", self.short(), s.key)),
                        internal_id: format!("gc-{}-{}", self.short(), s.key),
                    });
                    continue;
                }
                _ => {}
            }
            let Some(from) = s.pending_from else {
                continue;
            };
            let gone = s.vanishes_on.is_some_and(|v| offset >= v);
            if offset >= from && !gone {
                out.push(Tx {
                    booked: false,
                    date: at(from),
                    value_date: at(from),
                    amount: s.pending_amount.unwrap_or_default(),
                    label: s.pending_label.clone().unwrap_or_default(),
                    counterpart: s.counterpart.clone(),
                    code: s.code.clone(),
                    transaction_id: None,
                    internal_id: format!("gc-{}-{}-pending", self.short(), s.key),
                });
            }
        }
        out.sort_by(|a, b| b.date.cmp(&a.date).then(a.internal_id.cmp(&b.internal_id)));
        out
    }

    /// The booked balance at the end of `day`.
    pub fn balance(&self, txs: &[Tx], day: NaiveDate) -> Decimal {
        self.opening_balance
            + txs
                .iter()
                .filter(|t| t.booked && t.date <= day)
                .map(|t| t.amount)
                .sum::<Decimal>()
    }

    /// The balance with today's pending operations.
    pub fn expected(&self, txs: &[Tx], today: NaiveDate) -> Decimal {
        self.balance(txs, today)
            + txs
                .iter()
                .filter(|t| !t.booked)
                .map(|t| t.amount)
                .sum::<Decimal>()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_payment_books_two_days_later_and_a_preauthorisation_vanishes() {
        let bank = load().unwrap();
        let a = &bank.accounts[0];
        let day0 = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let now = a.transactions(day0, bank.history_days, day0);
        let pending: Vec<&Tx> = now.iter().filter(|t| !t.booked).collect();
        assert_eq!(pending.len(), 4, "{pending:#?}");
        assert!(now.iter().all(|t| t.date <= day0));
        let later = a.transactions(day0, bank.history_days, day0 + Duration::days(2));
        assert!(later.iter().all(|t| t.booked));
        let booked = later
            .iter()
            .find(|t| t.label.starts_with("CB CARREFOUR CITY"))
            .unwrap();
        assert_eq!(booked.amount, Decimal::new(-4310, 2));
        assert_eq!(booked.value_date, day0);
        assert!(!later.iter().any(|t| t.label.contains("HOTEL")));
        // A year of history and more, ids unique.
        let mut ids: Vec<&str> = now.iter().map(|t| t.internal_id.as_str()).collect();
        let n = ids.len();
        assert!(n > 300, "{n}");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert!(a.expected(&now, day0) < a.balance(&now, day0));
    }
}
