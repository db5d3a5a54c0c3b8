//! End to end: bills meet the bank operations that paid them. The bank's
//! operations are put in the store as a bank konnector would have saved
//! them; `gleaner run` of the Free Mobile sandbox brings the bills, the
//! pass after the run links them, `gleaner docs` shows the links.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use chrono::Utc;
use common::Home;
use gleaner_framework::store::{DocStore, RunCommit, SqliteStore, StagedDoc};
use gleaner_konnectors::telco::free_mobile::sandbox::{PASSWORD, Sandbox, Scenario};
use serde_json::json;

/// A bank account's operations: three pay Free Mobile bills of the
/// sandbox (the November and December summaries of the two lines, June's
/// single-line bill), two are decoys of a bill's amount.
async fn bank_operations(home: &Home) {
    let store = SqliteStore::open(&home.path().join("gleaner.db"))
        .await
        .unwrap();
    let ops = [
        (
            "t1",
            "PRLV SEPA FREE MOBILE ECH/041125",
            "2025-11-04",
            "-24.49",
        ),
        (
            "t2",
            "PRLV SEPA FREE MOBILE ECH/041225",
            "2025-12-04",
            "-21.99",
        ),
        ("t3", "PRLV SEPA FREE MOBILE", "2025-06-04", "-19.99"),
        ("t4", "CB AMAZON PAYMENTS", "2025-09-03", "-19.99"),
        ("t5", "PRLV SEPA SFR", "2025-10-03", "-19.99"),
    ];
    let docs = ops
        .iter()
        .map(|(id, label, date, amount)| {
            StagedDoc::from_value(
                "io.cozy.bank.operations",
                format!("FR76-TEST|{id}"),
                None,
                &json!({
                    "label": label,
                    "date": format!("{date}T00:00:00Z"),
                    "amount": serde_json::from_str::<serde_json::Value>(amount).unwrap(),
                    "currency": "EUR",
                    "vendorId": id,
                    "vendorAccountId": "FR76-TEST",
                }),
            )
        })
        .collect();
    store
        .commit_run(RunCommit {
            account_id: "bank-account".into(),
            account_identifier: None,
            run_id: "bank-run".into(),
            konnector: "bank-test".into(),
            docs,
            deletes: Vec::new(),
            state: json!({}),
            finished_at: Utc::now(),
        })
        .await
        .unwrap();
    store.pool().close().await;
}

fn row<'a>(table: &'a str, needle: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle} in:\n{table}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_links_its_bills_to_the_bank_and_docs_shows_the_links() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    home.add_free_mobile(&sandbox.base_url(), PASSWORD, "phone");
    bank_operations(&home).await;

    let out = home.ok(&["run", "phone"]);
    assert!(
        out.contains("bank links: 3 bill(s) linked to bank operations in the store (3 operation(s) and 3 bill(s) updated)"),
        "{out}"
    );

    let table = home.ok(&["docs", "io.cozy.bank.operations"]);
    assert!(
        row(&table, "ECH/041125").contains("Free Mobile 24.49 EUR of 2025-11-01"),
        "{table}"
    );
    assert!(
        row(&table, "ECH/041225").contains("Free Mobile 21.99 EUR of 2025-12-01"),
        "{table}"
    );
    assert!(
        row(&table, "2025-06-04").contains("Free Mobile 19.99 EUR of 2025-06-02"),
        "{table}"
    );
    assert!(!row(&table, "AMAZON").contains("Free Mobile"), "{table}");
    assert!(!row(&table, "SFR").contains("Free Mobile"), "{table}");

    // Both ways, with Cozy's field names.
    let ops: Vec<serde_json::Value> = home
        .ok(&["docs", "io.cozy.bank.operations", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bills: Vec<serde_json::Value> = home
        .ok(&["docs", "io.cozy.bills", "--json", "--limit", "1000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let june = ops.iter().find(|o| o["vendorId"] == "t3").unwrap();
    let bill = bills
        .iter()
        .find(|b| june["bills"] == json!([format!("io.cozy.bills:{}", b["_id"].as_str().unwrap())]))
        .unwrap();
    assert_eq!(bill["date"], "2025-06-02T00:00:00Z");
    assert_eq!(
        bill["relationships"]["bankOperations"]["data"],
        json!([{"_id": june["_id"], "_type": "io.cozy.bank.operations"}])
    );
    let linked_bills = bills
        .iter()
        .filter(|b| b.get("relationships").is_some())
        .count();
    assert_eq!(linked_bills, 3);

    // Idempotent: the pass again, a run again: nothing changes.
    let out = home.ok(&["link"]);
    assert!(
        out.contains("3 link(s); 0 operation(s) and 0 bill(s) updated"),
        "{out}"
    );
    let out = home.ok(&["run", "phone"]);
    assert!(!out.contains("bank links"), "{out}");
    let again: Vec<serde_json::Value> = home
        .ok(&["docs", "io.cozy.bank.operations", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(again, ops);

    // The bills go with their account: the operations' links go too.
    let out = home.ok(&["accounts", "remove", "phone", "--purge"]);
    assert!(
        out.contains("bank links updated after the removal: 0 link(s) now (3 operation(s) and 0 bill(s) updated)"),
        "{out}"
    );
    let table = home.ok(&["docs", "io.cozy.bank.operations"]);
    assert!(!table.contains("Free Mobile"), "{table}");
}

/// `gleaner demo` says how many links the store holds, and the catalogue's
/// health refunds meet the bank sandbox's credits: every Ameli and Alan
/// refund paid to the insured is linked to its credit (the transfer that
/// paid two acts to both of them), and no tiers-payant refund is (the
/// insurer paid the pharmacy, not the bank account).
#[test]
fn the_demo_links_health_refunds_to_their_bank_credits() {
    let home = Home::new();
    let out = home.ok(&["demo"]);
    assert!(out.contains("bank links: "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("Ameli refund") && l.contains("<-  VIR SEPA CPAM DE PARIS")),
        "{out}"
    );
    let bills: Vec<serde_json::Value> = home
        .ok(&["docs", "io.cozy.bills", "--json", "--limit", "1000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<serde_json::Value> = home
        .ok(&[
            "docs",
            "io.cozy.bank.operations",
            "--json",
            "--limit",
            "10000",
        ])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for vendor in ["Ameli", "Alan"] {
        let refunds: Vec<&serde_json::Value> = bills
            .iter()
            .filter(|b| b["vendor"] == vendor && b["isRefund"] == true)
            .collect();
        assert_eq!(
            refunds.len(),
            7,
            "{vendor}: one refund per act of the shared table"
        );
        for bill in refunds {
            let linked = &bill["relationships"]["bankOperations"]["data"];
            if bill["isThirdPartyPayer"] == true {
                assert!(linked.is_null(), "{vendor} tiers payant linked: {bill}");
                continue;
            }
            let op_id = linked[0]["_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{vendor} refund not linked: {bill}"));
            let op = ops.iter().find(|o| o["_id"] == op_id).unwrap();
            // A credit, of the transfer: the refund's amount, or the
            // group's when one transfer paid several acts.
            let paid = bill.get("groupAmount").unwrap_or(&bill["amount"]);
            assert_eq!(op["amount"].to_string(), paid.to_string(), "{bill} <- {op}");
            let label = op["label"].as_str().unwrap();
            let payer = if vendor == "Ameli" { "CPAM" } else { "ALAN" };
            assert!(label.contains(payer), "{label}");
            assert!(
                op["bills"]
                    .to_string()
                    .contains(bill["_id"].as_str().unwrap())
            );
        }
    }
}
