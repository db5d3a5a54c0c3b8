//! The files API (JSON:API, as cozy-stack answers it), on the account's
//! folder of Gleaner's files tree.
//!
//! Cozy paths map to the files tree: `/<account folder>/a.pdf` is
//! `files/<account folder>/a.pdf`. Directories are the tree's folders,
//! with ids derived from their path (`io.cozy.files.root-dir` for `/`);
//! a file is an `io.cozy.files` document keyed by its path. The konnector
//! may read and write inside its account's folder only; the folders above
//! it can be looked at (cozy-client's `statByPath` and `mkdirp` walk down
//! from `/`) but show only the way down.
//!
//! Uploads wait in the run's scratch folder and reach the tree, with their
//! documents, only when the run commits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::docs::{FILES, WriteError};
use super::mango;
use super::{Shared, forbidden, jsonapi_error, store_failed};

/// The root directory's id, as cozy-stack names it.
pub const ROOT_ID: &str = "io.cozy.files.root-dir";

/// A file uploaded in this run, waiting for the commit.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Where its bytes are.
    pub temp: PathBuf,
    /// Its folder in the files tree (relative).
    pub rel_dir: String,
    /// Its name.
    pub name: String,
    /// Its media type.
    pub mime: String,
}

/// The files API's own state.
pub struct FilesState {
    root: PathBuf,
    account_folder: String,
    uploads_dir: PathBuf,
    /// Uploaded files by document id.
    pub uploads: HashMap<String, Upload>,
    metadata: HashMap<String, Value>,
    created_dirs: Vec<String>,
}

impl FilesState {
    /// The state of a run.
    pub fn new(root: PathBuf, account_folder: String, uploads_dir: PathBuf) -> Self {
        Self {
            root,
            account_folder: account_folder.trim_matches('/').to_owned(),
            uploads_dir,
            uploads: HashMap::new(),
            metadata: HashMap::new(),
            created_dirs: Vec::new(),
        }
    }

    /// The account folder's id (`COZY_FIELDS.folder_to_save`).
    pub fn account_dir_id(&self) -> String {
        dir_id(&self.account_folder)
    }

    /// Folders made by this run (created in the tree when the run commits).
    pub fn created_dirs(&self) -> &[String] {
        &self.created_dirs
    }

    fn inside(&self, rel: &str) -> bool {
        rel == self.account_folder
            || rel
                .strip_prefix(self.account_folder.as_str())
                .is_some_and(|r| r.starts_with('/'))
    }

    fn above(&self, rel: &str) -> bool {
        rel.is_empty()
            || self
                .account_folder
                .strip_prefix(rel)
                .is_some_and(|r| r.starts_with('/'))
    }

    fn dir_exists(&self, rel: &str) -> bool {
        self.above(rel)
            || rel == self.account_folder
            || self.created_dirs.iter().any(|d| d == rel)
            || (self.inside(rel) && abs(&self.root, rel).is_dir())
    }

    /// The relative path of a directory id, when the konnector may see it.
    fn dir_by_id(&self, id: &str) -> Option<String> {
        if id == ROOT_ID {
            return Some(String::new());
        }
        let mut candidates: Vec<String> = Vec::new();
        let mut acc = String::new();
        for part in self.account_folder.split('/') {
            acc = if acc.is_empty() {
                part.to_owned()
            } else {
                format!("{acc}/{part}")
            };
            candidates.push(acc.clone());
        }
        candidates.extend(self.created_dirs.iter().cloned());
        candidates.extend(walk_dirs(&self.root, &self.account_folder));
        candidates.into_iter().find(|c| dir_id(c) == id)
    }
}

fn abs(root: &std::path::Path, rel: &str) -> PathBuf {
    rel.split('/')
        .filter(|p| !p.is_empty())
        .fold(root.to_owned(), |acc, p| acc.join(p))
}

fn walk_dirs(root: &std::path::Path, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![rel.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(abs(root, &dir)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let child = format!("{dir}/{}", e.file_name().to_string_lossy());
                out.push(child.clone());
                stack.push(child);
            }
        }
    }
    out
}

/// A directory's id: derived from its path, stable across runs.
pub fn dir_id(rel: &str) -> String {
    if rel.is_empty() {
        return ROOT_ID.to_owned();
    }
    let digest = Sha256::digest(rel.as_bytes());
    format!("dir-{}", hex::encode(&digest[..16]))
}

