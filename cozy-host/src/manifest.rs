//! A Cozy konnector's `manifest.konnector` (JSON), and the Gleaner
//! [`Manifest`] derived from it.
//!
//! Only what Gleaner uses is read: `slug`, `name`, `version`, `language`,
//! `categories`, `vendor_link`, `fields`, `frequency`, `time_interval`,
//! `permissions`, `parameters`, and the markers of what Gleaner cannot run
//! (`clientSide` konnectors, `oauth` konnectors). Every refusal names the
//! field and the reason.

use std::collections::BTreeMap;

use gleaner_framework::manifest::{
    Category, FieldSpec, FieldType, Frequency, KNOWN_DOCTYPES, LoginKind, SecondFactor,
};
use gleaner_framework::{ErrorCode, KonnectorError, Manifest};
use serde::Deserialize;
use serde_json::Value;

/// The file name of a Cozy konnector's manifest.
pub const MANIFEST_FILE: &str = "manifest.konnector";

/// The run time limit when the installation does not give one, in
/// seconds (cozy-stack's default for konnectors is a few minutes).
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// A manifest Gleaner refuses, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct ManifestError {
    /// The manifest file, as given.
    pub file: String,
    /// The field (`slug`, `fields.login.type`, ...).
    pub field: String,
    /// Why.
    pub reason: String,
}

/// One input of a Cozy manifest's `fields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CozyField {
    /// Cozy's type: `text`, `email`, `password`, `date`, `dropdown`,
    /// `hidden`, ...
    pub kind: String,
    /// `isRequired` (Cozy's default: true).
    pub required: bool,
    /// `role: "identifier"`.
    pub identifier: bool,
}

/// What Gleaner keeps of a `manifest.konnector`.
#[derive(Debug, Clone, PartialEq)]
pub struct CozyManifest {
    /// `slug`.
    pub slug: String,
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// `categories` (Cozy's words).
    pub categories: Vec<String>,
    /// `vendor_link`, when it is an https URL.
    pub vendor_link: Option<String>,
    /// `fields`, by name.
    pub fields: BTreeMap<String, CozyField>,
    /// `frequency`.
    pub frequency: Frequency,
    /// `time_interval`.
    pub time_interval: [u8; 2],
    /// The doctypes of `permissions` (what the run's token reaches).
    pub doctypes: Vec<String>,
    /// `parameters` (given to the konnector as `COZY_PARAMETERS`).
    pub parameters: Value,
}

#[derive(Deserialize)]
struct Raw {
    slug: Option<Value>,
    name: Option<Value>,
    version: Option<Value>,
    language: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    categories: Option<Value>,
    vendor_link: Option<Value>,
    fields: Option<Value>,
    frequency: Option<Value>,
    time_interval: Option<Value>,
    permissions: Option<Value>,
    parameters: Option<Value>,
    #[serde(rename = "clientSide")]
    client_side: Option<Value>,
    oauth: Option<Value>,
}

