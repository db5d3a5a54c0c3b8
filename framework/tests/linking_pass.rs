//! The linking pass runs after every committed run, across konnectors: a
//! bank konnector's run links the bills a phone konnector saved before.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::Utc;
use gleaner_framework::doctypes::{BankOperation, Bill};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::store::{Account, DocStore, FileStore, SqliteStore};
use gleaner_framework::{
    Konnector, KonnectorError, Manifest, RunContext, RunEnv, RunOptions, run_konnector,
};
use serde_json::json;

fn manifest(slug: &str, data_type: &str) -> Manifest {
    Manifest::from_toml(
        "test",
        &format!(
            r#"
slug = "{slug}"
name = "{slug}"
version = "1.0.0"
category = "telco"
vendor_link = "https://example.org"
base_url = "https://example.org/"
hosts = ["example.org"]
frequency = "daily"
data_types = ["{data_type}"]
"#
        ),
    )
    .unwrap()
}

/// Saves two Free Mobile bills.
struct Phone;

/// Saves the bank's operations: the debit of December's bill, a card
/// payment. Built from JSON, so that the test does not depend on the
/// operation struct's optional fields.
struct Bank;

#[async_trait]
impl Konnector for Phone {
    fn manifest(&self) -> &Manifest {
        static M: OnceLock<Manifest> = OnceLock::new();
        M.get_or_init(|| manifest("phone", "io.cozy.bills"))
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<(), KonnectorError> {
        for (date, amount) in [("2025-11-02", 1999), ("2025-12-02", 2199)] {
            let bill: Bill = serde_json::from_value(json!({
                "vendor": "Free Mobile", "date": format!("{date}T00:00:00Z"),
                "amount": rust_decimal::Decimal::new(amount, 2), "currency": "EUR",
                "contractId": "0612345678", "type": "phone"
            }))
            .unwrap();
            ctx.save(&bill)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Konnector for Bank {
    fn manifest(&self) -> &Manifest {
        static M: OnceLock<Manifest> = OnceLock::new();
        M.get_or_init(|| manifest("bank", "io.cozy.bank.operations"))
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<(), KonnectorError> {
        for (id, label, date, amount) in [
            (
                "t1",
                "PRLV SEPA FREE MOBILE ECH/041225",
                "2025-12-04",
                -2199,
            ),
            ("t2", "CB BOULANGERIE", "2025-12-04", -1999),
        ] {
            let op: BankOperation = serde_json::from_value(json!({
                "label": label, "date": format!("{date}T00:00:00Z"),
                "amount": rust_decimal::Decimal::new(amount, 2), "currency": "EUR",
                "vendorId": id, "vendorAccountId": "FR76-1"
            }))
            .unwrap();
            ctx.save(&op)?;
        }
        Ok(())
    }
}

fn account(id: &str, konnector: &str) -> Account {
    Account {
        id: id.into(),
        konnector: konnector.into(),
        label: id.into(),
        fields: BTreeMap::new(),
        sealed_secrets: vec![],
        endpoint: None,
        created_at: Utc::now(),
        folder: format!("{konnector}/{id}"),
    }
}

#[tokio::test]
async fn a_bank_run_links_the_bills_another_konnector_saved() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
    let env = RunEnv {
        store: Arc::new(store.clone()),
        files: FileStore::open(&dir.path().join("files")).unwrap(),
        retry: RetryPolicy::default(),
    };
    let run = |k: &'static dyn Konnector, a: Account| {
        let env = env.clone();
        async move {
            run_konnector(k, &a, BTreeMap::new(), &env, RunOptions::default())
                .await
                .unwrap()
        }
    };
    let phone = run(&Phone, account("acc-phone", "phone")).await;
    let links = phone.links.unwrap();
    assert_eq!((links.bills, links.operations, links.links), (2, 0, 0));

    let bank = run(&Bank, account("acc-bank", "bank")).await;
    let links = bank.links.unwrap();
    assert_eq!(
        (links.links, links.operations_changed, links.bills_changed),
        (1, 1, 1)
    );
    let ops = store
        .list("io.cozy.bank.operations", None, None, 10)
        .await
        .unwrap();
    let debit = ops
        .iter()
        .find(|o| o.data["label"] == "PRLV SEPA FREE MOBILE ECH/041225")
        .unwrap();
    let bills = store.list("io.cozy.bills", None, None, 10).await.unwrap();
    let december = bills
        .iter()
        .find(|b| b.data["date"] == "2025-12-02T00:00:00Z")
        .unwrap();
    assert_eq!(
        debit.data["bills"],
        json!([format!("io.cozy.bills:{}", december.id)])
    );
    assert_eq!(
        december.data["relationships"]["bankOperations"]["data"][0]["_id"],
        json!(debit.id)
    );

    // A second run of each brings nothing new: no pass, nothing rewritten.
    for (k, a) in [
        (&Bank as &'static dyn Konnector, account("acc-bank", "bank")),
        (&Phone, account("acc-phone", "phone")),
    ] {
        let again = run(k, a).await;
        assert_eq!(again.created(), 0);
        assert!(again.links.is_none(), "{:?}", again.links);
    }
    assert_eq!(
        store
            .list("io.cozy.bank.operations", None, None, 10)
            .await
            .unwrap(),
        ops
    );
    assert_eq!(store.link_count().await.unwrap(), 1);
}
