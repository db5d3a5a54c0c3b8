//! `io.cozy.accounts`: the Cozy view of a configured account.
//!
//! Gleaner keeps accounts in its own table (see
//! [`crate::store::AccountStore`]) with secrets sealed by the vault; this
//! struct is how an account is shown to a Cozy app, without its secrets.

use serde::{Deserialize, Serialize};

/// The non-secret part of the account's credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountAuth {
    /// The identifier (login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

/// An `io.cozy.accounts` document, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDoc {
    /// The account id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The konnector slug.
    pub account_type: String,
    /// Credentials without secrets.
    pub auth: AccountAuth,
    /// The konnector's saved state.
    #[serde(default)]
    pub data: serde_json::Value,
    /// The last run's outcome (`null` when fine, else an error code).
    #[serde(default)]
    pub state: Option<String>,
}
