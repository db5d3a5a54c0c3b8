//! What the CLI shows of the links between bills and bank operations
//! (made by the pass after every run: `gleaner_framework::store::links`),
//! and `gleaner link`.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Utc;
use gleaner_framework::bank::linking::{BILLS, OPERATIONS, operation_bills};
use gleaner_framework::store::{LinkSummary, StoredDoc};

use crate::app::App;
use crate::terminal::printable;

/// The bills the operations of `docs` are linked to, by bill id (empty
/// unless `doctype` is the operations').
pub async fn linked_bills(
    app: &App,
    doctype: &str,
    docs: &[StoredDoc],
) -> Result<BTreeMap<String, StoredDoc>> {
    if doctype != OPERATIONS {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<String> = docs.iter().flat_map(|d| operation_bills(&d.data)).collect();
    Ok(app.store.docs_by_id(BILLS, &ids).await?)
}

fn text(v: &serde_json::Value, key: &str) -> String {
    match &v[key] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn day(v: &serde_json::Value) -> String {
    text(v, "date").get(..10).unwrap_or_default().to_owned()
}

/// `Free Mobile 19.99 EUR of 2025-12-02`, or for a health refund
/// `Ameli refund 19.00 EUR of 2025-07-07 (care of 2025-07-02)`.
fn bill_summary(bill: &serde_json::Value) -> String {
    let refund = bill["isRefund"] == serde_json::Value::Bool(true);
    let care = text(bill, "originalDate");
    printable(&format!(
        "{}{} {} {} of {}{}",
        text(bill, "vendor"),
        if refund { " refund" } else { "" },
        text(bill, "amount"),
        text(bill, "currency"),
        day(bill),
        match care.get(..10) {
            Some(d) if refund => format!(" (care of {d})"),
            _ => String::new(),
        }
    ))
}

/// The header of the operations table.
pub const OPERATIONS_HEADER: [&str; 4] = ["date", "label", "amount", "bills (linked)"];

/// One row of the operations table: the linked bills in the last column
/// (`io.cozy.bills:<id> (not found)` for a link to a bill no longer
/// stored, until the next pass removes it).
pub fn operation_row(op: &serde_json::Value, bills: &BTreeMap<String, StoredDoc>) -> Vec<String> {
    let mut label: String = printable(&text(op, "label")).chars().take(48).collect();
    if op["isComing"] == serde_json::Value::Bool(true) {
        label.push_str(" (pending)");
    }
    let linked: Vec<String> = operation_bills(op)
        .iter()
        .map(|id| match bills.get(id) {
            Some(b) => bill_summary(&b.data),
            None => format!("io.cozy.bills:{} (not found)", printable(id)),
        })
        .collect();
    vec![
        day(op),
        label,
        format!("{} {}", text(op, "amount"), text(op, "currency")),
        linked.join("; "),
    ]
}

/// The line a run's summary gets when its pass linked something.
pub fn report_line(links: &LinkSummary) -> Option<String> {
    (links.changed() > 0).then(|| {
        format!(
            "bank links: {} bill(s) linked to bank operations in the store ({} operation(s) and {} bill(s) updated)",
            links.links, links.operations_changed, links.bills_changed
        )
    })
}

/// What `gleaner demo` prints before its summary: how many links the
/// store holds, and one example per vendor (Free Mobile's first).
#[cfg_attr(not(feature = "sandboxes"), allow(dead_code))]
pub async fn print_demo_links(app: &App) -> Result<()> {
    let n = app.store.link_count().await?;
    if n == 0 {
        println!("bank links: none (no bank operation pays a stored bill)");
        return Ok(());
    }
    println!(
        "bank links: {n} bill(s) linked to the bank operation that paid or refunded them, one per vendor:"
    );
    let ops = app.store.linked_operations(500).await?;
    let ids: Vec<String> = ops.iter().flat_map(|o| operation_bills(&o.data)).collect();
    let bills = app.store.docs_by_id(BILLS, &ids).await?;
    // Vendor -> (bill, operation), the first seen (latest operation first).
    let mut examples: BTreeMap<String, (String, String)> = BTreeMap::new();
    for op in &ops {
        for bill in operation_bills(&op.data)
            .iter()
            .filter_map(|id| bills.get(id))
        {
            examples
                .entry(text(&bill.data, "vendor"))
                .or_insert_with(|| {
                    (
                        bill_summary(&bill.data),
                        printable(&format!(
                            "{} {} {} on {}",
                            text(&op.data, "label"),
                            text(&op.data, "amount"),
                            text(&op.data, "currency"),
                            day(&op.data)
                        )),
                    )
                });
        }
    }
    let free_mobile = examples.remove("Free Mobile");
    for (bill, op) in free_mobile.iter().chain(examples.values()) {
        println!("  {bill}  <-  {op}");
    }
    println!("see them with `gleaner docs io.cozy.bank.operations`");
    Ok(())
}

/// `gleaner link`: the pass, now (it also runs after every run).
pub async fn link_now(app: &App) -> Result<()> {
    let s = app.store.link_bills_and_operations(Utc::now()).await?;
    println!(
        "{} bill(s) and {} bank operation(s) read; {} link(s); {} operation(s) and {} bill(s) updated",
        s.bills, s.operations, s.links, s.operations_changed, s.bills_changed
    );
    if s.unreadable > 0 {
        println!(
            "{} document(s) left alone: no date, amount, vendor or label to match on",
            s.unreadable
        );
    }
    Ok(())
}