fn cozy_path(rel: &str) -> String {
    format!("/{rel}")
}

fn rel_of(cozy: &str) -> Option<String> {
    let rel = cozy.trim_matches('/');
    if rel.split('/').any(|p| p == ".." || p == ".") {
        return None;
    }
    Some(rel.to_owned())
}

fn parent(rel: &str) -> String {
    rel.rsplit_once('/')
        .map(|(p, _)| p.to_owned())
        .unwrap_or_default()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn dir_object(rel: &str, children: Vec<Value>) -> Value {
    let name = rel.rsplit('/').next().unwrap_or_default();
    let id = dir_id(rel);
    let mut attributes = json!({
        "type": "directory",
        "name": name,
        "path": cozy_path(rel),
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "tags": [],
    });
    if !rel.is_empty()
        && let Some(a) = attributes.as_object_mut()
    {
        a.insert("dir_id".into(), Value::String(dir_id(&parent(rel))));
    }
    json!({
        "type": FILES,
        "id": id,
        "attributes": attributes,
        "meta": {"rev": "1-dir"},
        "links": {"self": format!("/files/{id}")},
        "relationships": {
            "contents": {"data": children.iter().map(|c| json!({"type": FILES, "id": c["id"]})).collect::<Vec<_>>()},
        },
    })
}

/// A file document as a JSON:API object (`size` as a string, as
/// cozy-stack sends it).
fn file_object(doc: &Value) -> Value {
    let id = doc.get("_id").cloned().unwrap_or(Value::Null);
    let rev = doc.get("_rev").cloned().unwrap_or(Value::Null);
    let mut attributes = doc.as_object().cloned().unwrap_or_default();
    for k in ["_id", "_rev", "path", "sha256"] {
        attributes.remove(k);
    }
    if let Some(size) = attributes.get("size").and_then(Value::as_u64) {
        attributes.insert("size".into(), Value::String(size.to_string()));
    }
    let dir = attributes.get("dir_id").cloned().unwrap_or(Value::Null);
    json!({
        "type": FILES,
        "id": id,
        "attributes": attributes,
        "meta": {"rev": rev},
        "links": {"self": format!("/files/{}", id.as_str().unwrap_or_default())},
        "relationships": {
            "parent": {"data": {"type": FILES, "id": dir}},
            "referenced_by": {"data": doc.get("referenced_by").cloned().unwrap_or(Value::Array(Vec::new()))},
        },
    })
}

fn jsonapi(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.api+json"),
    );
    r
}

/// The routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/files/metadata", get(stat_by_path))
        .route("/files/_find", post(find))
        .route("/files/upload/metadata", post(upload_metadata))
        .route("/files/download/{id}", get(download))
        .route(
            "/files/{id}/relationships/referenced_by",
            post(add_referenced_by),
        )
        .route(
            "/files/{id}",
            get(stat_by_id)
                .post(create)
                .put(overwrite)
                .patch(patch)
                .delete(trash),
        )
        .route("/files/", post(create_at_root))
}

fn check(shared: &Shared) -> Result<(), Response> {
    if shared.permits(FILES) {
        Ok(())
    } else {
        Err(forbidden(FILES))
    }
}

/// The files (documents) directly in a folder.
async fn files_in(shared: &Shared, rel: &str) -> Result<Vec<Value>, Response> {
    let mut docs = shared.docs.lock().await;
    let id = dir_id(rel);
    docs.live_where(FILES, |d| {
        d.get("dir_id").and_then(Value::as_str) == Some(id.as_str())
    })
    .await
    .map_err(|e| store_failed(&e))
}

async fn directory(shared: &Shared, rel: &str) -> Response {
    let (visible, subdirs) = {
        let Ok(files) = shared.files.lock() else {
            return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "files lock");
        };
        if files.above(rel) {
            // Only the way down to the account's folder.
            let next = files
                .account_folder
                .strip_prefix(rel)
                .map(|r| r.trim_start_matches('/'))
                .and_then(|r| r.split('/').next())
                .map(|n| {
                    if rel.is_empty() {
                        n.to_owned()
                    } else {
                        format!("{rel}/{n}")
                    }
                });
            (false, next.into_iter().collect::<Vec<_>>())
        } else {
            let mut dirs: Vec<String> = files
                .created_dirs
                .iter()
                .filter(|d| parent(d) == rel)
                .cloned()
                .collect();
            if let Ok(entries) = std::fs::read_dir(abs(&files.root, rel)) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        let child = format!("{rel}/{}", e.file_name().to_string_lossy());
                        if !dirs.contains(&child) {
                            dirs.push(child);
                        }
                    }
                }
            }
            (true, dirs)
        }
    };
    let mut included: Vec<Value> = subdirs.iter().map(|d| dir_object(d, Vec::new())).collect();
    if visible {
        match files_in(shared, rel).await {
            Ok(files) => included.extend(files.iter().map(file_object)),
            Err(r) => return r,
        }
    }
    jsonapi(
        StatusCode::OK,
        json!({"data": dir_object(rel, included.clone()), "included": included}),
    )
}

