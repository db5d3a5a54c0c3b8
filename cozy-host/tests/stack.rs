//! The stack API subset over real HTTP: the token, the permission walls,
//! unknown routes, CouchDB-style documents and revisions, Mango `_find`,
//! `_all_docs`, `_bulk_docs`, the account's second-factor state, and the
//! files API on the account's folder.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use gleaner_cozy_host::stack::{Stack, StackConfig, StackEvent};
use gleaner_framework::store::SqliteStore;
use gleaner_framework::{AccountDocs, TwoFactorKind};
use serde_json::{Value, json};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

struct Fixture {
    stack: Stack,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gleaner.db"))
        .await
        .unwrap();
    let mut auth = serde_json::Map::new();
    auth.insert("login".into(), json!("12345678"));
    auth.insert("password".into(), json!("pw"));
    let stack = Stack::start(
        StackConfig {
            slug: "test-node".into(),
            account_id: "acc".into(),
            auth,
            data: json!({"cursor": 3}),
            doctypes: vec![
                "io.cozy.accounts".into(),
                "io.cozy.bills".into(),
                "io.cozy.files".into(),
            ],
            stored: AccountDocs::new(Arc::new(store), "acc"),
            files_root: dir.path().join("files"),
            account_folder: "Test/acc".into(),
            uploads: dir.path().join("uploads"),
        },
        TOKEN.into(),
    )
    .await
    .unwrap();
    Fixture {
        stack,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.stack.url(), path.trim_start_matches('/'))
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn upload(&self, dir: &str, name: &str, bytes: &[u8], md5: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url(&format!("/files/{dir}?Name={name}&Type=file")))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/pdf")
            .body(bytes.to_vec());
        if let Some(m) = md5 {
            req = req.header("Content-MD5", m);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

use reqwest::Method;

#[tokio::test]
async fn the_token_and_the_permissions_are_walls() {
    let f = start().await;
    let anonymous = f
        .http
        .get(f.url("/data/io.cozy.bills/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = f
        .http
        .get(f.url("/data/io.cozy.bills/x"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let (status, body) = f.call(Method::GET, "/data/io.cozy.contacts/x", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("io.cozy.contacts")
    );
    let (status, _) = f
        .call(Method::GET, "/data/io.cozy.accounts/someone-else", None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = f
        .call(
            Method::POST,
            "/data/io.cozy.accounts/_find",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "accounts are reached by id only");
    let (status, account) = f
        .call(Method::GET, "/data/io.cozy.accounts/acc", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(account["auth"]["password"], "pw");
    assert_eq!(account["data"]["cursor"], 3);
    let (status, body) = f.call(Method::GET, "/settings/instance", None).await;
    assert_eq!(status, 404);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("GET /settings/instance"),
        "{body}"
    );
    assert_eq!(f.stack.unknown_routes(), ["GET /settings/instance"]);
}

#[tokio::test]
async fn documents_behave_like_couchdb() {
    let f = start().await;
    let (status, created) = f
        .call(
            Method::POST,
            "/data/io.cozy.bills/",
            Some(json!({"amount": 19.99, "vendor": "Free", "date": "2026-01-05"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let rev = created["rev"].as_str().unwrap().to_owned();
    assert!(rev.starts_with("1-"));
    assert_eq!(created["data"]["amount"], 19.99);
    let (_, doc) = f
        .call(Method::GET, &format!("/data/io.cozy.bills/{id}"), None)
        .await;
    assert_eq!(doc["_rev"], rev.as_str());
    let (status, _) = f
        .call(
            Method::PUT,
            &format!("/data/io.cozy.bills/{id}"),
            Some(json!({"_rev": "1-stale", "amount": 1})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, updated) = f
        .call(
            Method::PUT,
            &format!("/data/io.cozy.bills/{id}"),
            Some(json!({"_rev": rev, "amount": 21, "vendor": "Free", "date": "2026-01-05"})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(updated["rev"].as_str().unwrap().starts_with("2-"));
    f.call(
        Method::POST,
        "/data/io.cozy.bills/",
        Some(json!({"amount": 5, "vendor": "Orange", "date": "2026-02-05"})),
    )
    .await;
    let (status, index) = f
        .call(
            Method::POST,
            "/data/io.cozy.bills/_index",
            Some(json!({"index": {"fields": ["vendor"]}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(index["result"], "exists");
    let (_, found) = f
        .call(
            Method::POST,
            "/data/io.cozy.bills/_find",
            Some(json!({"selector": {"vendor": "Free"}})),
        )
        .await;
    assert_eq!(found["docs"].as_array().unwrap().len(), 1);
    assert_eq!(found["next"], false);
    assert_eq!(found["limit"], 100);
    let (_, page) = f
        .call(
            Method::POST,
            "/data/io.cozy.bills/_find",
            Some(json!({"selector": {}, "limit": 1, "sort": [{"date": "desc"}]})),
        )
        .await;
    assert_eq!(page["docs"][0]["vendor"], "Orange");
    assert_eq!(page["next"], true);
    let (_, all) = f
        .call(
            Method::POST,
            "/data/io.cozy.bills/_all_docs?include_docs=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(all["rows"].as_array().unwrap().len(), 2);
    assert_eq!(all["rows"][0]["doc"]["_id"], all["rows"][0]["id"]);
    let (status, bulk) = f
        .call(
            Method::POST,
            "/data/io.cozy.bills/_bulk_docs",
            Some(json!({"docs": [
                {"amount": 1, "vendor": "X", "date": "2026-03-01"},
                {"_id": id, "_rev": "9-nope", "amount": 2},
            ]})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(bulk[0]["ok"], true);
    assert_eq!(bulk[1]["error"], "conflict");
    let rev2 = updated["rev"].as_str().unwrap();
    let (status, _) = f
        .call(
            Method::DELETE,
            &format!("/data/io.cozy.bills/{id}?rev={rev2}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = f
        .call(Method::GET, &format!("/data/io.cozy.bills/{id}"), None)
        .await;
    assert_eq!(status, 404);
    // What the run will stage: two live bills created, one deleted (which
    // was never stored, so the commit drops it).
    let docs = f.stack.shared().docs.lock().await;
    let changed = docs.changed();
    assert_eq!(changed.iter().filter(|(_, _, d)| !d.deleted).count(), 2);
    assert_eq!(changed.iter().filter(|(_, _, d)| d.deleted).count(), 1);
}

#[tokio::test]
async fn the_account_state_asks_for_a_code_and_the_answer_is_polled() {
    let mut f = start().await;
    let (_, account) = f
        .call(Method::GET, "/data/io.cozy.accounts/acc", None)
        .await;
    let (status, _) = f
        .call(
            Method::PUT,
            "/data/io.cozy.accounts/acc",
            Some(json!({"_rev": account["_rev"], "state": "TWOFA_NEEDED.SMS", "twoFACode": null})),
        )
        .await;
    assert_eq!(status, 200);
    let event = f.stack.next_event().await.unwrap();
    assert_eq!(
        event,
        StackEvent::TwoFactorAsked {
            kind: TwoFactorKind::Sms,
            retry: false
        }
    );
    f.stack.shared().account.lock().unwrap().answer("424242");
    let (_, account) = f
        .call(Method::GET, "/data/io.cozy.accounts/acc", None)
        .await;
    assert_eq!(account["twoFACode"], "424242");
    assert_eq!(account["auth"]["login"], "12345678", "auth is untouched");
}

#[tokio::test]
async fn files_stay_in_the_account_folder() {
    let f = start().await;
    let (status, folder) = f
        .call(Method::GET, "/files/metadata?Path=/Test/acc", None)
        .await;
    assert_eq!(status, 200, "{folder}");
    let folder_id = folder["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(folder["data"]["attributes"]["path"], "/Test/acc");
    let (status, root) = f.call(Method::GET, "/files/metadata?Path=/", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        root["included"].as_array().unwrap().len(),
        1,
        "only the way down: {root}"
    );
    let (status, _) = f
        .call(Method::GET, "/files/metadata?Path=/Other", None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = f
        .call(Method::GET, "/files/metadata?Path=/Test/acc/../../x", None)
        .await;
    assert_eq!(status, 400);
    let (status, sub) = f
        .call(
            Method::POST,
            &format!("/files/{folder_id}?Name=2026&Type=directory"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    let sub_id = sub["data"]["id"].as_str().unwrap().to_owned();
    let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    let (status, refused) = f
        .upload(
            &sub_id,
            "error.pdf",
            b"<!DOCTYPE html><html><body>Erreur</body></html>",
            None,
        )
        .await;
    assert_eq!(status, 422, "an error page is not a PDF: {refused}");
    assert!(f.stack.shared().files.lock().unwrap().uploads.is_empty());
    let (status, _) = f
        .upload(&sub_id, "a.pdf", pdf, Some("AAAAAAAAAAAAAAAAAAAAAA=="))
        .await;
    assert_eq!(status, 412, "a cut upload is refused");
    let (status, file) = f.upload(&sub_id, "a.pdf", pdf, None).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["data"]["attributes"]["size"], pdf.len().to_string());
    assert_eq!(file["data"]["attributes"]["mime"], "application/pdf");
    let (status, _) = f.upload(&sub_id, "a.pdf", pdf, None).await;
    assert_eq!(status, 409);
    let (status, _) = f.upload("io.cozy.files.root-dir", "b.pdf", pdf, None).await;
    assert_eq!(status, 403, "no writing above the account's folder");
    let id = file["data"]["id"].as_str().unwrap();
    let bytes = f
        .http
        .get(f.url(&format!("/files/download/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], pdf);
    let (status, found) = f
        .call(
            Method::GET,
            "/files/metadata?Path=/Test/acc/2026/a.pdf",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["data"]["id"], id);
    assert_eq!(
        f.stack.shared().files.lock().unwrap().uploads[id].rel_dir,
        "Test/acc/2026"
    );
}
