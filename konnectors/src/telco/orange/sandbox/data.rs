//! The sandbox's data: `fixtures/orange/bills.json`, the one file the
//! sandbox, the tests and the bank sandbox's generator read.

use serde::Deserialize;

/// The fixture file's text.
pub const BILLS_JSON: &str = include_str!("../../../../../fixtures/orange/bills.json");

/// The whole fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fixture {
    /// The vendor, as bills name it.
    pub vendor: String,
    /// The demo account's identifier (the login form's first step).
    pub login: String,
    /// The contracts' holder.
    pub holder: Holder,
    /// How many of each contract's newest bills the recent list shows; the
    /// others are behind `oldBillsHref`.
    pub recent_bills: usize,
    /// The contracts.
    pub contracts: Vec<FixtureContract>,
}

/// The holder's name.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
}

/// One contract and its bills.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixtureContract {
    /// The contract id.
    pub cid: String,
    /// The offer.
    pub offer_name: String,
    /// The line's number.
    pub public_number: String,
    /// `Actif`.
    pub status: String,
    /// The bills, oldest first.
    pub bills: Vec<FixtureBill>,
}

/// One bill, and the bank debit that pays it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixtureBill {
    /// The bill's id (`vendorRef`).
    pub id: String,
    /// The bill's date, `YYYY-MM-DD`.
    pub date: String,
    /// The amount in cents, as Orange's API gives it.
    pub amount: i64,
    /// The day the direct debit leaves the bank account.
    pub debit_date: String,
    /// The debit's label on the bank statement.
    pub bank_label: String,
}

impl FixtureContract {
    /// The bills newest first, split into the recent list and the older
    /// ones.
    pub fn split(&self, recent: usize) -> (Vec<&FixtureBill>, Vec<&FixtureBill>) {
        let mut all: Vec<&FixtureBill> = self.bills.iter().collect();
        all.sort_by(|a, b| b.date.cmp(&a.date));
        let old = all.split_off(recent.min(all.len()));
        (all, old)
    }

    /// The bill with this id.
    pub fn bill(&self, id: &str) -> Option<&FixtureBill> {
        self.bills.iter().find(|b| b.id == id)
    }
}

/// The fixture, parsed.
pub fn fixture() -> Fixture {
    // The file is part of the source tree; a test checks it parses.
    serde_json::from_str(BILLS_JSON).unwrap_or_else(|_| Fixture {
        vendor: "Orange".into(),
        login: String::new(),
        holder: Holder {
            first_name: String::new(),
            last_name: String::new(),
        },
        recent_bills: 0,
        contracts: Vec::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn the_fixture_parses() {
        let f: super::Fixture = serde_json::from_str(super::BILLS_JSON).unwrap();
        assert_eq!(f.contracts.len(), 2);
        let (recent, old) = f.contracts[0].split(f.recent_bills);
        assert_eq!((recent.len(), old.len()), (6, 6));
        assert_eq!(recent[0].date, "2025-12-05");
    }
}
