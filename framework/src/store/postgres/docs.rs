//! Documents and konnector state on PostgreSQL: [`DocStore`] for
//! [`PgStore`].
//!
//! A commit ([`DocStore::commit_run`]) is one transaction holding the
//! account's advisory lock (see the [parent](super)). Documents go in
//! chunks of [`CHUNK`] per doctype, each chunk in three statements at most:
//! one lookup (`UNNEST` of the staged keys and content hashes joined to
//! the dedup index; only new and changed documents answer), one bulk
//! `UPDATE … FROM UNNEST` of the changed ones and one bulk `INSERT …
//! SELECT FROM UNNEST` of the new ones, whose ids are ordered
//! ([`crate::ids::OrderedIds`]). The rest follows SQLite's store step for
//! step: deletes first, then the documents that replace others, then the
//! chunks, then the konnector state; revisions `N-hash`, `cozyMetadata`
//! rebuilt at read from the row's columns.
//!
//! Every statement runs in the tenant's scoped transaction and names the
//! tenant (`tenant_id`), in its filters and in the rows it writes (see the
//! [parent](super)).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::error::KonnectorError;
use crate::ids::{OrderedIds, new_id};
use crate::store::{
    CommitCounts, Counts, DocStore, KeyedDoc, KonnectorState, LinkSummary, RunCommit, StagedDoc,
    StoredDoc,
};

/// How many documents one statement looks up, updates or inserts (each
/// column is one array parameter, so this is not bound by PostgreSQL's
/// 65,535 parameters).
pub const CHUNK: usize = 1000;

/// The version written in `cozyMetadata`.
const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The columns `cozyMetadata` is rebuilt from (select them with `data`).
macro_rules! meta_columns {
    () => {
        "created_at, updated_at, account_id, imported_from, source_identifier, created_version, updated_version"
    };
}

/// The hash that decides whether a re-saved document changed (the same as
/// SQLite's: of the staged canonical JSON text).
pub(super) fn content_hash(json: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(json.as_bytes());
    hex::encode(&digest[..16])
}

/// A document's `cozyMetadata`, as Cozy's konnector library writes it,
/// from its row ([`meta_columns`]).
fn cozy_metadata(row: &PgRow) -> Result<serde_json::Value, sqlx::Error> {
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let updated_at: DateTime<Utc> = row.try_get("updated_at")?;
    let created_at = created_at.to_rfc3339();
    let updated_at = updated_at.to_rfc3339();
    let account: String = row.try_get("account_id")?;
    let imported_from: Option<String> = row.try_get("imported_from")?;
    let identifier: Option<String> = row.try_get("source_identifier")?;
    let created_version: Option<String> = row.try_get("created_version")?;
    let updated_version: Option<String> = row.try_get("updated_version")?;
    let updated_version = updated_version.unwrap_or_else(|| APP_VERSION.to_owned());
    Ok(serde_json::json!({
        "metadataVersion": 1,
        "doctypeVersion": 1,
        "createdAt": created_at,
        "createdByApp": "gleaner",
        "createdByAppVersion": created_version.unwrap_or_else(|| updated_version.clone()),
        "updatedAt": updated_at,
        "updatedByApps": [{"slug": "gleaner", "date": updated_at, "version": updated_version}],
        "sourceAccount": account,
        "sourceAccountIdentifier": identifier,
        "importedFrom": imported_from,
    }))
}

/// The lookup of a chunk: of the tenant's (`$5`) staged documents (keys
/// `$3`, hashes `$4`), those that are new or changed, as `(index, stored id or null,
/// stored rev or null)`; unchanged ones are left out.
const LOOKUP_SQL: &str = "SELECT (u.i - 1) AS i, d.id, d.rev
    FROM UNNEST($3::text[], $4::text[]) WITH ORDINALITY AS u(k, h, i)
    LEFT JOIN documents AS d
      ON d.doctype = $1 AND d.account_id = $2 AND d.dedup_key = u.k AND d.tenant_id = $5
    WHERE d.content_hash IS DISTINCT FROM u.h";

