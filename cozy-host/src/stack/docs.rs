//! The run's view of the account's documents: what the store holds,
//! loaded per doctype on first use, with this run's writes on top.
//!
//! Nothing here writes to the store. When the konnector exits with
//! success, [`RunDocs::changed`] hands every created, updated or deleted
//! document to the run, which stages them; the runner then commits them in
//! one transaction with the account's state, as for any konnector. A run
//! that fails leaves the store as it was.
//!
//! Keys: a document an external konnector creates is keyed by its id
//! (Cozy konnectors deduplicate themselves, with `hydrateAndFilter`), a
//! file by its path in the files tree (as Gleaner's own files are).

use std::collections::{BTreeMap, HashMap};

use gleaner_framework::{AccountDocs, KonnectorError};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The files doctype.
pub const FILES: &str = "io.cozy.files";

/// One document as the run sees it.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The current revision (`N-hash`).
    pub rev: String,
    /// The document with `_id` and `_rev`.
    pub data: Value,
    /// The key it is (or will be) stored under.
    pub key: String,
    /// Changed by this run.
    pub dirty: bool,
    /// Deleted by this run.
    pub deleted: bool,
}

/// What a write was refused for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// No such document.
    NotFound,
    /// The revision given is not the current one (CouchDB's 409).
    Conflict,
    /// The body is not a document.
    Bad(String),
}

/// The run's documents, by doctype then id.
pub struct RunDocs {
    stored: AccountDocs,
    slug: String,
    loaded: HashMap<String, BTreeMap<String, Doc>>,
}

impl RunDocs {
    /// An empty view over the account's stored documents.
    pub fn new(stored: AccountDocs, slug: &str) -> Self {
        Self {
            stored,
            slug: slug.to_owned(),
            loaded: HashMap::new(),
        }
    }

    /// The doctype's documents (loaded from the store the first time).
    pub async fn doctype(
        &mut self,
        doctype: &str,
    ) -> Result<&mut BTreeMap<String, Doc>, KonnectorError> {
        if !self.loaded.contains_key(doctype) {
            let mut docs = BTreeMap::new();
            for stored in self.stored.all(doctype).await? {
                let mut data = stored.data;
                if let Some(meta) = data.get_mut("cozyMetadata").and_then(Value::as_object_mut) {
                    // The store writes its own name; the konnector looks
                    // for its own (saveFiles selects on createdByApp).
                    meta.insert("createdByApp".into(), Value::String(self.slug.clone()));
                }
                let key = key_of(doctype, &stored.id, &data);
                docs.insert(
                    stored.id.clone(),
                    Doc {
                        rev: stored.rev,
                        data,
                        key,
                        dirty: false,
                        deleted: false,
                    },
                );
            }
            self.loaded.insert(doctype.to_owned(), docs);
        }
        match self.loaded.get_mut(doctype) {
            Some(docs) => Ok(docs),
            None => Err(KonnectorError::store(
                "a doctype vanished from the run's view",
            )),
        }
    }

    /// The live (not deleted) document.
    pub async fn get(&mut self, doctype: &str, id: &str) -> Result<Option<Value>, KonnectorError> {
        Ok(self
            .doctype(doctype)
            .await?
            .get(id)
            .filter(|d| !d.deleted)
            .map(|d| d.data.clone()))
    }

    /// Every live document of the doctype, in id order.
    pub async fn live(&mut self, doctype: &str) -> Result<Vec<Value>, KonnectorError> {
        self.live_where(doctype, |_| true).await
    }

