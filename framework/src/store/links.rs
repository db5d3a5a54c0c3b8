//! The linking pass: bills meet the bank operations that paid them.
//!
//! After a run commits bills or bank operations, the runner calls
//! [`DocStore::link_bills_and_operations`](super::DocStore::link_bills_and_operations).
//! In **one transaction** the pass reads every bill and every bank
//! operation of the store (all accounts, all konnectors), computes the
//! links with [`crate::bank::linking`]'s scored rule, and writes only what
//! changed:
//!
//! - on the operation, Cozy's `bills: ["io.cozy.bills:<id>", ...]`;
//! - on the bill, a link back in Cozy's relationship form:
//!   `relationships.bankOperations.data: [{"_id": "<id>", "_type":
//!   "io.cozy.bank.operations"}]` (Cozy itself keeps only the operation's
//!   side; a bill's relationships are where a Cozy app looks for related
//!   documents, as `relationships.document` for its file).
//!
//! The pass owns these two fields: a link the rule no longer makes is
//! removed. A second pass over the same documents changes nothing.
//!
//! A document the pass rewrites gets a new revision and `updatedAt`, but
//! keeps its **content hash**: the hash stands for what the konnector
//! staged, so the next run that stages the same content is still a skip
//! and the links stay. A konnector that changes a document replaces it
//! whole (links gone); the pass that follows that commit puts them back.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use super::StoredDoc;
use super::sqlite::SqliteStore;
use crate::bank::linking::{
    self, BILLS, OPERATIONS, Rule, StoredBill, StoredOperation, bill_facts, bill_operations,
    operation_bills, operation_facts,
};
use crate::error::KonnectorError;

/// What a linking pass found and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSummary {
    /// Bills read.
    pub bills: u64,
    /// Bank operations considered: those whose amount is within a cent of
    /// a bill's, and those that held links.
    pub operations: u64,
    /// (bill, operation) links after the pass.
    pub links: u64,
    /// Operations whose `bills` changed.
    pub operations_changed: u64,
    /// Bills whose link back changed.
    pub bills_changed: u64,
    /// Documents left alone because they lack a date, an amount, a vendor
    /// or a label the matcher can read.
    pub unreadable: u64,
}

impl LinkSummary {
    /// Documents the pass rewrote.
    pub fn changed(&self) -> u64 {
        self.operations_changed + self.bills_changed
    }
}

impl SqliteStore {
    /// Runs the linking pass (see the [module](self)) in one `IMMEDIATE`
    /// transaction, so that a run committing meanwhile waits and is seen by
    /// the next pass. `now` stamps the rewritten documents.
    pub(super) async fn link_pass(
        &self,
        now: DateTime<Utc>,
    ) -> Result<LinkSummary, KonnectorError> {
        let err = self.store_err("linking bills and bank operations");
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        let started = std::time::Instant::now();
        let mut input = LinkInput::default();
        {
            let mut rows = sqlx::query("SELECT id, data FROM documents WHERE doctype = ?")
                .bind(BILLS)
                .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(&err)? {
                let id: String = row.try_get("id").map_err(&err)?;
                let text: &str = row.try_get("data").map_err(&err)?;
                input.add_bill(&id, text);
            }
        }
        input.bills_read();
        {
            let mut rows = sqlx::query("SELECT id, data FROM documents WHERE doctype = ?")
                .bind(OPERATIONS)
                .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(&err)? {
                let text: &str = row.try_get("data").map_err(&err)?;
                if let Some(probe) = input.probe_operation(text) {
                    let id: String = row.try_get("id").map_err(&err)?;
                    input.add_operation(&id, probe);
                }
            }
        }
        let read_ms = started.elapsed().as_millis();
        let (mut summary, plan) = input.plan();
        let match_ms = started.elapsed().as_millis() - read_ms;
        summary.links = plan.links;
        let stamp = now.to_rfc3339();
        for (id, bill_ids) in &plan.operations {
            if rewrite(&mut tx, OPERATIONS, id, &stamp, |doc| {
                linking::set_operation_bills(doc, bill_ids)
            })
            .await
            .map_err(&err)?
            {
                summary.operations_changed += 1;
            }
        }
        for (id, op_ids) in &plan.bills {
            if rewrite(&mut tx, BILLS, id, &stamp, |doc| {
                linking::set_bill_operations(doc, op_ids)
            })
            .await
            .map_err(&err)?
            {
                summary.bills_changed += 1;
            }
        }
        tx.commit().await.map_err(&err)?;
        tracing::debug!(
            read_ms,
            match_ms,
            total_ms = started.elapsed().as_millis(),
            bills = summary.bills,
            operations = summary.operations,
            "linking pass"
        );
        if summary.changed() > 0 {
            tracing::info!(
                links = summary.links,
                operations = summary.operations_changed,
                bills = summary.bills_changed,
                "bills linked to bank operations"
            );
        }
        Ok(summary)
    }

