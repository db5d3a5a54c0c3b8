//! The catalogue: `docs/konnectors.md`'s table agrees with the registry,
//! and every category Gleaner serves has at least two konnectors.
//!
//! A row left behind when a konnector changes its category, login, 2FA,
//! doctypes or sandbox scenarios fails here, as does a row for a konnector
//! that does not exist. A konnector without a row is only reported: adding
//! a provider touches nothing outside its folder, fixtures and tests, so
//! its row comes when the catalogue's page is next edited.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use gleaner_konnectors::Registry;

/// The table's rows, by slug: the cells after the slug.
fn rows() -> BTreeMap<String, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/konnectors.md");
    let text = std::fs::read_to_string(path).unwrap();
    let table = text
        .split("## The catalogue")
        .nth(1)
        .expect("docs/konnectors.md has a `## The catalogue` section");
    let table = table.split("\n## ").next().unwrap_or_default();
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| slug") && !l.starts_with("|--"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect();
            (cells[0].clone(), cells[1..].to_vec())
        })
        .collect()
}

#[test]
fn the_catalogue_table_agrees_with_the_registry() {
    let registry = Registry::builtin().unwrap();
    let rows = rows();
    let mut problems = Vec::new();
    for entry in registry.entries() {
        let m = entry.konnector.manifest();
        let Some(row) = rows.get(&m.slug) else {
            println!("note: docs/konnectors.md has no row for {} yet", m.slug);
            continue;
        };
        let [category, login, two_factor, doctypes, scenarios, sources] = &row[..] else {
            problems.push(format!(
                "{}: the row has {} cells, not 7",
                m.slug,
                row.len() + 1
            ));
            continue;
        };
        let expect = |what: &str, cell: &str, want: String, problems: &mut Vec<String>| {
            if cell != want {
                problems.push(format!(
                    "{}: {what} is `{cell}` in the doc, `{want}` in the code",
                    m.slug
                ));
            }
        };
        expect("category", category, m.category.to_string(), &mut problems);
        expect("login", login, m.login_kind().to_string(), &mut problems);
        expect("2FA", two_factor, m.two_factor.to_string(), &mut problems);
        expect("doctypes", doctypes, m.data_types.join(", "), &mut problems);
        match entry.sandbox {
            Some(def) => {
                // The scenarios, in the sandbox's order, before any `;`
                // that adds what plays without a scenario.
                let listed = scenarios.split(';').next().unwrap_or_default();
                expect(
                    "scenarios",
                    listed,
                    def.scenario_names().join(", "),
                    &mut problems,
                );
            }
            None => problems.push(format!("{}: no sandbox", m.slug)),
        }
        if sources.is_empty() {
            problems.push(format!("{}: no public sources named", m.slug));
        }
    }
    for slug in rows.keys() {
        if registry
            .entries()
            .iter()
            .all(|e| &e.konnector.manifest().slug != slug)
        {
            problems.push(format!("{slug}: a row for a konnector that does not exist"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/konnectors.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_category_has_two_konnectors() {
    let registry = Registry::builtin().unwrap();
    let mut by_category: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in registry.entries() {
        let m = entry.konnector.manifest();
        by_category
            .entry(m.category.to_string())
            .or_default()
            .push(m.slug.clone());
    }
    for category in ["bank", "telco", "energy", "insurance"] {
        let slugs = by_category.get(category).cloned().unwrap_or_default();
        assert!(slugs.len() >= 2, "{category}: {slugs:?}");
    }
}