#[derive(Deserialize)]
struct PathQuery {
    #[serde(rename = "Path")]
    path: String,
}

async fn stat_by_path(State(shared): State<Arc<Shared>>, Query(q): Query<PathQuery>) -> Response {
    if let Err(r) = check(&shared) {
        return r;
    }
    let Some(rel) = rel_of(&q.path) else {
        return jsonapi_error(StatusCode::BAD_REQUEST, "a path may not hold `.` or `..`");
    };
    let (is_dir, inside) = match shared.files.lock() {
        Ok(f) => (f.dir_exists(&rel), f.inside(&rel) || f.above(&rel)),
        Err(_) => return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "files lock"),
    };
    if !inside {
        return jsonapi_error(StatusCode::FORBIDDEN, "outside the account's folder");
    }
    if is_dir {
        return directory(&shared, &rel).await;
    }
    let name = rel.rsplit('/').next().unwrap_or_default().to_owned();
    match files_in(&shared, &parent(&rel)).await {
        Err(r) => r,
        Ok(files) => match files
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name.as_str()))
        {
            Some(doc) => jsonapi(StatusCode::OK, json!({"data": file_object(doc)})),
            None => jsonapi_error(StatusCode::NOT_FOUND, "File or directory is not found"),
        },
    }
}

async fn stat_by_id(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if let Err(r) = check(&shared) {
        return r;
    }
    let dir = match shared.files.lock() {
        Ok(f) => f.dir_by_id(&id),
        Err(_) => return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "files lock"),
    };
    if let Some(rel) = dir {
        return directory(&shared, &rel).await;
    }
    let mut docs = shared.docs.lock().await;
    match docs.get(FILES, &id).await {
        Err(e) => store_failed(&e),
        Ok(Some(doc)) => jsonapi(StatusCode::OK, json!({"data": file_object(&doc)})),
        Ok(None) => jsonapi_error(StatusCode::NOT_FOUND, "File or directory is not found"),
    }
}