impl CozyManifest {
    /// Parses and checks a `manifest.konnector`. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ManifestError> {
        let bad = |field: &str, reason: String| ManifestError {
            file: file.to_owned(),
            field: field.to_owned(),
            reason,
        };
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| bad("(file)", format!("not a JSON object: {e}")))?;
        let string = |field: &str, v: &Option<Value>| -> Result<Option<String>, ManifestError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(bad(field, format!("must be a string, not {other}"))),
            }
        };
        let slug = string("slug", &raw.slug)?.ok_or_else(|| bad("slug", "is missing".into()))?;
        if slug.is_empty()
            || slug.len() > 64
            || !slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(
                "slug",
                format!("`{slug}` must be 1 to 64 lowercase letters, digits and '-'"),
            ));
        }
        let name = string("name", &raw.name)?
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| bad("name", "is missing".into()))?;
        let version =
            string("version", &raw.version)?.ok_or_else(|| bad("version", "is missing".into()))?;
        if !is_semver(&version) {
            return Err(bad(
                "version",
                format!("`{version}` is not a MAJOR.MINOR.PATCH version"),
            ));
        }
        match string("type", &raw.kind)?.as_deref() {
            None | Some("konnector") => {}
            Some(other) => {
                return Err(bad(
                    "type",
                    format!("`{other}` is not a konnector (an app's manifest?)"),
                ));
            }
        }
        match string("language", &raw.language)?.as_deref() {
            None | Some("node") | Some("nodejs") => {}
            Some(other) => {
                return Err(bad(
                    "language",
                    format!("`{other}`: Gleaner runs Node konnectors only"),
                ));
            }
        }
        if matches!(raw.client_side, Some(Value::Bool(true))) {
            return Err(bad(
                "clientSide",
                "a client-side (clisk) konnector runs in Cozy's mobile webview, which Gleaner does not have".into(),
            ));
        }
        if raw.oauth.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "oauth",
                "OAuth konnectors get their tokens from cozy-stack's OAuth proxy, which Gleaner does not serve".into(),
            ));
        }
        let categories = match &raw.categories {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|c| {
                    c.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("categories", format!("`{c}` is not a string")))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(bad("categories", format!("must be a list, not {other}"))),
        };
        let vendor_link = string("vendor_link", &raw.vendor_link)?.filter(|l| {
            url::Url::parse(l).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some())
        });
        let fields = parse_fields(&raw.fields).map_err(|(f, r)| bad(&f, r))?;
        let frequency = match string("frequency", &raw.frequency)?.as_deref() {
            None => Frequency::Weekly,
            Some("hourly") => Frequency::Hourly,
            Some("daily") => Frequency::Daily,
            Some("weekly") => Frequency::Weekly,
            Some("monthly") => Frequency::Monthly,
            Some(other) => {
                return Err(bad(
                    "frequency",
                    format!("`{other}` is not one of hourly, daily, weekly, monthly"),
                ));
            }
        };
        let time_interval = match &raw.time_interval {
            None | Some(Value::Null) => [0, 5],
            Some(Value::Array(pair)) if pair.len() == 2 => {
                let hour = |v: &Value| v.as_u64().filter(|h| *h <= 24).map(|h| h as u8);
                match (hour(&pair[0]), hour(&pair[1])) {
                    (Some(a), Some(b)) if a < b && a <= 23 => [a, b],
                    _ => {
                        return Err(bad(
                            "time_interval",
                            "must be two hours with 0 <= start < end <= 24".into(),
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(bad(
                    "time_interval",
                    format!("must be [start, end], not {other}"),
                ));
            }
        };
        let doctypes = parse_permissions(&raw.permissions).map_err(|(f, r)| bad(&f, r))?;
        let parameters = match raw.parameters {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(bad("parameters", format!("must be an object, not {other}")));
            }
        };
        Ok(Self {
            slug,
            name,
            version,
            categories,
            vendor_link,
            fields,
            frequency,
            time_interval,
            doctypes,
            parameters,
        })
    }

    /// The Gleaner manifest for the scheduler, the catalogue and the
    /// account forms. `timeout_secs` is the installation's time limit.
    pub fn to_gleaner(&self, timeout_secs: u64) -> Result<Manifest, KonnectorError> {
        let base_url = self
            .vendor_link
            .clone()
            .unwrap_or_else(|| format!("https://{}.konnector.invalid", self.slug));
        let host = url::Url::parse(&base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_lowercase))
            .unwrap_or_else(|| format!("{}.konnector.invalid", self.slug));
        let identifier = self
            .fields
            .iter()
            .find(|(_, f)| f.identifier)
            .map(|(n, _)| n.clone())
            .or_else(|| {
                self.fields
                    .contains_key("login")
                    .then(|| "login".to_owned())
            });
        let fields = self
            .fields
            .iter()
            .map(|(name, f)| {
                let kind = match f.kind.as_str() {
                    "password" => FieldType::Password,
                    "email" => FieldType::Email,
                    "hidden" => FieldType::Hidden,
                    _ => FieldType::Text,
                };
                let spec = FieldSpec {
                    kind,
                    label: label_of(name),
                    required: f.required && kind != FieldType::Hidden,
                    pattern: None,
                    identifier: identifier.as_deref() == Some(name.as_str()),
                };
                (name.clone(), spec)
            })
            .collect();
        let mut data_types: Vec<String> = self
            .doctypes
            .iter()
            .filter(|d| KNOWN_DOCTYPES.contains(&d.as_str()))
            .cloned()
            .collect();
        data_types.dedup();
        let manifest = Manifest {
            slug: self.slug.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            category: category_of(&self.categories),
            vendor_link: base_url.clone(),
            base_url,
            hosts: vec![host],
            fields,
            frequency: self.frequency,
            time_interval: self.time_interval,
            data_types,
            timeout_secs,
            request_budget: 500,
            oauth: None,
            login: Some(if self.fields.values().any(|f| f.kind == "password") {
                LoginKind::Form
            } else {
                LoginKind::ApiKey
            }),
            two_factor: SecondFactor::None,
        };
        manifest.validate(MANIFEST_FILE).map_err(|e| {
            KonnectorError::new(
                ErrorCode::ManifestInvalid,
                format!("{} (derived from {MANIFEST_FILE})", e.message),
            )
        })?;
        Ok(manifest)
    }
}

