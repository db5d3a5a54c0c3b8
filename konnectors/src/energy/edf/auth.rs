//! Logging in: EDF's SSO is a ForgeRock Access Management server
//! (`espace-client.edf.fr/sso/json/authenticate`, realm `/INTERNET`), driven
//! through its REST authentication API as Woob's `edf` module does.
//!
//! An empty POST starts a login and answers a **step**: an `authId`, a
//! `stage` name and `callbacks` (each with `output` prompts and `input`
//! values). The client fills the inputs and POSTs the whole step back; the
//! server answers the next step, or `{"tokenId": ...}` at the end, with
//! the `ivoiream` SSO cookie. The stages, as Woob meets them:
//!
//! 1. `UsernameAuth2`: the e-mail. Answered by `UsernameAuth2` again (with
//!    a message) when the address is unknown: `LOGIN_FAILED`.
//! 2. the device step: the token EDF gave a device after a code
//!    ("id_token1" in Woob, kept "indefinitely"), or a blank for a new
//!    device.
//! 3. `HOTPcust3` for a new device: a code was e-mailed; the konnector asks
//!    the person through [`RunContext::two_factor`] (kind `email`, the
//!    masked address as hint) and posts it; "Code incorrect" asks again
//!    (the context gives up after three codes). Once accepted, EDF hands
//!    back the device's token, kept in the sealed login session for later
//!    runs.
//! 4. `PasswordAuth2`: the password. Answered by `PasswordAuth2` again with
//!    the attempts left when it is wrong (`LOGIN_FAILED`); a locked account
//!    is a 401 "Compte utilisateur verrouillé"
//!    (`LOGIN_FAILED.TOO_MANY_ATTEMPTS`, Cozy's detection).
//!
//! Then `checkAuthenticate` on the customer area turns the SSO cookie into
//! a customer-area session.
//!
//! Where this differs from Woob's account of the real site: Woob posts the
//! `HOTPcust3` step back once before the code is asked for, and says the
//! first login may go through with the code alone; here the code step asks
//! the code at once, and the password is always asked after it. The
//! device step's stage name is not in the sources (`DeviceAuth2` here).
//! The real site also shows a reCAPTCHA on some logins (Cozy's old
//! konnector solved it through a paid service): not handled.

use gleaner_framework::http::{Response, display_url};
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, Secret, TwoFactorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{api, routes};

/// The e-mail stage.
pub const STAGE_USERNAME: &str = "UsernameAuth2";
/// The device-token stage.
pub const STAGE_DEVICE: &str = "DeviceAuth2";
/// The e-mailed code stage.
pub const STAGE_OTP: &str = "HOTPcust3";
/// The password stage.
pub const STAGE_PASSWORD: &str = "PasswordAuth2";

/// The `id` of the hidden callback that carries a new device token.
pub const DEVICE_TOKEN_ID: &str = "deviceToken";

/// How long the sealed login session (cookies and the device token) is
/// kept: EDF remembers a device for long; the SSO cookie itself dies much
/// sooner, which the session check notices.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// One step of ForgeRock's authentication API. Unknown keys are kept, so
/// the step goes back to the server as it came.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthStep {
    /// The login's id, sent back with each step.
    pub auth_id: String,
    /// The stage's name.
    #[serde(default)]
    pub stage: String,
    /// What the page shows and asks.
    pub callbacks: Vec<Callback>,
    /// Every other key, sent back untouched.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One callback: prompts (`output`) and values to fill (`input`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Callback {
    /// `NameCallback`, `PasswordCallback`, `TextOutputCallback`,
    /// `HiddenValueCallback`...
    #[serde(rename = "type")]
    pub kind: String,
    /// What the server says.
    #[serde(default)]
    pub output: Vec<NameValue>,
    /// What the client answers.
    #[serde(default)]
    pub input: Vec<NameValue>,
    /// Every other key.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A `{name, value}` pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameValue {
    /// The name (`prompt`, `message`, `IDToken1`...).
    pub name: String,
    /// The value (a string, a number...).
    #[serde(default)]
    pub value: Value,
}

