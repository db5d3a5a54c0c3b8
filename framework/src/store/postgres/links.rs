//! The bill↔operation linking pass and the document views on PostgreSQL.
//!
//! The pass is SQLite's ([`crate::store::links`]): the same planning code
//! (`LinkInput`, [`crate::bank::linking`]) over the documents read in one
//! transaction, only the SQL at its edges differs. The transaction holds
//! the linking lock exclusive, which commits take shared: a run
//! committing meanwhile waits and is seen by the next pass, as with
//! SQLite's `IMMEDIATE`.
//!
//! The pass and the views see one tenant's documents: the statements run
//! in its scoped transaction and filter on its `tenant_id` (bills are
//! linked only to the same tenant's operations).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::Row;

use super::{PgStore, lock_class};
use crate::bank::linking::{self, BILLS, OPERATIONS};
use crate::error::KonnectorError;
use crate::store::backend::plain_key;
use crate::store::links::{LinkInput, edited};
use crate::store::{LinkSummary, Projected, StoredDoc};

impl PgStore {
    /// Runs the linking pass (see the [module](self)).
    pub(super) async fn link_pass(
        &self,
        now: DateTime<Utc>,
    ) -> Result<LinkSummary, KonnectorError> {
        let err = self.err("linking bills and bank operations");
        let mut tx = self.scoped("linking bills and bank operations").await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(lock_class::LINKING)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        let mut input = LinkInput::default();
        {
            let mut rows =
                sqlx::query(
                    "SELECT id, data::text AS data FROM documents WHERE tenant_id = $1 AND doctype = $2",
                )
                .bind(self.tid())
                .bind(BILLS)
                .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(&err)? {
                let id: &str = row.try_get("id").map_err(&err)?;
                let text: &str = row.try_get("data").map_err(&err)?;
                input.add_bill(id, text);
            }
        }
        input.bills_read();
        {
            let mut rows =
                sqlx::query(
                    "SELECT id, data::text AS data FROM documents WHERE tenant_id = $1 AND doctype = $2",
                )
                .bind(self.tid())
                .bind(OPERATIONS)
                .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(&err)? {
                let text: &str = row.try_get("data").map_err(&err)?;
                if let Some(probe) = input.probe_operation(text) {
                    let id: &str = row.try_get("id").map_err(&err)?;
                    input.add_operation(id, probe);
                }
            }
        }
        let (mut summary, plan) = input.plan();
        summary.links = plan.links;
        for (id, bill_ids) in &plan.operations {
            if rewrite(&mut tx, self.tid(), OPERATIONS, id, now, |doc| {
                linking::set_operation_bills(doc, bill_ids)
            })
            .await
            .map_err(&err)?
            {
                summary.operations_changed += 1;
            }
        }
        for (id, op_ids) in &plan.bills {
            if rewrite(&mut tx, self.tid(), BILLS, id, now, |doc| {
                linking::set_bill_operations(doc, op_ids)
            })
            .await
            .map_err(&err)?
            {
                summary.bills_changed += 1;
            }
        }
        tx.commit().await.map_err(&err)?;
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

    /// [`crate::store::Backend::link_count`].
    pub(super) async fn count_links(&self) -> Result<u64, KonnectorError> {
        let err = self.err("counting bank links");
        let mut tx = self.scoped("counting bank links").await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(CASE WHEN jsonb_typeof(data -> 'bills') = 'array'
                THEN jsonb_array_length(data -> 'bills') ELSE 0 END), 0)::bigint
             FROM documents WHERE tenant_id = $1 AND doctype = $2",
        )
        .bind(self.tid())
        .bind(OPERATIONS)
        .fetch_one(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// [`crate::store::Backend::linked_operations`]: dates compared as
    /// SQLite does (JSON strings byte by byte).
    pub(super) async fn operations_linked(
        &self,
        limit: u32,
    ) -> Result<Vec<StoredDoc>, KonnectorError> {
        let err = self.err("listing linked bank operations");
        let mut tx = self.scoped("listing linked bank operations").await?;
        let rows = sqlx::query(
            "SELECT id, rev, content_hash, account_id, data::text AS data FROM documents
             WHERE tenant_id = $3 AND doctype = $1 AND jsonb_typeof(data -> 'bills') = 'array'
               AND jsonb_array_length(data -> 'bills') > 0
             ORDER BY (data ->> 'date') COLLATE \"C\" DESC NULLS LAST, id LIMIT $2",
        )
        .bind(OPERATIONS)
        .bind(i64::from(limit))
        .bind(self.tid())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        rows.iter()
            .map(|r| self.stored_doc(OPERATIONS, r, false))
            .collect()
    }

    /// [`crate::store::Backend::docs_by_id`].
    pub(super) async fn docs_with_ids(
        &self,
        doctype: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, StoredDoc>, KonnectorError> {
        let err = self.err("reading documents");
        let mut out = BTreeMap::new();
        let mut tx = self.scoped("reading documents").await?;
        for chunk in ids.chunks(super::docs::CHUNK) {
            let rows = sqlx::query(
                "SELECT id, rev, content_hash, account_id, data::text AS data FROM documents
                 WHERE tenant_id = $3 AND doctype = $1 AND id = ANY($2::text[])",
            )
            .bind(doctype)
            .bind(chunk)
            .bind(self.tid())
            .fetch_all(&mut *tx)
            .await
            .map_err(&err)?;
            for r in &rows {
                let doc = self.stored_doc(doctype, r, false)?;
                out.insert(doc.id.clone(), doc);
            }
        }
        tx.commit().await.map_err(&err)?;
        Ok(out)
    }

    /// [`crate::store::Backend::project`]: `data -> 'field'` per field.
    pub(super) async fn project_fields(
        &self,
        doctype: &str,
        account_id: Option<&str>,
        fields: &[&str],
    ) -> Result<Vec<Projected>, KonnectorError> {
        if let Some(bad) = fields.iter().find(|f| !plain_key(f)) {
            return Err(KonnectorError::store(format!(
                "a document view asked for `{bad}`, which is not a plain field name"
            )));
        }
        let err = self.err("reading a document view");
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT id");
        for field in fields {
            q.push(", (data -> ").push_bind(*field).push(")::text");
        }
        q.push(" FROM documents WHERE tenant_id = ")
            .push_bind(self.tid())
            .push(" AND doctype = ")
            .push_bind(doctype);
        if let Some(account) = account_id {
            q.push(" AND account_id = ").push_bind(account);
        }
        q.push(" ORDER BY id");
        let mut tx = self.scoped("reading a document view").await?;
        let rows = q.build().fetch_all(&mut *tx).await.map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0).map_err(&err)?;
            let mut values = Vec::with_capacity(fields.len());
            for i in 0..fields.len() {
                let text: Option<String> = row.try_get(i + 1).map_err(&err)?;
                values.push(match text {
                    Some(t) => self.parse_doc(doctype, &id, &t)?,
                    None => Value::Null,
                });
            }
            out.push(Projected { id, values });
        }
        Ok(out)
    }
}

/// Applies `edit` to a stored document of `tenant` and writes it back with the next
/// revision and `updatedAt`, its content hash unchanged (see
/// [`crate::store::links`]). Returns whether the document changed.
async fn rewrite(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    doctype: &str,
    id: &str,
    now: DateTime<Utc>,
    edit: impl FnOnce(&mut Value),
) -> Result<bool, sqlx::Error> {
    let Some(text): Option<String> = sqlx::query_scalar(
        "SELECT data::text FROM documents WHERE tenant_id = $3 AND doctype = $1 AND id = $2 FOR UPDATE",
    )
    .bind(doctype)
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(false);
    };
    let Some(doc) = edited(&text, &now.to_rfc3339(), edit) else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE documents SET data = $1::jsonb, rev = rev + 1, updated_at = $2
         WHERE tenant_id = $5 AND doctype = $3 AND id = $4",
    )
    .bind(doc.to_string())
    .bind(now)
    .bind(doctype)
    .bind(id)
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}
