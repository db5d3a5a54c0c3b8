//! `/data/:doctype/...`: documents, CouchDB style, on the run's view
//! ([`super::docs::RunDocs`]).
//!
//! Responses have cozy-stack's shapes: a create or update answers
//! `{id, ok, rev, type, data}`, a delete `{id, ok, rev, type, deleted}`,
//! `_find` `{docs, next}`, `_all_docs` CouchDB's `{total_rows, offset,
//! rows}`, `_normal_docs` `{rows, total_rows, bookmark}`, `_bulk_docs` one
//! result per document.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::docs::WriteError;
use super::mango;
use super::{Shared, couch_error, empty, forbidden, json_response, store_failed};

/// The routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/data/{doctype}/", post(create))
        .route("/data/{doctype}", post(create))
        .route("/data/{doctype}/_find", post(find))
        .route("/data/{doctype}/_index", post(index))
        .route(
            "/data/{doctype}/_all_docs",
            post(all_docs_post).get(all_docs_get),
        )
        .route("/data/{doctype}/_normal_docs", get(normal_docs))
        .route("/data/{doctype}/_bulk_docs", post(bulk_docs))
        .route(
            "/data/{doctype}/{id}",
            get(get_doc).put(put_doc).delete(delete_doc),
        )
        .route(
            "/data/{doctype}/{id}/relationships/references",
            post(references).delete(references),
        )
}

fn write_error(e: WriteError, doctype: &str, id: &str) -> Response {
    match e {
        WriteError::NotFound => couch_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no {doctype} document {id}"),
        ),
        WriteError::Conflict => couch_error(
            StatusCode::CONFLICT,
            "conflict",
            "Document update conflict.",
        ),
        WriteError::Bad(why) => couch_error(StatusCode::BAD_REQUEST, "bad_request", &why),
    }
}

fn object(body: Value) -> Result<Map<String, Value>, Response> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(couch_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a document must be a JSON object",
        )),
    }
}

/// Refuses doctypes the token does not reach, and the files doctype
/// (files go through `/files/`, which keeps their content and path).
fn check(shared: &Shared, doctype: &str, write: bool) -> Result<(), Response> {
    if !shared.permits(doctype) {
        return Err(forbidden(doctype));
    }
    if write && doctype == super::docs::FILES {
        return Err(couch_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "io.cozy.files documents are written through /files/",
        ));
    }
    if doctype == super::account::ACCOUNTS {
        return Err(couch_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this run's token reaches only its own account, by id",
        ));
    }
    Ok(())
}

/// Every live document of a doctype the token may read, in id order.
async fn readable(shared: &Shared, doctype: &str) -> Result<Vec<Value>, Response> {
    check(shared, doctype, false)?;
    let mut docs = shared.docs.lock().await;
    docs.live(doctype).await.map_err(|e| store_failed(&e))
}