impl AuthStep {
    /// Fills the first input of the first callback of `kind`.
    pub fn fill(&mut self, kind: &str, value: &str) -> Result<()> {
        let input = self
            .callbacks
            .iter_mut()
            .find(|c| c.kind == kind)
            .and_then(|c| c.input.first_mut())
            .ok_or_else(|| {
                KonnectorError::new(
                    ErrorCode::SchemaChanged,
                    format!("EDF's SSO stage {} has no {kind} to fill", self.stage),
                )
            })?;
        input.value = Value::String(value.to_owned());
        Ok(())
    }

    /// The named output of the first callback of `kind`, as text.
    pub fn output(&self, kind: &str, name: &str) -> Option<String> {
        self.callbacks
            .iter()
            .filter(|c| c.kind == kind)
            .flat_map(|c| c.output.iter())
            .find(|o| o.name == name)
            .map(|o| match &o.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }

    /// The message a `TextOutputCallback` shows, if not empty.
    pub fn message(&self) -> Option<String> {
        self.output("TextOutputCallback", "message")
            .filter(|m| !m.trim().is_empty())
    }

    /// The value of the `HiddenValueCallback` whose `id` is `id`.
    pub fn hidden(&self, id: &str) -> Option<String> {
        self.callbacks
            .iter()
            .filter(|c| c.kind == "HiddenValueCallback")
            .find(|c| {
                c.output
                    .iter()
                    .any(|o| o.name == "id" && o.value.as_str() == Some(id))
            })
            .and_then(|c| c.output.iter().find(|o| o.name == "value"))
            .and_then(|o| o.value.as_str().map(str::to_owned))
            .filter(|v| !v.is_empty())
    }
}

/// What an authentication POST led to.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Another step.
    Step(Box<AuthStep>),
    /// Logged in: the SSO cookie is set.
    Done,
}

/// Reads the answer to an authentication POST.
pub fn read_answer(resp: &Response) -> Result<Answer> {
    if api::is_maintenance(resp) {
        return Err(api::maintenance(resp));
    }
    let status = resp.status.as_u16();
    if status == 401 {
        // ForgeRock's failure: {"code":401,"reason":"Unauthorized","message":...}
        let message = serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        return Err(if message.to_lowercase().contains("verrouill") {
            KonnectorError::new(
                ErrorCode::LoginFailedTooManyAttempts,
                format!("EDF locked the account after too many wrong passwords: \"{message}\""),
            )
        } else {
            KonnectorError::login_failed(format!("EDF's SSO refused the login: \"{message}\""))
        });
    }
    if !resp.status.is_success() {
        return Err(KonnectorError::vendor_down(format!(
            "{} answered {status}",
            display_url(&resp.url)
        )));
    }
    let value: Value = resp.json()?;
    if value.get("tokenId").is_some() {
        return Ok(Answer::Done);
    }
    Ok(Answer::Step(Box::new(resp.json::<AuthStep>()?)))
}

/// What to do after a step, decided from the step alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send the login (e-mail).
    Username,
    /// Send the device token (or a blank).
    Device,
    /// Ask the person for the e-mailed code; `retry` after a wrong one.
    Code {
        /// The prompt (with the masked address).
        hint: Option<String>,
        /// The last code was refused.
        retry: bool,
    },
    /// Send the password.
    Password,
}