async fn find(State(shared): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> Response {
    if let Err(r) = check(&shared) {
        return r;
    }
    let query = match mango::Query::parse(&body) {
        Ok(q) => q,
        Err(e) => return jsonapi_error(StatusCode::BAD_REQUEST, &e.0),
    };
    let mut docs = shared.docs.lock().await;
    let all = match docs.live_where(FILES, |d| query.matches(d)).await {
        Ok(a) => a,
        Err(e) => return store_failed(&e),
    };
    let (page, next) = query.run(all);
    let count = page.len();
    jsonapi(
        StatusCode::OK,
        json!({"data": page.iter().map(file_object).collect::<Vec<_>>(), "meta": {"count": count}, "links": if next { json!({"next": "more"}) } else { json!({}) }}),
    )
}

async fn upload_metadata(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Err(r) = check(&shared) {
        return r;
    }
    let attributes = body
        .get("data")
        .and_then(|d| d.get("attributes"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Ok(mut f) = shared.files.lock() {
        f.metadata.insert(id.clone(), attributes.clone());
    }
    jsonapi(
        StatusCode::CREATED,
        json!({"data": {"type": "io.cozy.files.metadata", "id": id, "attributes": attributes}}),
    )
}

#[derive(Deserialize, Default)]
struct CreateQuery {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "MetadataID")]
    metadata_id: Option<String>,
    #[serde(rename = "Tags")]
    tags: Option<String>,
    #[serde(rename = "CreatedAt")]
    created_at: Option<String>,
    #[serde(rename = "SourceAccount")]
    source_account: Option<String>,
    #[serde(rename = "SourceAccountIdentifier")]
    source_account_identifier: Option<String>,
}

async fn create_at_root(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create_in(&shared, ROOT_ID, q, &headers, body).await
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(dir): Path<String>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create_in(&shared, &dir, q, &headers, body).await
}

async fn create_in(
    shared: &Shared,
    dir: &str,
    q: CreateQuery,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check(shared) {
        return r;
    }
    let Some(name) = q
        .name
        .filter(|n| !n.is_empty() && !n.contains('/') && n != "." && n != "..")
    else {
        return jsonapi_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`Name` is missing or not a name",
        );
    };
    let parent_rel = match shared.files.lock() {
        Ok(f) => f.dir_by_id(dir),
        Err(_) => return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "files lock"),
    };
    let Some(parent_rel) = parent_rel else {
        return jsonapi_error(StatusCode::NOT_FOUND, "the parent directory is not found");
    };
    let name = gleaner_framework::store::files::sanitize_name(&name);
    let rel = if parent_rel.is_empty() {
        name.clone()
    } else {
        format!("{parent_rel}/{name}")
    };
    // Writes stay in the account's folder.
    let (inside, exists_dir) = match shared.files.lock() {
        Ok(f) => (f.inside(&rel), f.dir_exists(&rel)),
        Err(_) => return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "files lock"),
    };
    let taken_by_file = match files_in(shared, &parent_rel).await {
        Ok(files) => files
            .iter()
            .any(|f| f.get("name").and_then(Value::as_str) == Some(name.as_str())),
        Err(r) => return r,
    };
    if exists_dir || taken_by_file {
        return jsonapi_error(
            StatusCode::CONFLICT,
            "Conflict: file or directory already exists",
        );
    }
    if !inside {
        return jsonapi_error(
            StatusCode::FORBIDDEN,
            "the konnector may write only in its account's folder",
        );
    }
    match q.kind.as_deref().unwrap_or("file") {
        "directory" => {
            if let Ok(mut f) = shared.files.lock() {
                f.created_dirs.push(rel.clone());
            }
            jsonapi(
                StatusCode::CREATED,
                json!({"data": dir_object(&rel, Vec::new())}),
            )
        }
        "file" => {
            let mime = content_type(headers);
            if let Some(r) = check_md5(headers, &body) {
                return r;
            }
            // Checked now, as Gleaner checks its own downloads (not empty,
            // the declared type, not an error page): a refused upload drops
            // that file (and the libraries drop its bill), not the run.
            if let Some(r) = check_content(&body, &mime, &name) {
                return r;
            }
            let metadata = q.metadata_id.as_deref().and_then(|id| {
                shared
                    .files
                    .lock()
                    .ok()
                    .and_then(|f| f.metadata.get(id).cloned())
            });
            let mut doc = Map::new();
            doc.insert("type".into(), json!("file"));
            doc.insert("name".into(), json!(name));
            doc.insert("dir_id".into(), json!(dir_id(&parent_rel)));
            doc.insert("path".into(), json!(rel));
            doc.insert(
                "created_at".into(),
                json!(q.created_at.clone().unwrap_or_else(now)),
            );
            doc.insert("updated_at".into(), json!(now()));
            doc.insert("trashed".into(), json!(false));
            doc.insert("executable".into(), json!(false));
            let tags: Vec<&str> = q
                .tags
                .as_deref()
                .map(|t| t.split(',').filter(|t| !t.is_empty()).collect())
                .unwrap_or_default();
            doc.insert("tags".into(), json!(tags));
            doc.insert("metadata".into(), metadata.unwrap_or_else(|| json!({})));
            doc.insert("referenced_by".into(), json!([]));
            // What the libraries look files up by on the next run (the
            // store rebuilds it from the account when it commits).
            doc.insert(
                "cozyMetadata".into(),
                json!({
                    "createdByApp": shared.slug,
                    "sourceAccount": q.source_account.clone().unwrap_or_else(|| shared.account_id.clone()),
                    "sourceAccountIdentifier": q.source_account_identifier,
                }),
            );
            fill_content(&mut doc, &mime, &body);
            store_upload(shared, None, doc, &parent_rel, &name, &mime, body).await
        }
        other => jsonapi_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("`Type` {other} is not file or directory"),
        ),
    }
}

/// The upload's media type (`application/octet-stream` when not given).
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "application/octet-stream".to_owned())
}

fn check_content(body: &[u8], mime: &str, name: &str) -> Option<Response> {
    gleaner_framework::store::files::check_download(body, mime, name)
        .err()
        .map(|e| {
            tracing::warn!(file = %name, error = %e.message, "an upload was refused");
            jsonapi_error(StatusCode::UNPROCESSABLE_ENTITY, &e.message)
        })
}