    /// How many (bill, operation) links the store holds: the entries of
    /// every operation's `bills`.
    pub async fn link_count(&self) -> Result<u64, KonnectorError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(json_array_length(data, '$.bills')), 0) FROM documents WHERE doctype = ?",
        )
        .bind(OPERATIONS)
        .fetch_one(self.pool())
        .await
        .map_err(self.store_err("counting bank links"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The operations that pay or refund a bill, latest first, at most
    /// `limit`.
    pub async fn linked_operations(&self, limit: u32) -> Result<Vec<StoredDoc>, KonnectorError> {
        let err = self.store_err("listing linked bank operations");
        let rows = sqlx::query(
            "SELECT id, rev, content_hash, account_id, data FROM documents
             WHERE doctype = ? AND json_array_length(data, '$.bills') > 0
             ORDER BY json_extract(data, '$.date') DESC, id LIMIT ?",
        )
        .bind(OPERATIONS)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(&err)?;
        rows.iter()
            .map(|r| self.stored_doc(OPERATIONS, r))
            .collect()
    }

    /// Documents of `doctype` by id (the ones that exist), keyed by id.
    pub async fn docs_by_id(
        &self,
        doctype: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, StoredDoc>, KonnectorError> {
        let err = self.store_err("reading documents");
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(400) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT id, rev, content_hash, account_id, data FROM documents WHERE doctype = ",
            );
            q.push_bind(doctype).push(" AND id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id.as_str());
            }
            q.push(")");
            let rows = q.build().fetch_all(self.pool()).await.map_err(&err)?;
            for r in &rows {
                let doc = self.stored_doc(doctype, r)?;
                out.insert(doc.id.clone(), doc);
            }
        }
        Ok(out)
    }

    fn store_err(&self, what: &str) -> impl Fn(sqlx::Error) -> KonnectorError + '_ {
        let what = what.to_owned();
        move |e| super::sqlite_error::classify(&what, self.path(), &e)
    }

    /// A row of `id, rev, content_hash, account_id, data` as a
    /// [`StoredDoc`], `_id` and `_rev` added (as [`super::DocStore::list`]
    /// gives them).
    fn stored_doc(
        &self,
        doctype: &str,
        row: &sqlx::sqlite::SqliteRow,
    ) -> Result<StoredDoc, KonnectorError> {
        let err = self.store_err("reading a document");
        let id: String = row.try_get("id").map_err(&err)?;
        let rev: i64 = row.try_get("rev").map_err(&err)?;
        let hash: String = row.try_get("content_hash").map_err(&err)?;
        let text: String = row.try_get("data").map_err(&err)?;
        let mut data: Value = serde_json::from_str(&text).map_err(|e| {
            KonnectorError::store(format!(
                "document {doctype}/{id} in {} is corrupt: {e}",
                self.path().display()
            ))
        })?;
        let rev = format!("{rev}-{}", hash.get(..8).unwrap_or(&hash));
        if let Some(obj) = data.as_object_mut() {
            obj.insert("_id".into(), id.clone().into());
            obj.insert("_rev".into(), rev.clone().into());
        }
        Ok(StoredDoc {
            doctype: doctype.to_owned(),
            id,
            rev,
            account_id: row.try_get("account_id").map_err(&err)?,
            data,
        })
    }
}

