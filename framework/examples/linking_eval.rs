//! Prints the precision and recall of the bill/operation linking rules on
//! the labelled set (`fixtures/linking/labelled.json`), by kind of case.
//!
//! `cargo run -p gleaner-framework --example linking_eval [-- [--mistakes] [PATH]]`
//! (`--mistakes` lists every wrong and missed link).

use std::process::ExitCode;

use gleaner_framework::bank::linking::evaluation::{LabelledSet, Scores, evaluate};
use gleaner_framework::bank::linking::{CozyIdentifiers, Rule};

fn main() -> ExitCode {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fixtures/linking/labelled.json"
            )
            .to_owned()
        });
    let set = match std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path}: {e}"))
        .and_then(|t| LabelledSet::from_json(&t).map_err(|e| e.message))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let links: usize = set.households.iter().map(|h| h.links.len()).sum();
    println!(
        "labelled set: {} households, {} pairs ({links} true links, {} decoys)",
        set.households.len(),
        set.pairs(),
        set.pairs() - links
    );
    let rules = [
        (
            "Cozy (vendor name)",
            Rule::Cozy(CozyIdentifiers::VendorName),
        ),
        (
            "Cozy (+ Gleaner's aliases)",
            Rule::Cozy(CozyIdentifiers::Aliases),
        ),
        ("Gleaner (scored, one-to-one)", Rule::scored()),
    ];
    let mut all: Vec<(&str, Scores)> = Vec::new();
    for (name, rule) in rules {
        match evaluate(&set, &rule) {
            Ok(s) => all.push((name, s)),
            Err(e) => {
                eprintln!("{}", e.message);
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "\n| rule | links made | right | wrong | missed | precision | recall |\n|---|---|---|---|---|---|---|"
    );
    for (name, s) in &all {
        println!(
            "| {name} | {} | {} | {} | {} | {:.3} | {:.3} |",
            s.true_positives + s.false_positives,
            s.true_positives,
            s.false_positives,
            s.false_negatives,
            s.precision(),
            s.recall()
        );
    }
    let header: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    println!(
        "\n| true links, by kind | pairs | {} |\n|---|---|{}",
        header.join(" found | ") + " found",
        "---|".repeat(header.len())
    );
    if let Some((_, first)) = all.first() {
        for (kind, k) in &first.links {
            let cells: Vec<String> = all
                .iter()
                .map(|(_, s)| s.links.get(kind).map_or(0, |k| k.linked).to_string())
                .collect();
            println!("| {kind} | {} | {} |", k.pairs, cells.join(" | "));
        }
        println!(
            "\n| decoys, by kind | pairs | {} |\n|---|---|{}",
            header.join(" linked | ") + " linked",
            "---|".repeat(header.len())
        );
        for (kind, k) in &first.decoys {
            let cells: Vec<String> = all
                .iter()
                .map(|(_, s)| s.decoys.get(kind).map_or(0, |k| k.linked).to_string())
                .collect();
            println!("| {kind} | {} | {} |", k.pairs, cells.join(" | "));
        }
    }
    if std::env::args().any(|a| a == "--mistakes") {
        let docs: std::collections::HashMap<&str, &serde_json::Value> = set
            .households
            .iter()
            .flat_map(|h| h.bills.iter().chain(&h.operations))
            .filter_map(|d| Some((d.get("_id")?.as_str()?, d)))
            .collect();
        let show = |id: &str| {
            docs.get(id).map_or(String::new(), |d| {
                format!(
                    "{} {} {} {}",
                    d["date"].as_str().unwrap_or("").get(..10).unwrap_or(""),
                    d.get("vendor")
                        .or(d.get("label"))
                        .unwrap_or(&serde_json::Value::Null),
                    d["amount"],
                    d.get("contractId")
                        .or(d.get("vendorRef"))
                        .unwrap_or(&serde_json::Value::Null)
                )
            })
        };
        for (name, s) in &all {
            println!("\n{name}");
            for (what, list) in [("wrong", &s.wrong), ("missed", &s.missed)] {
                for (b, o) in list {
                    println!("  {what}: {b} [{}] -> {o} [{}]", show(b), show(o));
                }
            }
        }
    }
    ExitCode::SUCCESS
}
