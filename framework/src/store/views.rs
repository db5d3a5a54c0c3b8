//! Read-only views for pages that sum or sort thousands of documents: a
//! few top-level fields of each document, picked out by SQLite's JSON
//! operators, without decoding the documents in Rust.

use serde_json::Value;
use sqlx::Row;

use super::SqliteStore;
use crate::error::KonnectorError;

/// One document's picked fields, in the order they were asked for (`Null`
/// where the document has no such field).
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    /// The document's id.
    pub id: String,
    /// The fields' values.
    pub values: Vec<Value>,
}

use super::backend::plain_key;

impl SqliteStore {
    /// The top-level `fields` of every document of `doctype` (of one
    /// account, or all), by id. A field that is not a plain key (letters,
    /// digits, `_`) is refused: this is for the pages' own field names.
    pub async fn project(
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
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT id");
        for field in fields {
            // `->` gives the value as JSON text (numbers keep their digits).
            q.push(", data -> ").push_bind(format!("$.{field}"));
        }
        q.push(" FROM documents WHERE doctype = ")
            .push_bind(doctype);
        if let Some(account) = account_id {
            q.push(" AND account_id = ").push_bind(account);
        }
        let rows = q.build().fetch_all(self.pool()).await.map_err(|e| {
            super::sqlite_error::classify("reading a document view", self.path(), &e)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0).map_err(|e| {
                super::sqlite_error::classify("reading a document view", self.path(), &e)
            })?;
            let mut values = Vec::with_capacity(fields.len());
            for i in 0..fields.len() {
                let text: Option<String> = row.try_get(i + 1).map_err(|e| {
                    super::sqlite_error::classify("reading a document view", self.path(), &e)
                })?;
                values.push(match text {
                    Some(t) => serde_json::from_str(&t).map_err(|e| {
                        KonnectorError::store(format!(
                            "document {doctype}/{id} in {} is corrupt: {e}",
                            self.path().display()
                        ))
                    })?,
                    None => Value::Null,
                });
            }
            out.push(Projected { id, values });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::plain_key;

    #[test]
    fn only_plain_keys_are_picked() {
        assert!(plain_key("date"));
        assert!(plain_key("is_refund2"));
        assert!(!plain_key(""));
        assert!(!plain_key("a.b"));
        assert!(!plain_key("x') OR 1=1 --"));
        assert!(!plain_key("$.date"));
    }
}