/// What a linking pass reads, whatever the engine: bills and bank
/// operations are fed in as `(id, JSON text)` and [`LinkInput::plan`]
/// computes the links.
#[derive(Default)]
pub(super) struct LinkInput {
    summary: LinkSummary,
    bills: Vec<StoredBill>,
    operations: Vec<StoredOperation>,
    cents: HashSet<i64>,
}

impl LinkInput {
    /// Reads a stored bill (counted unreadable when it lacks what the
    /// matcher needs).
    pub(super) fn add_bill(&mut self, id: &str, text: &str) {
        let read = serde_json::from_str::<Value>(text).ok().and_then(|doc| {
            Some(StoredBill {
                facts: bill_facts(id, &doc)?,
                linked: bill_operations(&doc),
            })
        });
        match read {
            Some(b) => self.bills.push(b),
            None => self.summary.unreadable += 1,
        }
    }

    /// Called once every bill is read: only the operations that can match
    /// a bill (an amount within a cent of one) or that hold links become
    /// facts.
    pub(super) fn bills_read(&mut self) {
        self.cents = linking::candidate_cents(
            &self
                .bills
                .iter()
                .map(|b| b.facts.clone())
                .collect::<Vec<_>>(),
        )
        .into_iter()
        .collect();
    }

    /// The probe of a stored operation the pass wants (each document is
    /// read into a probe of the few fields the matcher needs: serde skips
    /// the rest without building it), `None` for the others.
    pub(super) fn probe_operation(&mut self, text: &str) -> Option<OperationProbe> {
        let Ok(probe) = serde_json::from_str::<OperationProbe>(text) else {
            self.summary.unreadable += 1;
            return None;
        };
        let wanted = probe.bills.is_some()
            || probe
                .amount
                .as_ref()
                .and_then(linking::cents_of)
                .is_some_and(|c| self.cents.contains(&c));
        wanted.then_some(probe)
    }

    /// Adds a wanted operation ([`LinkInput::probe_operation`]).
    pub(super) fn add_operation(&mut self, id: &str, probe: OperationProbe) {
        let doc = probe.into_value();
        match operation_facts(id, &doc) {
            Some(facts) => self.operations.push(StoredOperation {
                facts,
                linked: operation_bills(&doc),
            }),
            None => self.summary.unreadable += 1,
        }
    }

    /// The links to write, and the summary so far (bills, operations,
    /// unreadable; the caller counts what it changes).
    pub(super) fn plan(self) -> (LinkSummary, linking::LinkPlan) {
        let mut summary = self.summary;
        summary.bills = self.bills.len() as u64;
        summary.operations = self.operations.len() as u64;
        let plan = linking::plan(&self.bills, &self.operations, &Rule::scored());
        (summary, plan)
    }
}

/// The fields of a stored operation the pass reads; the others are skipped
/// unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OperationProbe {
    label: Option<Value>,
    original_bank_label: Option<Value>,
    date: Option<Value>,
    amount: Option<Value>,
    currency: Option<Value>,
    is_coming: Option<Value>,
    bills: Option<Value>,
}

impl OperationProbe {
    /// The probe as a document of its fields, for
    /// [`linking::operation_facts`].
    fn into_value(self) -> Value {
        let mut map = serde_json::Map::new();
        for (key, value) in [
            ("label", self.label),
            ("originalBankLabel", self.original_bank_label),
            ("date", self.date),
            ("amount", self.amount),
            ("currency", self.currency),
            ("isComing", self.is_coming),
            ("bills", self.bills),
        ] {
            if let Some(v) = value {
                map.insert(key.to_owned(), v);
            }
        }
        Value::Object(map)
    }
}

