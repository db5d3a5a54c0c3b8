//! `io.cozy.files`: a file saved in the account's folder, with metadata.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Doctype, require};
use crate::error::KonnectorError;

/// What a file is, in Cozy's qualification vocabulary (`phone_invoice`,
/// `energy_invoice`, `health_invoice`, `bank_statement` ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qualification {
    /// The qualification label.
    pub label: String,
}

/// `metadata` of an `io.cozy.files` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMetadata {
    /// What the file is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification: Option<Qualification>,
    /// The date the file is about (Cozy sorts by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<DateTime<Utc>>,
    /// When the document was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<DateTime<Utc>>,
    /// The invoice number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    /// The contract reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_reference: Option<String>,
    /// Whether the file is a copy of an original the provider keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carbon_copy: Option<bool>,
    /// Whether the provider keeps it in an electronic safe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub electronic_safe: Option<bool>,
}

/// An `io.cozy.files` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDoc {
    /// Always `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The file name.
    pub name: String,
    /// The path relative to the files directory, `/`-separated.
    pub path: String,
    /// The MIME type.
    pub mime: String,
    /// Cozy's coarse class (`pdf`, `image`, `text` ...).
    pub class: String,
    /// The size in bytes.
    pub size: u64,
    /// The SHA-256 of the content, hex (Cozy keeps an md5; Gleaner adds this).
    pub sha256: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: FileMetadata,
}

impl Doctype for FileDoc {
    const DOCTYPE: &'static str = "io.cozy.files";

    /// The path: one document per file in the account's folder.
    fn dedup_key(&self) -> String {
        self.path.clone()
    }

    fn validate(&self) -> Result<(), KonnectorError> {
        require("name", Self::DOCTYPE, &self.name)?;
        require("path", Self::DOCTYPE, &self.path)?;
        if self.size == 0 {
            return Err(KonnectorError::invalid_data(format!(
                "io.cozy.files document {} is empty",
                self.path
            )));
        }
        Ok(())
    }
}