/// Decides the next move from the step EDF answered after `sent` (the
/// stage the konnector answered last, `None` at the start).
pub fn next(step: &AuthStep, sent: Option<&str>) -> Result<Next> {
    let again = sent == Some(step.stage.as_str());
    match step.stage.as_str() {
        STAGE_USERNAME if again => Err(KonnectorError::login_failed(format!(
            "EDF does not know this login: \"{}\"",
            step.message().unwrap_or_default()
        ))),
        STAGE_USERNAME => Ok(Next::Username),
        STAGE_DEVICE if again => Err(KonnectorError::vendor_down(
            "EDF's SSO asked for the device twice",
        )),
        STAGE_DEVICE => Ok(Next::Device),
        STAGE_OTP => {
            let message = step.message();
            let retry = again && message.is_some();
            if again && !retry {
                return Err(KonnectorError::vendor_down(
                    "EDF's SSO asked for the code again with no message",
                ));
            }
            if let Some(m) = &message
                && again
                && !m.to_lowercase().contains("incorrect")
            {
                return Err(KonnectorError::new(
                    ErrorCode::UserActionNeededTwofaExpired,
                    format!("EDF refused the code: \"{m}\""),
                ));
            }
            Ok(Next::Code {
                hint: step.output("NameCallback", "prompt"),
                retry,
            })
        }
        STAGE_PASSWORD if again => Err(KonnectorError::login_failed(format!(
            "EDF refused the password: \"{}\"",
            step.message().unwrap_or_default()
        ))),
        STAGE_PASSWORD => Ok(Next::Password),
        other => Err(KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!("EDF's SSO answered an unknown stage `{other}`"),
        )),
    }
}

/// POSTs a step (or the empty start) to the authentication endpoint.
async fn post(ctx: &RunContext, url: &str, step: Option<&AuthStep>) -> Result<Answer> {
    let builder = ctx
        .http()
        .post(url)
        .query(&[("realm", routes::REALM)])
        .header(routes::API_VERSION.0, routes::API_VERSION.1)
        .header("X-Requested-With", "XMLHttpRequest")
        .header("Accept", "application/json");
    let resp = match step {
        Some(step) => builder.json(step).send().await?,
        None => builder.body(Vec::new(), "application/json").send().await?,
    };
    read_answer(&resp)
}

/// Logs in on the SSO. `device` is the token a past code earned, if any;
/// returns the device token to keep (a new one after a code).
pub async fn login(ctx: &mut RunContext, device: Option<String>) -> Result<Option<String>> {
    let url = routes::sso_url(ctx, routes::AUTHENTICATE)?;
    let login = ctx.field("login")?.trim().to_owned();
    let mut device = device;
    let mut sent: Option<String> = None;
    let mut answer = post(ctx, &url, None).await?;
    loop {
        let mut step = match answer {
            Answer::Done => return Ok(device),
            Answer::Step(step) => *step,
        };
        if let Some(token) = step.hidden(DEVICE_TOKEN_ID) {
            tracing::info!("EDF trusts this device from now on");
            device = Some(token);
        }
        match next(&step, sent.as_deref())? {
            Next::Username => step.fill("NameCallback", &login)?,
            Next::Device => {
                // A blank for a new device, as Woob sends.
                let token = device.clone().unwrap_or_else(|| " ".to_owned());
                step.fill("NameCallback", &token)?;
            }
            Next::Code { hint, retry } => {
                if retry {
                    tracing::info!("EDF refused the code");
                }
                tracing::info!("EDF asks for the code it e-mailed");
                let code: Secret = ctx
                    .two_factor(TwoFactorKind::Email, hint.as_deref())
                    .await?;
                step.fill("NameCallback", code.expose().trim())?;
            }
            Next::Password => {
                let password = ctx.secret("password")?.clone();
                step.fill("PasswordCallback", password.expose())?;
            }
        }
        sent = Some(step.stage.clone());
        answer = post(ctx, &url, Some(&step)).await?;
    }
}

/// Opens the customer area with the SSO cookie (`checkAuthenticate`) and
/// reads the contracts; `None` when the customer area refuses the session.
pub async fn open_site(ctx: &RunContext) -> Result<Option<api::ContractList>> {
    let resp = ctx
        .http()
        .get(&ctx.url(routes::CHECK_AUTHENTICATE)?)
        .send()
        .await?;
    api::check(&resp)?;
    let contracts: api::ContractList =
        api::get_json(ctx, &ctx.url(routes::LIST_CONTRACTS)?).await?;
    Ok(contracts.logged().then_some(contracts))
}