/// The new documents of a chunk: the constant columns once (the tenant
/// `$11`), then ids, keys, hashes and JSON texts as arrays.
const INSERT_SQL: &str =
    "INSERT INTO documents (doctype, id, account_id, dedup_key, rev, content_hash, data,
      created_at, updated_at, imported_from, source_identifier, created_version, updated_version, tenant_id)
    SELECT $1, r.id, $2, r.k, 1, r.h, r.d::jsonb, $3, $3, $4, $5, $6, $6, $11
    FROM UNNEST($7::text[], $8::text[], $9::text[], $10::text[]) AS r(id, k, h, d)";

/// The changed documents of a chunk (of the tenant `$10`): new content,
/// next revision, the same id and creation time. The JSON is written without `cozyMetadata`.
const UPDATE_SQL: &str = "UPDATE documents AS d SET rev = d.rev + 1, content_hash = u.h, data = u.d::jsonb,
      updated_at = $2, dedup_key = COALESCE(u.k, d.dedup_key), imported_from = $3, source_identifier = $4,
      updated_version = $5, created_version = COALESCE(d.created_version, $5)
    FROM UNNEST($6::text[], $7::text[], $8::text[], $9::text[]) AS u(id, h, d, k)
    WHERE d.doctype = $1 AND d.id = u.id AND d.tenant_id = $10";

/// The stored pending bank operations of an account (`$1`) and bank
/// account (`$2`) dated from `$3` to `$4`, of the tenant `$5`. The first terms are those of
/// the partial index `documents_pending`, spelled as in its definition.
const PENDING_SQL: &str = "SELECT id, dedup_key, data::text AS data FROM documents
    WHERE doctype = 'io.cozy.bank.operations' AND (data -> 'isComing') = 'true'::jsonb
      AND account_id = $1 AND (data ->> 'vendorAccountId') = $2
      AND substr(data ->> 'date', 1, 10) COLLATE \"C\" BETWEEN $3 AND $4
      AND tenant_id = $5
    ORDER BY dedup_key";

/// A stored document's id and revision, for an update.
struct Existing {
    id: String,
    hash: String,
}

/// Documents to update in one statement: ids, hashes, JSON, new keys.
#[derive(Default)]
struct Updates {
    ids: Vec<String>,
    hashes: Vec<String>,
    data: Vec<String>,
    keys: Vec<Option<String>>,
}

impl Updates {
    fn push(&mut self, id: String, hash: String, json: String, key: Option<String>) {
        self.ids.push(id);
        self.hashes.push(hash);
        self.data.push(json);
        self.keys.push(key);
    }
}