fn check_md5(headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let given = headers.get("content-md5").and_then(|v| v.to_str().ok())?;
    let actual = base64::engine::general_purpose::STANDARD.encode(md5_of(body));
    (given.trim() != actual).then(|| {
        jsonapi_error(
            StatusCode::PRECONDITION_FAILED,
            "Content-MD5 does not match the body: the upload was cut",
        )
    })
}

fn md5_of(body: &[u8]) -> Vec<u8> {
    use md5::Digest as _;
    md5::Md5::digest(body).to_vec()
}

fn fill_content(doc: &mut Map<String, Value>, mime: &str, body: &[u8]) {
    doc.insert("size".into(), json!(body.len() as u64));
    doc.insert("mime".into(), json!(mime));
    doc.insert("class".into(), json!(class_of(mime)));
    doc.insert(
        "md5sum".into(),
        json!(base64::engine::general_purpose::STANDARD.encode(md5_of(body))),
    );
    doc.insert("sha256".into(), json!(hex::encode(Sha256::digest(body))));
}

fn class_of(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or_default() {
        _ if mime == "application/pdf" => "pdf",
        "image" => "image",
        "text" => "text",
        "audio" => "audio",
        "video" => "video",
        _ => "files",
    }
}

async fn store_upload(
    shared: &Shared,
    id: Option<String>,
    doc: Map<String, Value>,
    rel_dir: &str,
    name: &str,
    mime: &str,
    body: Bytes,
) -> Response {
    let mut docs = shared.docs.lock().await;
    let written = match &id {
        None => docs.create(FILES, doc).await,
        Some(id) => docs.update(FILES, id, doc).await,
    };
    let data = match written {
        Err(e) => return store_failed(&e),
        Ok(Err(WriteError::Conflict)) => {
            return jsonapi_error(
                StatusCode::PRECONDITION_FAILED,
                "the file's revision is not the current one",
            );
        }
        Ok(Err(WriteError::NotFound)) => {
            return jsonapi_error(StatusCode::NOT_FOUND, "File or directory is not found");
        }
        Ok(Err(WriteError::Bad(why))) => return jsonapi_error(StatusCode::BAD_REQUEST, &why),
        Ok(Ok(data)) => data,
    };
    let Some(file_id) = data.get("_id").and_then(Value::as_str).map(str::to_owned) else {
        return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "a file without id");
    };
    let temp = match shared.files.lock() {
        Ok(f) => f.uploads_dir.join(&file_id),
        Err(_) => return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "files lock"),
    };
    if let Some(dir) = temp.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return jsonapi_error(
            StatusCode::INSUFFICIENT_STORAGE,
            &format!("cannot keep the upload: {e}"),
        );
    }
    if let Err(e) = std::fs::write(&temp, &body) {
        return jsonapi_error(
            StatusCode::INSUFFICIENT_STORAGE,
            &format!("cannot keep the upload: {e}"),
        );
    }
    if let Ok(mut f) = shared.files.lock() {
        f.uploads.insert(
            file_id,
            Upload {
                temp,
                rel_dir: rel_dir.to_owned(),
                name: name.to_owned(),
                mime: mime.to_owned(),
            },
        );
    }
    let status = if id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    jsonapi(status, json!({"data": file_object(&data)}))
}

/// A file's document, for a handler (the token must reach files).
async fn current_file(shared: &Shared, id: &str) -> Result<Map<String, Value>, Response> {
    check(shared)?;
    let mut docs = shared.docs.lock().await;
    match docs.get(FILES, id).await {
        Err(e) => Err(store_failed(&e)),
        Ok(Some(Value::Object(doc))) => Ok(doc),
        Ok(_) => Err(jsonapi_error(
            StatusCode::NOT_FOUND,
            "File or directory is not found",
        )),
    }
}