/// Logs in when needed and returns the contracts: through the session the
/// last run kept when EDF still accepts it (no login at all), else with a
/// login that reuses the device token the session kept.
pub async fn open_session(ctx: &mut RunContext) -> Result<api::ContractList> {
    let mut device = None;
    if ctx.restore_session().await? {
        device = ctx
            .session_state()
            .and_then(|s| s.get("device"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(contracts) = open_site(ctx).await? {
            tracing::info!("saved session still alive: no login");
            ctx.save_session(SESSION_TTL, serde_json::json!({ "device": device }));
            return Ok(contracts);
        }
        tracing::info!("saved session is dead: logging in again");
        ctx.clear_session();
    }
    let device = login(ctx, device).await?;
    // Kept even if the rest of the run fails: the device token spares the
    // person another code.
    ctx.save_session(SESSION_TTL, serde_json::json!({ "device": device }));
    match open_site(ctx).await? {
        Some(contracts) => Ok(contracts),
        None => Err(KonnectorError::vendor_down(
            "EDF's customer area refused the session the SSO had just opened",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn step(stage: &str, message: &str) -> AuthStep {
        serde_json::from_value(serde_json::json!({
            "authId": "a", "stage": stage, "header": "Connexion",
            "callbacks": [
                {"type": "NameCallback", "output": [{"name": "prompt", "value": "Code envoyé à c***@example.org"}],
                 "input": [{"name": "IDToken1", "value": ""}]},
                {"type": "TextOutputCallback", "output": [{"name": "message", "value": message}, {"name": "messageType", "value": "0"}]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn stages_lead_to_moves_and_repeats_to_errors() {
        assert_eq!(
            next(&step(STAGE_USERNAME, ""), None).unwrap(),
            Next::Username
        );
        assert_eq!(
            next(
                &step(STAGE_USERNAME, "Identifiant inconnu"),
                Some(STAGE_USERNAME)
            )
            .unwrap_err()
            .code,
            ErrorCode::LoginFailed
        );
        assert_eq!(
            next(&step(STAGE_DEVICE, ""), Some(STAGE_USERNAME)).unwrap(),
            Next::Device
        );
        assert_eq!(
            next(&step(STAGE_OTP, ""), Some(STAGE_DEVICE)).unwrap(),
            Next::Code {
                hint: Some("Code envoyé à c***@example.org".into()),
                retry: false
            }
        );
        assert!(matches!(
            next(&step(STAGE_OTP, "Code incorrect"), Some(STAGE_OTP)).unwrap(),
            Next::Code { retry: true, .. }
        ));
        assert_eq!(
            next(&step(STAGE_OTP, "Code expiré"), Some(STAGE_OTP))
                .unwrap_err()
                .code,
            ErrorCode::UserActionNeededTwofaExpired
        );
        let e = next(
            &step(
                STAGE_PASSWORD,
                "Mot de passe incorrect. Il vous reste 4 essai(s).",
            ),
            Some(STAGE_PASSWORD),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::LoginFailed);
        assert!(e.message.contains("4 essai"), "{}", e.message);
        assert_eq!(
            next(&step("CaptchaStage", ""), None).unwrap_err().code,
            ErrorCode::SchemaChanged
        );
    }

    #[test]
    fn a_step_round_trips_with_its_unknown_keys_and_filled_input() {
        let mut s = step(STAGE_USERNAME, "");
        s.fill("NameCallback", "camille@example.org").unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["header"], "Connexion");
        assert_eq!(
            v["callbacks"][0]["input"][0]["value"],
            "camille@example.org"
        );
        assert_eq!(v["callbacks"][1]["output"][1]["value"], "0");
        assert_eq!(
            s.fill("PasswordCallback", "x").unwrap_err().code,
            ErrorCode::SchemaChanged
        );
    }
}
