//! The SSO: ForgeRock's REST authentication at `/sso/json/authenticate`
//! (realm `/INTERNET`), stage by stage as Woob describes EDF's.

use axum::http::{StatusCode, header};
use axum::response::Response;
use gleaner_sandbox_kit::respond::json;
use serde_json::{Value, json};

use super::state::{Flow, SentEmail, Shared, Stage};
use super::{EMAIL_HINT, MAX_FAILED_LOGINS, PASSWORD, Scenario};
use crate::energy::edf::auth::{
    DEVICE_TOKEN_ID, STAGE_DEVICE, STAGE_OTP, STAGE_PASSWORD, STAGE_USERNAME,
};

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn step(auth_id: &str, stage: &str, callbacks: Vec<Value>) -> Response {
    json(
        StatusCode::OK,
        &json!({
            "authId": auth_id,
            "template": "",
            "stage": stage,
            "header": "Connexion à votre Espace Client",
            "callbacks": callbacks,
        }),
    )
}

fn name_cb(prompt: &str) -> Value {
    json!({"type": "NameCallback", "output": [{"name": "prompt", "value": prompt}],
           "input": [{"name": "IDToken1", "value": ""}]})
}

fn text_cb(message: &str) -> Value {
    json!({"type": "TextOutputCallback",
           "output": [{"name": "message", "value": message}, {"name": "messageType", "value": "0"}]})
}

fn password_step(auth_id: &str, message: &str, device: Option<&str>) -> Response {
    let mut callbacks = vec![
        json!({"type": "PasswordCallback", "output": [{"name": "prompt", "value": "Mot de passe"}],
               "input": [{"name": "IDToken1", "value": ""}]}),
        text_cb(message),
    ];
    if let Some(token) = device {
        callbacks.push(json!({"type": "HiddenValueCallback",
            "output": [{"name": "value", "value": token}, {"name": "id", "value": DEVICE_TOKEN_ID}],
            "input": [{"name": "IDToken3", "value": ""}]}));
    }
    step(auth_id, STAGE_PASSWORD, callbacks)
}

fn otp_step(auth_id: &str, message: &str) -> Response {
    step(
        auth_id,
        STAGE_OTP,
        vec![
            name_cb(&format!(
                "Saisissez le code envoyé par e-mail à {EMAIL_HINT}"
            )),
            text_cb(message),
        ],
    )
}

fn unauthorized(message: &str) -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({"code": 401, "reason": "Unauthorized", "message": message}),
    )
}

/// The first input's value of the first callback of `kind`.
fn input(body: &Value, kind: &str) -> String {
    body.get("callbacks")
        .and_then(Value::as_array)
        .and_then(|cbs| {
            cbs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
        .and_then(|c| c.pointer("/input/0/value"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// `POST /sso/json/authenticate?realm=/INTERNET`.
pub(super) fn authenticate(shared: &Shared, query: &str, body: &[u8]) -> Response {
    let params = gleaner_sandbox_kit::form::parse(query.as_bytes());
    if params.get("realm").map(String::as_str) != Some("/INTERNET") {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"code": 400, "reason": "Bad Request", "message": "Invalid realm"}),
        );
    }
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &json!({"code": 400, "reason": "Bad Request", "message": "Invalid JSON"}),
                );
            }
        }
    };
    let Some(auth_id) = body
        .get("authId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        let auth_id = new_id();
        shared.set_flow(
            &auth_id,
            Flow {
                stage: Stage::Username,
                login: String::new(),
                code: None,
                new_device: None,
            },
        );
        return step(
            &auth_id,
            STAGE_USERNAME,
            vec![name_cb("Adresse e-mail"), text_cb("")],
        );
    };
    let Some(mut flow) = shared.flow(&auth_id) else {
        return unauthorized("Authentication Failed");
    };
    match flow.stage {
        Stage::Username => {
            let login = input(&body, "NameCallback").trim().to_lowercase();
            if login != shared.account.login {
                return step(
                    &auth_id,
                    STAGE_USERNAME,
                    vec![
                        name_cb("Adresse e-mail"),
                        text_cb("Adresse e-mail inconnue"),
                    ],
                );
            }
            flow.login = login;
            flow.stage = Stage::Device;
            shared.set_flow(&auth_id, flow);
            step(
                &auth_id,
                STAGE_DEVICE,
                vec![name_cb("deviceId"), text_cb("")],
            )
        }
        Stage::Device => {
            let device = input(&body, "NameCallback");
            let device = device.trim();
            if shared.scenario() != Scenario::TwoFactor || shared.trusts(device) {
                flow.stage = Stage::Password;
                shared.set_flow(&auth_id, flow);
                return password_step(&auth_id, "", None);
            }
            let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
            shared.send(SentEmail {
                to: shared.account.login.clone(),
                subject: "Votre code de connexion EDF".into(),
                code: code.clone(),
            });
            flow.code = Some(code);
            flow.stage = Stage::Otp;
            shared.set_flow(&auth_id, flow);
            otp_step(&auth_id, "")
        }
        Stage::Otp => {
            let given = input(&body, "NameCallback");
            if flow.code.as_deref() != Some(given.trim()) {
                return otp_step(&auth_id, "Code incorrect");
            }
            let token = new_id();
            shared.trust(&token);
            flow.new_device = Some(token.clone());
            flow.stage = Stage::Password;
            shared.set_flow(&auth_id, flow);
            password_step(&auth_id, "", Some(&token))
        }
        Stage::Password => {
            if shared.failures(&flow.login) >= MAX_FAILED_LOGINS {
                return unauthorized("Compte utilisateur verrouillé");
            }
            if input(&body, "PasswordCallback") != PASSWORD {
                let n = shared.fail(&flow.login);
                if n >= MAX_FAILED_LOGINS {
                    shared.end_flow(&auth_id);
                    return unauthorized("Compte utilisateur verrouillé");
                }
                let left = MAX_FAILED_LOGINS - n;
                return password_step(
                    &auth_id,
                    &format!("Mot de passe incorrect. Il vous reste {left} essai(s)."),
                    None,
                );
            }
            shared.reset_failures(&flow.login);
            shared.end_flow(&auth_id);
            let (token, cookie) = shared.sessions.create(Default::default());
            let mut resp = json(
                StatusCode::OK,
                &json!({
                    "tokenId": token,
                    "successUrl": "/fr/accueil/espace-client/tableau-de-bord.html",
                    "realm": "/INTERNET",
                }),
            );
            if let Some(value) = cookie.header_value() {
                resp.headers_mut().insert(header::SET_COOKIE, value);
            }
            resp
        }
    }
}