fn written(doctype: &str, data: &Value) -> Value {
    json!({
        "id": data.get("_id").cloned().unwrap_or(Value::Null),
        "ok": true,
        "rev": data.get("_rev").cloned().unwrap_or(Value::Null),
        "type": doctype,
        "data": data,
    })
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(doctype): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Err(r) = check(&shared, &doctype, true) {
        return r;
    }
    let doc = match object(body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let id = doc
        .get("_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut docs = shared.docs.lock().await;
    match docs.create(&doctype, doc).await {
        Err(e) => store_failed(&e),
        Ok(Err(e)) => write_error(e, &doctype, &id),
        Ok(Ok(data)) => json_response(StatusCode::CREATED, written(&doctype, &data)),
    }
}

async fn get_doc(
    State(shared): State<Arc<Shared>>,
    Path((doctype, id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = check(&shared, &doctype, false) {
        return r;
    }
    let mut docs = shared.docs.lock().await;
    match docs.get(&doctype, &id).await {
        Err(e) => store_failed(&e),
        Ok(None) => couch_error(StatusCode::NOT_FOUND, "not_found", "missing"),
        Ok(Some(doc)) => json_response(StatusCode::OK, doc),
    }
}

async fn put_doc(
    State(shared): State<Arc<Shared>>,
    Path((doctype, id)): Path<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Err(r) = check(&shared, &doctype, true) {
        return r;
    }
    let doc = match object(body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut docs = shared.docs.lock().await;
    match docs.update(&doctype, &id, doc).await {
        Err(e) => store_failed(&e),
        Ok(Err(e)) => write_error(e, &doctype, &id),
        Ok(Ok(data)) => json_response(StatusCode::OK, written(&doctype, &data)),
    }
}

#[derive(Deserialize)]
struct RevQuery {
    rev: Option<String>,
}

async fn delete_doc(
    State(shared): State<Arc<Shared>>,
    Path((doctype, id)): Path<(String, String)>,
    Query(q): Query<RevQuery>,
) -> Response {
    if let Err(r) = check(&shared, &doctype, true) {
        return r;
    }
    let mut docs = shared.docs.lock().await;
    match docs.delete(&doctype, &id, q.rev.as_deref()).await {
        Err(e) => store_failed(&e),
        Ok(Err(e)) => write_error(e, &doctype, &id),
        Ok(Ok(rev)) => json_response(
            StatusCode::OK,
            json!({"id": id, "ok": true, "rev": rev, "type": doctype, "deleted": true}),
        ),
    }
}

async fn find(
    State(shared): State<Arc<Shared>>,
    Path(doctype): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let query = match mango::Query::parse(&body) {
        Ok(q) => q,
        Err(e) => return couch_error(StatusCode::BAD_REQUEST, "bad_request", &e.0),
    };
    if let Err(r) = check(&shared, &doctype, false) {
        return r;
    }
    let all = {
        let mut docs = shared.docs.lock().await;
        match docs.live_where(&doctype, |d| query.matches(d)).await {
            Ok(a) => a,
            Err(e) => return store_failed(&e),
        }
    };
    let (page, next) = query.run(all);
    json_response(
        StatusCode::OK,
        json!({"docs": page, "limit": query.limit(), "next": next, "bookmark": ""}),
    )
}

async fn index(
    State(shared): State<Arc<Shared>>,
    Path(doctype): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Err(r) = check(&shared, &doctype, false) {
        return r;
    }
    // Every query scans the run's view: an index changes nothing but is
    // named as CouchDB names it, from its fields.
    let fields = body
        .get("index")
        .and_then(|i| i.get("fields"))
        .map(Value::to_string)
        .unwrap_or_default();
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(format!("{doctype}{fields}").as_bytes())[..20])
        });
    let ddoc = body
        .get("ddoc")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("_design/{name}"));
    json_response(
        StatusCode::OK,
        json!({"result": "exists", "id": ddoc, "name": name}),
    )
}

#[derive(Deserialize, Default)]
struct AllDocsQuery {
    include_docs: Option<String>,
    limit: Option<usize>,
    skip: Option<usize>,
}

async fn all_docs_get(
    State(shared): State<Arc<Shared>>,
    Path(doctype): Path<String>,
    Query(q): Query<AllDocsQuery>,
) -> Response {
    all_docs(&shared, &doctype, &q, None).await
}

async fn all_docs_post(
    State(shared): State<Arc<Shared>>,
    Path(doctype): Path<String>,
    Query(q): Query<AllDocsQuery>,
    body: Option<axum::Json<Value>>,
) -> Response {
    let keys = body.and_then(|axum::Json(b)| {
        b.get("keys").and_then(Value::as_array).map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    });
    all_docs(&shared, &doctype, &q, keys).await
}

async fn all_docs(
    shared: &Shared,
    doctype: &str,
    q: &AllDocsQuery,
    keys: Option<Vec<String>>,
) -> Response {
    let include = matches!(q.include_docs.as_deref(), Some("true"));
    let all = match readable(shared, doctype).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let total = all.len();
    let row = |d: &Value| {
        let mut r = json!({
            "id": d.get("_id").cloned().unwrap_or(Value::Null),
            "key": d.get("_id").cloned().unwrap_or(Value::Null),
            "value": {"rev": d.get("_rev").cloned().unwrap_or(Value::Null)},
        });
        if include && let Some(obj) = r.as_object_mut() {
            obj.insert("doc".into(), d.clone());
        }
        r
    };
    let rows: Vec<Value> = match keys {
        Some(keys) => keys
            .iter()
            .map(|k| {
                all.iter()
                    .find(|d| d.get("_id").and_then(Value::as_str) == Some(k.as_str()))
                    .map(row)
                    .unwrap_or_else(|| json!({"key": k, "error": "not_found"}))
            })
            .collect(),
        None => all
            .iter()
            .skip(q.skip.unwrap_or(0))
            .take(q.limit.unwrap_or(usize::MAX))
            .map(row)
            .collect(),
    };
    json_response(
        StatusCode::OK,
        json!({"total_rows": total, "offset": q.skip.unwrap_or(0), "rows": rows}),
    )
}

#[derive(Deserialize, Default)]
struct NormalDocsQuery {
    limit: Option<usize>,
    skip: Option<usize>,
    bookmark: Option<String>,
}

async fn normal_docs(
    State(shared): State<Arc<Shared>>,
    Path(doctype): Path<String>,
    Query(q): Query<NormalDocsQuery>,
) -> Response {
    let all = match readable(&shared, &doctype).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let total = all.len();
    // The bookmark is the number of documents already sent.
    let skip = q
        .bookmark
        .as_deref()
        .and_then(|b| b.parse().ok())
        .or(q.skip)
        .unwrap_or(0usize);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows: Vec<Value> = all.into_iter().skip(skip).take(limit).collect();
    let sent = skip + rows.len();
    let bookmark = if sent < total {
        sent.to_string()
    } else {
        String::new()
    };
    json_response(
        StatusCode::OK,
        json!({"rows": rows, "total_rows": total, "bookmark": bookmark, "skip": skip}),
    )
}

async fn bulk_docs(
    State(shared): State<Arc<Shared>>,
    Path(doctype): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Err(r) = check(&shared, &doctype, true) {
        return r;
    }
    let Some(items) = body.get("docs").and_then(Value::as_array).cloned() else {
        return couch_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "`docs` must be a list",
        );
    };
    let mut docs = shared.docs.lock().await;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(doc) = item else {
            results.push(json!({"error": "bad_request", "reason": "not an object"}));
            continue;
        };
        let id = doc.get("_id").and_then(Value::as_str).map(str::to_owned);
        let deleted = doc.get("_deleted").and_then(Value::as_bool) == Some(true);
        let outcome = match (&id, deleted) {
            (Some(id), true) => {
                let rev = doc.get("_rev").and_then(Value::as_str).map(str::to_owned);
                docs.delete(&doctype, id, rev.as_deref())
                    .await
                    .map(|r| r.map(|rev| json!({"_id": id, "_rev": rev})))
            }
            (Some(id), false) if doc.contains_key("_rev") => docs.update(&doctype, id, doc).await,
            _ => docs.create(&doctype, doc).await,
        };
        results.push(match outcome {
            Err(e) => return store_failed(&e),
            Ok(Ok(data)) => json!({"ok": true, "id": data["_id"], "rev": data["_rev"]}),
            Ok(Err(WriteError::Conflict)) => {
                json!({"id": id, "error": "conflict", "reason": "Document update conflict."})
            }
            Ok(Err(WriteError::NotFound)) => {
                json!({"id": id, "error": "not_found", "reason": "missing"})
            }
            Ok(Err(WriteError::Bad(why))) => {
                json!({"id": id, "error": "bad_request", "reason": why})
            }
        });
    }
    json_response(StatusCode::CREATED, Value::Array(results))
}

/// `POST|DELETE /data/:doctype/:id/relationships/references`: files
/// referenced by a document (a konnector's folder, an album). The files
/// keep their own `referenced_by`; this answers as cozy-stack does and
/// records nothing else.
async fn references(
    State(shared): State<Arc<Shared>>,
    Path((doctype, _id)): Path<(String, String)>,
) -> Response {
    if doctype != "io.cozy.konnectors" && !shared.permits(&doctype) {
        return forbidden(&doctype);
    }
    empty(StatusCode::NO_CONTENT)
}