    /// The live documents of the doctype that `keep` accepts, in id order
    /// (only those are copied: a query per bill over thousands of stored
    /// files must not copy them all each time).
    pub async fn live_where(
        &mut self,
        doctype: &str,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>, KonnectorError> {
        Ok(self
            .doctype(doctype)
            .await?
            .values()
            .filter(|d| !d.deleted && keep(&d.data))
            .map(|d| d.data.clone())
            .collect())
    }

    /// Creates a document (its `_id` if it has one, else a new id); a live
    /// document with that id is a conflict. Returns the stored form.
    pub async fn create(
        &mut self,
        doctype: &str,
        mut doc: Map<String, Value>,
    ) -> Result<Result<Value, WriteError>, KonnectorError> {
        let id = match doc.get("_id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::String(_)) | None => uuid::Uuid::new_v4().simple().to_string(),
            Some(_) => return Ok(Err(WriteError::Bad("`_id` must be a string".into()))),
        };
        let docs = self.doctype(doctype).await?;
        let previous = docs.get(&id);
        if previous.is_some_and(|d| !d.deleted) {
            return Ok(Err(WriteError::Conflict));
        }
        let generation = previous.map(|d| generation(&d.rev)).unwrap_or(0);
        doc.remove("_rev");
        Ok(Ok(write(docs, doctype, &id, generation, doc, None)))
    }

    /// Replaces a document; `_rev` must be the current revision. A `PUT`
    /// without `_rev` on a missing id creates it (cozy-stack does).
    pub async fn update(
        &mut self,
        doctype: &str,
        id: &str,
        mut doc: Map<String, Value>,
    ) -> Result<Result<Value, WriteError>, KonnectorError> {
        let given = doc.get("_rev").and_then(Value::as_str).map(str::to_owned);
        let docs = self.doctype(doctype).await?;
        let current = docs.get(id).filter(|d| !d.deleted).cloned();
        let Some(current) = current else {
            return if given.is_none() {
                doc.insert("_id".into(), Value::String(id.to_owned()));
                Box::pin(self.create(doctype, doc)).await
            } else {
                Ok(Err(WriteError::NotFound))
            };
        };
        if given.as_deref() != Some(current.rev.as_str()) {
            return Ok(Err(WriteError::Conflict));
        }
        doc.remove("_rev");
        // A file is keyed by its path; anything else keeps its key.
        let key = (doctype != FILES).then(|| current.key.clone());
        Ok(Ok(write(
            docs,
            doctype,
            id,
            generation(&current.rev),
            doc,
            key,
        )))
    }

    /// Deletes a document at `rev` (`None`: any revision). Returns the
    /// deletion's revision.
    pub async fn delete(
        &mut self,
        doctype: &str,
        id: &str,
        rev: Option<&str>,
    ) -> Result<Result<String, WriteError>, KonnectorError> {
        let docs = self.doctype(doctype).await?;
        let Some(doc) = docs.get_mut(id).filter(|d| !d.deleted) else {
            return Ok(Err(WriteError::NotFound));
        };
        if rev.is_some_and(|r| r != doc.rev) {
            return Ok(Err(WriteError::Conflict));
        }
        doc.rev = next_rev(generation(&doc.rev), &Value::Null);
        doc.deleted = true;
        doc.dirty = true;
        Ok(Ok(doc.rev.clone()))
    }

    /// Every document this run created, changed or deleted:
    /// `(doctype, id, doc)`.
    pub fn changed(&self) -> Vec<(&str, &str, &Doc)> {
        let mut out = Vec::new();
        for (doctype, docs) in &self.loaded {
            for (id, doc) in docs {
                if doc.dirty {
                    out.push((doctype.as_str(), id.as_str(), doc));
                }
            }
        }
        out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        out
    }
}

/// Writes `doc` as the next revision after `generation`, marked changed;
/// `key` (else [`key_of`]) is the key it will be stored under. Returns the
/// document as served, with `_id` and `_rev`.
fn write(
    docs: &mut BTreeMap<String, Doc>,
    doctype: &str,
    id: &str,
    generation: u64,
    mut doc: Map<String, Value>,
    key: Option<String>,
) -> Value {
    doc.insert("_id".into(), Value::String(id.to_owned()));
    let data = Value::Object(doc);
    let rev = next_rev(generation, &data);
    let data = with_rev(data, &rev);
    let key = key.unwrap_or_else(|| key_of(doctype, id, &data));
    docs.insert(
        id.to_owned(),
        Doc {
            rev,
            data: data.clone(),
            key,
            dirty: true,
            deleted: false,
        },
    );
    data
}

/// The key a document is stored under: a file's path, else its id.
pub fn key_of(doctype: &str, id: &str, data: &Value) -> String {
    if doctype == FILES
        && let Some(path) = data.get("path").and_then(Value::as_str)
        && !path.is_empty()
    {
        return path.to_owned();
    }
    id.to_owned()
}

fn generation(rev: &str) -> u64 {
    rev.split_once('-')
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

fn next_rev(generation: u64, data: &Value) -> String {
    let digest = Sha256::digest(data.to_string().as_bytes());
    format!("{}-{}", generation + 1, hex::encode(&digest[..16]))
}

fn with_rev(mut data: Value, rev: &str) -> Value {
    if let Some(obj) = data.as_object_mut() {
        obj.insert("_rev".into(), Value::String(rev.to_owned()));
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_count_up_and_files_key_by_path() {
        assert_eq!(generation("3-abc"), 3);
        assert!(next_rev(3, &Value::Null).starts_with("4-"));
        let file = serde_json::json!({"path": "Free/acc/a.pdf"});
        assert_eq!(key_of(FILES, "id1", &file), "Free/acc/a.pdf");
        assert_eq!(key_of("io.cozy.bills", "id1", &file), "id1");
    }
}