impl PgStore {
    /// The stored document with this key, for an update.
    async fn lookup(
        &self,
        tx: &mut sqlx::PgConnection,
        doctype: &str,
        account_id: &str,
        key: &str,
    ) -> Result<Option<Existing>, KonnectorError> {
        let err = self.err("committing the run");
        let row = sqlx::query(
            "SELECT id, content_hash FROM documents WHERE doctype = $1 AND account_id = $2 AND dedup_key = $3 AND tenant_id = $4",
        )
        .bind(doctype)
        .bind(account_id)
        .bind(key)
        .bind(self.tid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?;
        row.map(|r| {
            Ok(Existing {
                id: r.try_get("id")?,
                hash: r.try_get("content_hash")?,
            })
        })
        .transpose()
        .map_err(&err)
    }

    /// Writes new contents over stored documents (see [`UPDATE_SQL`]).
    async fn update_docs(
        &self,
        tx: &mut sqlx::PgConnection,
        commit: &RunCommit,
        doctype: &str,
        updates: Updates,
    ) -> Result<(), KonnectorError> {
        if updates.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(UPDATE_SQL)
            .bind(doctype)
            .bind(commit.finished_at)
            .bind(&commit.konnector)
            .bind(commit.account_identifier.as_deref())
            .bind(APP_VERSION)
            .bind(updates.ids)
            .bind(updates.hashes)
            .bind(updates.data)
            .bind(updates.keys)
            .bind(self.tid())
            .execute(&mut *tx)
            .await
            .map_err(self.err("committing the run"))?;
        Ok(())
    }

    /// Inserts new documents with one statement, each with its content
    /// hash; ids not chosen by the run come from `ids`.
    async fn insert_docs(
        &self,
        tx: &mut sqlx::PgConnection,
        commit: &RunCommit,
        doctype: &str,
        docs: Vec<(StagedDoc, String)>,
        ids: &mut OrderedIds,
    ) -> Result<(), KonnectorError> {
        if docs.is_empty() {
            return Ok(());
        }
        let n = docs.len();
        let (mut new_ids, mut keys, mut hashes, mut data) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (doc, hash) in docs {
            let StagedDoc { id, key, json, .. } = doc;
            new_ids.push(id.unwrap_or_else(|| ids.next_id()));
            keys.push(key);
            hashes.push(hash);
            data.push(String::from(json));
        }
        sqlx::query(INSERT_SQL)
            .bind(doctype)
            .bind(&commit.account_id)
            .bind(commit.finished_at)
            .bind(&commit.konnector)
            .bind(commit.account_identifier.as_deref())
            .bind(APP_VERSION)
            .bind(new_ids)
            .bind(keys)
            .bind(hashes)
            .bind(data)
            .bind(self.tid())
            .execute(&mut *tx)
            .await
            .map_err(self.err("committing the run"))?;
        Ok(())
    }

    /// Commits a document that replaces another ([`StagedDoc::replaces`]),
    /// as SQLite's store does.
    async fn replace_doc(
        &self,
        tx: &mut sqlx::PgConnection,
        commit: &RunCommit,
        doc: &StagedDoc,
        c: &mut Counts,
    ) -> Result<(), KonnectorError> {
        let Some(old_key) = doc.replaces.as_deref() else {
            return Ok(());
        };
        let err = self.err("committing the run");
        let doctype = doc.doctype;
        let account = commit.account_id.as_str();
        let hash = content_hash(&doc.json);
        // A document has the new key already: it is the one kept, and the
        // replaced one goes (one document, never two).
        if let Some(twin) = self.lookup(tx, doctype, account, &doc.key).await? {
            if twin.hash == hash {
                c.skipped += 1;
            } else {
                let mut u = Updates::default();
                u.push(twin.id.clone(), hash, doc.json.to_string(), None);
                self.update_docs(tx, commit, doctype, u).await?;
                c.updated += 1;
            }
            if old_key != doc.key {
                c.deleted += sqlx::query(
                    "DELETE FROM documents WHERE doctype = $1 AND account_id = $2 AND dedup_key = $3 AND id <> $4 AND tenant_id = $5",
                )
                .bind(doctype)
                .bind(account)
                .bind(old_key)
                .bind(&twin.id)
                .bind(self.tid())
                .execute(&mut *tx)
                .await
                .map_err(&err)?
                .rows_affected();
            }
            return Ok(());
        }
        match self.lookup(tx, doctype, account, old_key).await? {
            Some(old) => {
                let mut u = Updates::default();
                u.push(old.id, hash, doc.json.to_string(), Some(doc.key.clone()));
                self.update_docs(tx, commit, doctype, u).await?;
                c.updated += 1;
            }
            None => {
                let mut staged = doc.clone();
                staged.id = Some(doc.id.clone().unwrap_or_else(new_id));
                let mut ids = OrderedIds::new(commit.finished_at);
                self.insert_docs(tx, commit, doctype, vec![(staged, hash)], &mut ids)
                    .await?;
                c.created += 1;
            }
        }
        Ok(())
    }

    /// A row of `id, dedup_key, data` as a [`KeyedDoc`] (no
    /// `cozyMetadata`).
    fn keyed_from_row(&self, doctype: &str, row: &PgRow) -> Result<KeyedDoc, KonnectorError> {
        let err = self.err("reading a document");
        let id: String = row.try_get("id").map_err(&err)?;
        let text: String = row.try_get("data").map_err(&err)?;
        let mut data = self.parse_doc(doctype, &id, &text)?;
        if let Some(obj) = data.as_object_mut() {
            obj.remove("cozyMetadata");
        }
        Ok(KeyedDoc {
            key: row.try_get("dedup_key").map_err(&err)?,
            id,
            data,
        })
    }

    /// A stored document's JSON text, parsed.
    pub(super) fn parse_doc(
        &self,
        doctype: &str,
        id: &str,
        text: &str,
    ) -> Result<serde_json::Value, KonnectorError> {
        serde_json::from_str(text).map_err(|e| {
            KonnectorError::store(format!(
                "document {doctype}/{id} in {} is corrupt: {e}",
                self.place()
            ))
        })
    }

    /// A row of `id, rev, content_hash, account_id, data` as a
    /// [`StoredDoc`], `_id` and `_rev` added, and `cozyMetadata` when the
    /// row has its columns ([`meta_columns`]).
    pub(super) fn stored_doc(
        &self,
        doctype: &str,
        row: &PgRow,
        with_metadata: bool,
    ) -> Result<StoredDoc, KonnectorError> {
        let err = self.err("reading a document");
        let id: String = row.try_get("id").map_err(&err)?;
        let rev: i64 = row.try_get("rev").map_err(&err)?;
        let hash: String = row.try_get("content_hash").map_err(&err)?;
        let text: String = row.try_get("data").map_err(&err)?;
        let mut data = self.parse_doc(doctype, &id, &text)?;
        let rev = format!("{rev}-{}", hash.get(..8).unwrap_or(&hash));
        if let Some(obj) = data.as_object_mut() {
            if with_metadata && !obj.contains_key("cozyMetadata") {
                obj.insert("cozyMetadata".to_owned(), cozy_metadata(row).map_err(&err)?);
            }
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

#[async_trait]
impl DocStore for PgStore {
    async fn find_id(
        &self,
        account_id: &str,
        doctype: &str,
        key: &str,
    ) -> Result<Option<String>, KonnectorError> {
        let err = self.err("looking up a document");
        let mut tx = self.scoped("looking up a document").await?;
        let id = sqlx::query_scalar(
            "SELECT id FROM documents WHERE doctype = $1 AND account_id = $2 AND dedup_key = $3 AND tenant_id = $4",
        )
        .bind(doctype)
        .bind(account_id)
        .bind(key)
        .bind(self.tid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(id)
    }

    async fn commit_run(&self, mut commit: RunCommit) -> Result<CommitCounts, KonnectorError> {
        let err = self.err("committing the run");
        let mut counts = CommitCounts::new();
        let mut ids = OrderedIds::new(commit.finished_at);
        let mut tx = self.scoped("committing the run").await?;
        // Commits of one account one after the other: the second sees the
        // first's documents (see the parent module).
        super::lock_account(&mut tx, &commit.account_id)
            .await
            .map_err(&err)?;

        // Deletes first: they free the keys they held.
        if !commit.deletes.is_empty() {
            let (doctypes, keys): (Vec<&str>, Vec<&str>) = commit
                .deletes
                .iter()
                .map(|(d, k)| (d.as_str(), k.as_str()))
                .unzip();
            for doctype in &doctypes {
                counts.entry((*doctype).to_owned()).or_default();
            }
            let deleted: Vec<String> = sqlx::query_scalar(
                "DELETE FROM documents AS d USING UNNEST($2::text[], $3::text[]) AS x(doctype, k)
                 WHERE d.account_id = $1 AND d.doctype = x.doctype AND d.dedup_key = x.k AND d.tenant_id = $4
                 RETURNING d.doctype",
            )
            .bind(&commit.account_id)
            .bind(doctypes)
            .bind(keys)
            .bind(self.tid())
            .fetch_all(&mut *tx)
            .await
            .map_err(&err)?;
            for doctype in deleted {
                counts.entry(doctype).or_default().deleted += 1;
            }
        }

        let docs = std::mem::take(&mut commit.docs);
        for doc in docs.iter().filter(|d| d.replaces.is_some()) {
            let c = counts.entry(doc.doctype.to_owned()).or_default();
            self.replace_doc(&mut tx, &commit, doc, c).await?;
        }
        // Whether the account had none of a doctype before this commit (a
        // first import): then every document is new, no lookup needed.
        let mut first_import: BTreeMap<&'static str, bool> = BTreeMap::new();
        let mut rest = docs.into_iter().filter(|d| d.replaces.is_none()).peekable();
        while let Some(head) = rest.next() {
            let doctype = head.doctype;
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(head);
            while chunk.len() < CHUNK {
                match rest.next_if(|d| d.doctype == doctype) {
                    Some(d) => chunk.push(d),
                    None => break,
                }
            }
            let first = match first_import.get(doctype) {
                Some(&first) => first,
                None => {
                    let any: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM documents WHERE doctype = $1 AND account_id = $2 AND tenant_id = $3)",
                    )
                    .bind(doctype)
                    .bind(&commit.account_id)
                    .bind(self.tid())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(&err)?;
                    first_import.insert(doctype, !any);
                    !any
                }
            };
            let hashes: Vec<String> = chunk.iter().map(|d| content_hash(&d.json)).collect();
            let c = counts.entry(doctype.to_owned()).or_default();
            if first {
                c.created += chunk.len() as u64;
                let docs = chunk.into_iter().zip(hashes).collect();
                self.insert_docs(&mut tx, &commit, doctype, docs, &mut ids)
                    .await?;
                continue;
            }
            // 1. One lookup for the whole chunk: only new and changed
            // documents answer.
            let keys: Vec<&str> = chunk.iter().map(|d| d.key.as_str()).collect();
            let changed = sqlx::query(LOOKUP_SQL)
                .bind(doctype)
                .bind(&commit.account_id)
                .bind(keys)
                .bind(&hashes)
                .bind(self.tid())
                .fetch_all(&mut *tx)
                .await
                .map_err(&err)?;
            c.skipped += chunk.len().saturating_sub(changed.len()) as u64;
            // 2. Changed documents in one update, new ones in one insert.
            let mut chunk: Vec<Option<(StagedDoc, String)>> =
                chunk.into_iter().zip(hashes).map(Some).collect();
            let mut inserts = Vec::new();
            let mut updates = Updates::default();
            for row in &changed {
                let i: i64 = row.try_get("i").map_err(&err)?;
                let id: Option<String> = row.try_get("id").map_err(&err)?;
                let Some((doc, hash)) = usize::try_from(i)
                    .ok()
                    .and_then(|i| chunk.get_mut(i))
                    .and_then(Option::take)
                else {
                    continue;
                };
                match id {
                    Some(id) => {
                        updates.push(id, hash, String::from(doc.json), None);
                        c.updated += 1;
                    }
                    None => {
                        inserts.push((doc, hash));
                        c.created += 1;
                    }
                }
            }
            self.update_docs(&mut tx, &commit, doctype, updates).await?;
            self.insert_docs(&mut tx, &commit, doctype, inserts, &mut ids)
                .await?;
        }
        let n = sqlx::query(
            "INSERT INTO konnector_state (account_id, state, last_sync, last_run_id, tenant_id) VALUES ($1, $2::jsonb, $3, $4, $5)
             ON CONFLICT (account_id) DO UPDATE SET state = excluded.state, last_sync = excluded.last_sync, last_run_id = excluded.last_run_id
             WHERE konnector_state.tenant_id = excluded.tenant_id",
        )
        .bind(&commit.account_id)
        .bind(commit.state.to_string())
        .bind(commit.finished_at)
        .bind(&commit.run_id)
        .bind(self.tid())
        .execute(&mut *tx)
        .await
        .map_err(&err)?
        .rows_affected();
        if n == 0 {
            // The account id is another tenant's: nothing of this commit
            // is kept.
            return Err(KonnectorError::store(format!(
                "committing the run: account {} belongs to another tenant",
                commit.account_id
            )));
        }
        tx.commit().await.map_err(&err)?;
        Ok(counts)
    }

    async fn list(
        &self,
        doctype: &str,
        account_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredDoc>, KonnectorError> {
        let err = self.err("listing documents");
        let mut tx = self.scoped("listing documents").await?;
        let rows = sqlx::query(concat!(
            "SELECT id, rev, content_hash, data::text AS data, ",
            meta_columns!(),
            " FROM documents
             WHERE tenant_id = $5 AND doctype = $1 AND ($2::text IS NULL OR account_id = $2)
               AND ($3::text IS NULL OR id > $3)
             ORDER BY id LIMIT $4"
        ))
        .bind(doctype)
        .bind(account_id)
        .bind(after)
        .bind(i64::from(limit))
        .bind(self.tid())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        rows.iter()
            .map(|row| self.stored_doc(doctype, row, true))
            .collect()
    }

    async fn count_by_doctype(&self) -> Result<BTreeMap<String, u64>, KonnectorError> {
        let err = self.err("counting documents");
        let mut tx = self.scoped("counting documents").await?;
        let rows = sqlx::query(
            "SELECT doctype, COUNT(*) AS n FROM documents WHERE tenant_id = $1 GROUP BY doctype",
        )
        .bind(self.tid())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let n: i64 = row.try_get("n").map_err(&err)?;
            out.insert(
                row.try_get("doctype").map_err(&err)?,
                u64::try_from(n).unwrap_or(0),
            );
        }
        Ok(out)
    }

    async fn state(&self, account_id: &str) -> Result<Option<KonnectorState>, KonnectorError> {
        let err = self.err("reading the konnector state");
        let mut tx = self.scoped("reading the konnector state").await?;
        let row = sqlx::query(
            "SELECT state::text AS state, last_sync, last_run_id FROM konnector_state WHERE tenant_id = $1 AND account_id = $2",
        )
        .bind(self.tid())
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: String = row.try_get("state").map_err(&err)?;
        Ok(Some(KonnectorState {
            state: serde_json::from_str(&state).map_err(|e| {
                KonnectorError::store(format!("the state of account {account_id} is corrupt: {e}"))
            })?,
            last_sync: row.try_get("last_sync").map_err(&err)?,
            last_run_id: row.try_get("last_run_id").map_err(&err)?,
        }))
    }

    async fn get_by_key(
        &self,
        account_id: &str,
        doctype: &str,
        key: &str,
    ) -> Result<Option<KeyedDoc>, KonnectorError> {
        let err = self.err("reading a document");
        let mut tx = self.scoped("reading a document").await?;
        let row = sqlx::query(
            "SELECT id, dedup_key, data::text AS data FROM documents WHERE doctype = $1 AND account_id = $2 AND dedup_key = $3 AND tenant_id = $4",
        )
        .bind(doctype)
        .bind(account_id)
        .bind(key)
        .bind(self.tid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        row.map(|r| self.keyed_from_row(doctype, &r)).transpose()
    }

    async fn pending_bank_operations(
        &self,
        account_id: &str,
        vendor_account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<KeyedDoc>, KonnectorError> {
        let err = self.err("listing pending bank operations");
        let mut tx = self.scoped("listing pending bank operations").await?;
        let rows = sqlx::query(PENDING_SQL)
            .bind(account_id)
            .bind(vendor_account_id)
            .bind(from.format("%Y-%m-%d").to_string())
            .bind(to.format("%Y-%m-%d").to_string())
            .bind(self.tid())
            .fetch_all(&mut *tx)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        rows.iter()
            .map(|r| self.keyed_from_row("io.cozy.bank.operations", r))
            .collect()
    }

    async fn link_bills_and_operations(
        &self,
        now: DateTime<Utc>,
    ) -> Result<LinkSummary, KonnectorError> {
        self.link_pass(now).await
    }
}