fn parse_fields(raw: &Option<Value>) -> Result<BTreeMap<String, CozyField>, (String, String)> {
    let map = match raw {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(("fields".into(), format!("must be an object, not {other}"))),
    };
    let mut out = BTreeMap::new();
    for (name, spec) in map {
        let at = |what: &str| format!("fields.{name}{what}");
        // Cozy's `advancedFields` holds options of the form, not a field.
        if name == "advancedFields" {
            continue;
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((at(""), "field names are letters, digits and '_'".into()));
        }
        let Value::Object(spec) = spec else {
            return Err((at(""), format!("must be an object, not {spec}")));
        };
        let kind = match spec.get("type") {
            None => "text".to_owned(),
            Some(Value::String(t)) => t.clone(),
            Some(other) => return Err((at(".type"), format!("must be a string, not {other}"))),
        };
        let required = match spec.get("isRequired").or_else(|| spec.get("required")) {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err((
                    at(".isRequired"),
                    format!("must be true or false, not {other}"),
                ));
            }
        };
        let identifier = spec.get("role").and_then(Value::as_str) == Some("identifier");
        out.insert(
            name.clone(),
            CozyField {
                kind,
                required,
                identifier,
            },
        );
    }
    if out.values().filter(|f| f.identifier).count() > 1 {
        return Err((
            "fields".into(),
            "at most one field may have the role `identifier`".into(),
        ));
    }
    Ok(out)
}