async fn overwrite(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut doc = match current_file(&shared, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let Some(r) = check_md5(&headers, &body) {
        return r;
    }
    if let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && doc.get("_rev").and_then(Value::as_str) != Some(want.trim_matches('"'))
    {
        return jsonapi_error(
            StatusCode::PRECONDITION_FAILED,
            "the file's revision is not the current one",
        );
    }
    let mime = content_type(&headers);
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(r) = check_content(&body, &mime, &name) {
        return r;
    }
    if let Some(meta) = q.metadata_id.as_deref().and_then(|m| {
        shared
            .files
            .lock()
            .ok()
            .and_then(|f| f.metadata.get(m).cloned())
    }) {
        doc.insert("metadata".into(), meta);
    }
    doc.insert("updated_at".into(), json!(now()));
    fill_content(&mut doc, &mime, &body);
    let rel_dir = parent(doc.get("path").and_then(Value::as_str).unwrap_or_default());
    store_upload(&shared, Some(id), doc, &rel_dir, &name, &mime, body).await
}

async fn patch(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut doc = match current_file(&shared, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let attributes = body
        .get("data")
        .and_then(|d| d.get("attributes"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in attributes {
        match k.as_str() {
            "name" | "dir_id" | "path" if doc.get(&k) != Some(&v) => {
                return jsonapi_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Gleaner does not move or rename a konnector's files",
                );
            }
            "size" | "md5sum" | "mime" | "class" | "sha256" => {}
            _ => {
                doc.insert(k, v);
            }
        }
    }
    doc.insert("updated_at".into(), json!(now()));
    match update_file(&shared, &id, doc).await {
        Ok(data) => jsonapi(StatusCode::OK, json!({"data": file_object(&data)})),
        Err(r) => r,
    }
}

/// Replaces a file's document (its attributes; the content stays).
async fn update_file(
    shared: &Shared,
    id: &str,
    doc: Map<String, Value>,
) -> Result<Value, Response> {
    let mut docs = shared.docs.lock().await;
    match docs.update(FILES, id, doc).await {
        Err(e) => Err(store_failed(&e)),
        Ok(Ok(data)) => Ok(data),
        Ok(Err(_)) => Err(jsonapi_error(
            StatusCode::CONFLICT,
            "the file changed meanwhile",
        )),
    }
}

/// `DELETE /files/:id` moves a file to the trash in Cozy: here it stays,
/// marked `trashed`.
async fn trash(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let mut doc = match current_file(&shared, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    doc.insert("trashed".into(), json!(true));
    match update_file(&shared, &id, doc).await {
        Ok(data) => jsonapi(StatusCode::OK, json!({"data": file_object(&data)})),
        Err(r) => r,
    }
}

async fn download(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let doc = match current_file(&shared, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let (path, inside) = match shared.files.lock() {
        Ok(f) => {
            let rel = doc.get("path").and_then(Value::as_str).unwrap_or_default();
            match f.uploads.get(&id) {
                Some(u) => (u.temp.clone(), true),
                None => (abs(&f.root, rel), f.inside(rel)),
            }
        }
        Err(_) => return jsonapi_error(StatusCode::INTERNAL_SERVER_ERROR, "files lock"),
    };
    if !inside {
        return jsonapi_error(StatusCode::FORBIDDEN, "outside the account's folder");
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mime = doc
                .get("mime")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
                .to_owned();
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, mime)
                .body(Body::from(bytes))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Err(_) => jsonapi_error(StatusCode::NOT_FOUND, "the file's content is missing"),
    }
}

async fn add_referenced_by(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut doc = match current_file(&shared, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let refs: Vec<Value> = match body.get("data") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let mut current: Vec<Value> = doc
        .get("referenced_by")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for r in refs {
        let r = json!({"type": r.get("type").cloned().unwrap_or(Value::Null), "id": r.get("id").cloned().unwrap_or(Value::Null)});
        if !current.contains(&r) {
            current.push(r);
        }
    }
    let count = current.len();
    doc.insert("referenced_by".into(), Value::Array(current.clone()));
    match update_file(&shared, &id, doc).await {
        Ok(data) => jsonapi(
            StatusCode::OK,
            json!({"meta": {"rev": data["_rev"], "count": count}, "data": current}),
        ),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids() {
        let f = FilesState::new(
            PathBuf::from("/nonexistent"),
            "Free/acc".into(),
            PathBuf::new(),
        );
        assert!(f.above("") && f.above("Free") && !f.above("Free/acc") && !f.above("Fr"));
        assert!(f.inside("Free/acc") && f.inside("Free/acc/x") && !f.inside("Free/accx"));
        assert_eq!(
            f.dir_by_id(&f.account_dir_id()).as_deref(),
            Some("Free/acc")
        );
        assert_eq!(f.dir_by_id(ROOT_ID).as_deref(), Some(""));
        assert_eq!(rel_of("/a/../b"), None);
        assert_eq!(rel_of("/Free/acc/"), Some("Free/acc".into()));
    }
}
