//! `io.cozy.accounts`: the run's account as cozy-konnector-libs reads and
//! updates it.
//!
//! `GET` returns `{_id, _rev, account_type, auth, data, state, twoFACode}`
//! with the decrypted credentials in `auth` (only this run's token reaches
//! it, and only this account). A `PUT` may change `state`, `twoFACode`,
//! `data` and keys of its own; `auth` stays what Gleaner's vault holds.
//! Setting `state` to `TWOFA_NEEDED[_RETRY][.EMAIL|.SMS|.APP_CODE|.APP]`
//! tells the run, which asks the person through Gleaner's own channel and
//! writes the answer into `twoFACode`, which the konnector polls for.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use gleaner_framework::TwoFactorKind;
use serde_json::{Map, Value};

use super::{Shared, StackEvent, couch_error, json_response};

/// The doctype.
pub const ACCOUNTS: &str = "io.cozy.accounts";

/// The account document of the run.
pub struct AccountDoc {
    generation: u64,
    doc: Map<String, Value>,
    asked: Option<String>,
}

impl AccountDoc {
    /// The document a run starts with.
    pub fn new(id: &str, slug: &str, auth: Map<String, Value>, data: Value) -> Self {
        let mut doc = Map::new();
        doc.insert("_id".into(), Value::String(id.to_owned()));
        doc.insert("account_type".into(), Value::String(slug.to_owned()));
        doc.insert("auth".into(), Value::Object(auth));
        let data = if data.is_object() {
            data
        } else {
            Value::Object(Map::new())
        };
        doc.insert("data".into(), data);
        doc.insert("state".into(), Value::Null);
        doc.insert("twoFACode".into(), Value::Null);
        let mut account = Self {
            generation: 0,
            doc,
            asked: None,
        };
        account.bump();
        account
    }

    fn bump(&mut self) {
        self.generation += 1;
        let rev = format!("{}-{:032x}", self.generation, rand::random::<u128>());
        self.doc.insert("_rev".into(), Value::String(rev));
    }

    /// The document as served.
    pub fn value(&self) -> Value {
        Value::Object(self.doc.clone())
    }

    /// The account's `data` (the konnector's state), as it is now.
    pub fn data(&self) -> Value {
        self.doc.get("data").cloned().unwrap_or(Value::Null)
    }

    /// Writes the person's code where the konnector polls for it.
    pub fn answer(&mut self, code: &str) {
        self.doc
            .insert("twoFACode".into(), Value::String(code.to_owned()));
        self.asked = None;
        self.bump();
    }

    /// Applies a `PUT`; returns the event to send, if the state asks for
    /// a code now.
    fn put(&mut self, mut body: Map<String, Value>) -> Result<Option<StackEvent>, &'static str> {
        let current = self
            .doc
            .get("_rev")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match body.get("_rev").and_then(Value::as_str) {
            Some(rev) if rev != current => return Err("conflict"),
            _ => {}
        }
        for fixed in ["_id", "_rev", "auth", "account_type"] {
            body.remove(fixed);
        }
        for (k, v) in body {
            self.doc.insert(k, v);
        }
        self.bump();
        let state = self
            .doc
            .get("state")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let event = match state.as_deref().and_then(parse_twofa_state) {
            Some(event) if self.asked.as_deref() != state.as_deref() => {
                self.asked = state;
                Some(event)
            }
            Some(_) => None,
            None => {
                self.asked = None;
                None
            }
        };
        Ok(event)
    }
}

/// `TWOFA_NEEDED.EMAIL` and friends, as cozy-konnector-libs writes them.
pub fn parse_twofa_state(state: &str) -> Option<StackEvent> {
    let (head, kind) = match state.split_once('.') {
        Some((h, k)) => (h, Some(k)),
        None => (state, None),
    };
    let retry = match head {
        "TWOFA_NEEDED" => false,
        "TWOFA_NEEDED_RETRY" => true,
        _ => return None,
    };
    let kind = match kind {
        None | Some("EMAIL") => TwoFactorKind::Email,
        Some("SMS") => TwoFactorKind::Sms,
        Some("APP_CODE") => TwoFactorKind::AppCode,
        Some("APP") => TwoFactorKind::App,
        Some(_) => TwoFactorKind::Email,
    };
    Some(StackEvent::TwoFactorAsked { kind, retry })
}

/// The routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route(
        "/data/io.cozy.accounts/{id}",
        get(get_account)
            .put(put_account)
            .fallback(|| async { not_this_account() }),
    )
}

fn not_this_account() -> Response {
    couch_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this run's token reaches only its own account, by id (GET and PUT)",
    )
}

async fn get_account(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if id != shared.account_id {
        return not_this_account();
    }
    match shared.account.lock() {
        Ok(a) => json_response(StatusCode::OK, a.value()),
        Err(_) => couch_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "account lock",
        ),
    }
}

async fn put_account(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if id != shared.account_id {
        return not_this_account();
    }
    let Value::Object(body) = body else {
        return couch_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the account must be a JSON object",
        );
    };
    let (result, value) = match shared.account.lock() {
        Ok(mut a) => {
            let r = a.put(body);
            (r, a.value())
        }
        Err(_) => {
            return couch_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "account lock",
            );
        }
    };
    match result {
        Err(_) => couch_error(
            StatusCode::CONFLICT,
            "conflict",
            "Document update conflict.",
        ),
        Ok(event) => {
            if let Some(event) = event {
                shared.send(event);
            }
            let rev = value.get("_rev").cloned().unwrap_or(Value::Null);
            json_response(
                StatusCode::OK,
                serde_json::json!({"id": id, "ok": true, "rev": rev, "type": ACCOUNTS, "data": value}),
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn twofa_states_are_read_like_the_libs_write_them() {
        assert_eq!(
            parse_twofa_state("TWOFA_NEEDED.SMS"),
            Some(StackEvent::TwoFactorAsked {
                kind: TwoFactorKind::Sms,
                retry: false
            })
        );
        assert_eq!(
            parse_twofa_state("TWOFA_NEEDED_RETRY.EMAIL"),
            Some(StackEvent::TwoFactorAsked {
                kind: TwoFactorKind::Email,
                retry: true
            })
        );
        assert_eq!(parse_twofa_state("LOGIN_SUCCESS"), None);
    }

    #[test]
    fn a_put_keeps_auth_and_asks_once() {
        let mut auth = Map::new();
        auth.insert("login".into(), Value::String("u".into()));
        let mut a = AccountDoc::new("acc", "k", auth, Value::Null);
        let rev = a.value()["_rev"].clone();
        let body: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "_rev": rev, "auth": {"login": "evil"}, "state": "TWOFA_NEEDED.EMAIL", "twoFACode": null
        }))
        .unwrap();
        assert!(a.put(body.clone()).unwrap().is_some());
        assert_eq!(a.value()["auth"]["login"], "u");
        let mut again = body;
        again.insert("_rev".into(), a.value()["_rev"].clone());
        assert!(a.put(again).unwrap().is_none(), "the same state asks once");
        let stale: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"_rev": "1-x"})).unwrap();
        assert!(a.put(stale).is_err());
        a.answer("123456");
        assert_eq!(a.value()["twoFACode"], "123456");
    }
}