fn parse_permissions(raw: &Option<Value>) -> Result<Vec<String>, (String, String)> {
    let map = match raw {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err((
                "permissions".into(),
                format!("must be an object, not {other}"),
            ));
        }
    };
    let mut out = Vec::new();
    for (name, rule) in map {
        let Some(doctype) = rule.get("type").and_then(Value::as_str) else {
            return Err((
                format!("permissions.{name}.type"),
                "is missing (a doctype such as io.cozy.bills)".into(),
            ));
        };
        let valid = !doctype.is_empty()
            && doctype
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
        if !valid {
            return Err((
                format!("permissions.{name}.type"),
                format!("`{doctype}` is not a doctype"),
            ));
        }
        if !out.iter().any(|d| d == doctype) {
            out.push(doctype.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Cozy's category words to Gleaner's categories.
fn category_of(categories: &[String]) -> Category {
    for c in categories {
        match c.as_str() {
            "telecom" | "isp" => return Category::Telco,
            "energy" => return Category::Energy,
            "banking" | "bank" | "banks" => return Category::Bank,
            "insurance" | "health" => return Category::Insurance,
            _ => {}
        }
    }
    Category::Other
}

/// A field name as a label: `baseUrl` -> `Base url`, `login` -> `Login`.
fn label_of(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c == '_' {
            out.push(' ');
        } else if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_ascii_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "name": "Free Mobile (Node)", "slug": "freemobile-node", "version": "1.2.0",
        "type": "konnector", "language": "node", "categories": ["telecom"],
        "vendor_link": "https://mobile.free.fr", "frequency": "weekly", "time_interval": [0, 5],
        "fields": {"login": {"type": "text"}, "password": {"type": "password"},
                   "baseUrl": {"type": "text", "isRequired": false},
                   "advancedFields": {"folderPath": {"advanced": true}}},
        "permissions": {"bills": {"type": "io.cozy.bills"}, "files": {"type": "io.cozy.files"},
                        "accounts": {"type": "io.cozy.accounts", "verbs": ["GET", "PUT"]}}
    }"#;

    #[test]
    fn a_good_manifest_gives_a_valid_gleaner_manifest() {
        let m = CozyManifest::parse("m", GOOD).unwrap();
        assert_eq!(m.slug, "freemobile-node");
        assert_eq!(
            m.doctypes,
            ["io.cozy.accounts", "io.cozy.bills", "io.cozy.files"]
        );
        let g = m.to_gleaner(120).unwrap();
        assert_eq!(g.category, Category::Telco);
        assert_eq!(g.hosts, ["mobile.free.fr"]);
        assert_eq!(g.data_types, ["io.cozy.bills", "io.cozy.files"]);
        assert!(g.fields["password"].kind.is_secret());
        assert!(!g.fields["baseUrl"].required);
        assert_eq!(g.fields["baseUrl"].label, "Base url");
        assert_eq!(g.identifier_field(), Some("login"));
        assert_eq!(g.timeout_secs, 120);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            ("{", "(file)"),
            (r#"{"name":"x","version":"1.0.0"}"#, "slug"),
            (r#"{"slug":"A b","name":"x","version":"1.0.0"}"#, "slug"),
            (r#"{"slug":"a","version":"1.0.0"}"#, "name"),
            (r#"{"slug":"a","name":"x","version":"one"}"#, "version"),
            (
                r#"{"slug":"a","name":"x","version":"1.0.0","language":"python"}"#,
                "language",
            ),
            (
                r#"{"slug":"a","name":"x","version":"1.0.0","clientSide":true}"#,
                "clientSide",
            ),
            (
                r#"{"slug":"a","name":"x","version":"1.0.0","fields":{"a-b":{}}}"#,
                "fields.a-b",
            ),
            (
                r#"{"slug":"a","name":"x","version":"1.0.0","fields":{"p":{"type":3}}}"#,
                "fields.p.type",
            ),
            (
                r#"{"slug":"a","name":"x","version":"1.0.0","frequency":"yearly"}"#,
                "frequency",
            ),
            (
                r#"{"slug":"a","name":"x","version":"1.0.0","time_interval":[5,2]}"#,
                "time_interval",
            ),
            (
                r#"{"slug":"a","name":"x","version":"1.0.0","permissions":{"b":{}}}"#,
                "permissions.b.type",
            ),
        ];
        for (text, field) in cases {
            let err = CozyManifest::parse("m.json", text).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
            assert!(err.to_string().starts_with("m.json: "), "{err}");
        }
    }

    #[test]
    fn no_known_doctype_is_refused_when_deriving() {
        let m = CozyManifest::parse(
            "m",
            r#"{"slug":"a","name":"x","version":"1.0.0","permissions":{"i":{"type":"io.cozy.identities"}}}"#,
        )
        .unwrap();
        let err = m.to_gleaner(60).unwrap_err();
        assert!(err.message.contains("data_types"), "{}", err.message);
    }
}