/// A stored document (JSON text) after `edit`, its `cozyMetadata.updatedAt`
/// (rows that keep one in their JSON) set to `stamp`; `None` when the edit
/// changes nothing or the text is not JSON.
pub(super) fn edited(text: &str, stamp: &str, edit: impl FnOnce(&mut Value)) -> Option<Value> {
    let mut doc = serde_json::from_str::<Value>(text).ok()?;
    let before = doc.clone();
    edit(&mut doc);
    if doc == before {
        return None;
    }
    if let Some(meta) = doc.get_mut("cozyMetadata").and_then(Value::as_object_mut) {
        meta.insert("updatedAt".to_owned(), Value::String(stamp.to_owned()));
    }
    Some(doc)
}

/// Applies `edit` to a stored document and writes it back with the next
/// revision and `updatedAt`, its content hash unchanged (see the module).
/// Returns whether the document changed.
async fn rewrite(
    tx: &mut sqlx::SqliteConnection,
    doctype: &str,
    id: &str,
    stamp: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<bool, sqlx::Error> {
    let Some(text): Option<String> =
        sqlx::query_scalar("SELECT data FROM documents WHERE doctype = ? AND id = ?")
            .bind(doctype)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(false);
    };
    let Some(doc) = edited(&text, stamp, edit) else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE documents SET data = ?, rev = rev + 1, updated_at = ? WHERE doctype = ? AND id = ?",
    )
    .bind(doc.to_string())
    .bind(stamp)
    .bind(doctype)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{DocStore, RunCommit, StagedDoc};
    use serde_json::json;

    fn commit(account: &str, docs: Vec<StagedDoc>) -> RunCommit {
        RunCommit {
            account_id: account.into(),
            account_identifier: None,
            run_id: crate::ids::new_id(),
            konnector: "test".into(),
            docs,
            deletes: Vec::new(),
            state: json!({}),
            finished_at: Utc::now(),
        }
    }

    fn bill(key: &str, amount: f64, date: &str) -> StagedDoc {
        StagedDoc::from_value(
            BILLS,
            key.into(),
            None,
            &json!({"vendor": "Free Mobile", "amount": amount, "currency": "EUR",
                    "date": format!("{date}T00:00:00Z"), "contractId": "0612345678"}),
        )
    }

    fn op(key: &str, label: &str, amount: f64, date: &str) -> StagedDoc {
        StagedDoc::from_value(
            OPERATIONS,
            key.into(),
            None,
            &json!({"label": label, "amount": amount, "currency": "EUR",
                    "date": format!("{date}T00:00:00Z"), "vendorAccountId": "acc-1"}),
        )
    }

    async fn all(store: &SqliteStore, doctype: &str) -> Vec<StoredDoc> {
        store.list(doctype, None, None, 1000).await.unwrap()
    }

    /// Bills of one account, operations of another: linked both ways in one
    /// pass; a second pass and a konnector re-run of the same content change
    /// nothing; a link the rule no longer makes is removed.
    #[tokio::test]
    async fn the_pass_links_both_ways_once_and_keeps_links_across_reruns() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let bills = || {
            vec![
                bill("b-nov", 19.99, "2025-11-02"),
                bill("b-dec", 19.99, "2025-12-02"),
                bill("b-unpaid", 7.5, "2025-12-02"),
            ]
        };
        let ops = || {
            vec![
                op("o-nov", "PRLV SEPA FREE MOBILE", -19.99, "2025-11-04"),
                op("o-dec", "PRLV SEPA FREE MOBILE", -19.99, "2025-12-03"),
                op("o-shop", "CB CARREFOUR", -7.5, "2025-12-03"),
            ]
        };
        store.commit_run(commit("phone", bills())).await.unwrap();
        store.commit_run(commit("bank", ops())).await.unwrap();
        let s = store.link_bills_and_operations(Utc::now()).await.unwrap();
        assert_eq!(
            (
                s.bills,
                s.operations,
                s.links,
                s.operations_changed,
                s.bills_changed
            ),
            (3, 3, 2, 2, 2)
        );
        let ops_now = all(&store, OPERATIONS).await;
        let bills_now = all(&store, BILLS).await;
        let id_of = |docs: &[StoredDoc], field: &str, value: &str| {
            docs.iter()
                .find(|d| d.data[field] == value)
                .map(|d| d.id.clone())
                .unwrap()
        };
        let dec_bill = bills_now
            .iter()
            .find(|b| b.data["date"] == "2025-12-02T00:00:00Z" && b.data["amount"] == json!(19.99))
            .unwrap();
        let dec_op = ops_now
            .iter()
            .find(|o| o.data["date"] == "2025-12-03T00:00:00Z" && o.data["amount"] == json!(-19.99))
            .unwrap();
        assert_eq!(
            dec_op.data["bills"],
            json!([format!("io.cozy.bills:{}", dec_bill.id)])
        );
        assert_eq!(
            dec_bill.data["relationships"]["bankOperations"]["data"],
            json!([{"_id": dec_op.id, "_type": OPERATIONS}])
        );
        assert!(dec_op.rev.starts_with("2-"));
        let shop = id_of(&ops_now, "label", "CB CARREFOUR");
        assert!(
            ops_now
                .iter()
                .find(|o| o.id == shop)
                .unwrap()
                .data
                .get("bills")
                .is_none()
        );

        // Again: nothing changes, not even a revision.
        let s = store.link_bills_and_operations(Utc::now()).await.unwrap();
        assert_eq!((s.links, s.changed()), (2, 0));
        assert_eq!(all(&store, OPERATIONS).await, ops_now);
        assert_eq!(all(&store, BILLS).await, bills_now);

        // The konnectors run again with the same content: skipped, links kept.
        let c = store.commit_run(commit("bank", ops())).await.unwrap();
        assert_eq!(c[OPERATIONS].skipped, 3);
        let c = store.commit_run(commit("phone", bills())).await.unwrap();
        assert_eq!(c[BILLS].skipped, 3);
        assert_eq!(all(&store, OPERATIONS).await, ops_now);
        assert_eq!(store.link_count().await.unwrap(), 2);

        // The bank changes December's label to something unrelated: the
        // konnector's update drops the link, the pass removes the bill's
        // link back.
        let mut changed = ops();
        changed[1] = StagedDoc::from_value(
            OPERATIONS,
            "o-dec".into(),
            None,
            &json!({"label": "VIR M. DUPONT", "amount": -19.99, "currency": "EUR",
                    "date": "2025-12-03T00:00:00Z", "vendorAccountId": "acc-1"}),
        );
        let c = store.commit_run(commit("bank", changed)).await.unwrap();
        assert_eq!(c[OPERATIONS].updated, 1);
        let s = store.link_bills_and_operations(Utc::now()).await.unwrap();
        assert_eq!((s.links, s.operations_changed, s.bills_changed), (1, 0, 1));
        let dec_bill = store
            .docs_by_id(BILLS, std::slice::from_ref(&dec_bill.id))
            .await
            .unwrap()
            .remove(&dec_bill.id)
            .unwrap();
        assert!(
            dec_bill.data.get("relationships").is_none(),
            "{}",
            dec_bill.data
        );
        let linked = store.linked_operations(10).await.unwrap();
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0].data["date"], "2025-11-04T00:00:00Z");
    }

    #[tokio::test]
    async fn unreadable_documents_are_counted_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let broken = StagedDoc::from_value(
            OPERATIONS,
            "x".into(),
            None,
            &json!({"label": "no date", "amount": -1.0}),
        );
        store
            .commit_run(commit(
                "bank",
                vec![broken, op("o", "PRLV", -1.0, "2025-01-01")],
            ))
            .await
            .unwrap();
        store
            .commit_run(commit("phone", vec![bill("b", 1.0, "2025-01-01")]))
            .await
            .unwrap();
        let s = store.link_bills_and_operations(Utc::now()).await.unwrap();
        assert_eq!(
            (s.operations, s.unreadable, s.links, s.changed()),
            (1, 1, 0, 0)
        );
    }
}
