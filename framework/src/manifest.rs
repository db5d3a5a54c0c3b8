//! Konnector manifests: who the konnector is, what it asks the user, when it
//! runs, what it produces and which hosts it may contact.
//!
//! A manifest is a TOML file beside the konnector's code, embedded at build
//! time and validated when the registry loads it. Every check names the bad
//! field, so a contributor sees `fields.login.pattern: ...` rather than a
//! generic parse failure. Field names follow Cozy's `manifest.konnector`
//! where one exists (`vendor_link`, `frequency`, `time_interval`,
//! `data_types`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, KonnectorError};

/// The provider category a konnector belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Banks: accounts and operations.
    Bank,
    /// Telcos: phone and internet invoices.
    Telco,
    /// Energy providers: invoices and consumption.
    Energy,
    /// Insurers and health insurance: reimbursements.
    Insurance,
    /// Anything else (an installed Cozy konnector of another category:
    /// transport, shopping, public services...).
    Other,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bank => "bank",
            Self::Telco => "telco",
            Self::Energy => "energy",
            Self::Insurance => "insurance",
            Self::Other => "other",
        })
    }
}

/// How a konnector logs in to its provider (for the catalogue: `gleaner
/// konnectors`, `docs/konnectors.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginKind {
    /// A login form posted over plain HTTP (or a JSON login endpoint taking
    /// the same credentials).
    Form,
    /// OAuth2: the person consents at the provider (or the konnector uses
    /// its client credentials).
    Oauth2,
    /// A login page that needs scripts, driven in the run's headless
    /// browser.
    Browser,
    /// An API key or token the person pastes.
    ApiKey,
}

impl fmt::Display for LoginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Form => "form",
            Self::Oauth2 => "OAuth2",
            Self::Browser => "browser",
            Self::ApiKey => "API key",
        })
    }
}

/// The second factor a provider may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    /// None.
    #[default]
    None,
    /// A code sent by email.
    Email,
    /// A code sent by SMS.
    Sms,
    /// A code from an authenticator or a push to the provider's app.
    App,
    /// A redirect to the provider's site (a bank's SCA).
    Redirect,
}

impl fmt::Display for SecondFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Email => "emailed code",
            Self::Sms => "SMS code",
            Self::App => "app",
            Self::Redirect => "redirect (SCA)",
        })
    }
}

/// How often the scheduler runs an account of this konnector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Every hour.
    Hourly,
    /// Every day.
    Daily,
    /// Every week (Cozy's default).
    #[default]
    Weekly,
    /// Every month.
    Monthly,
}

/// The kind of input a manifest field asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Free text, stored in clear.
    Text,
    /// An e-mail address, stored in clear.
    Email,
    /// A secret: prompted hidden, encrypted at rest, never logged.
    Password,
    /// A value the user does not type (set by Gleaner).
    Hidden,
}

impl FieldType {
    /// Whether values of this field are secrets.
    pub fn is_secret(self) -> bool {
        self == Self::Password
    }
}

/// One input a konnector asks the user for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The kind of input.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// The label shown to the user.
    pub label: String,
    /// Whether the field must be given (default true).
    #[serde(default = "yes")]
    pub required: bool,
    /// A regular-expression-like pattern the value must match, limited to
    /// the forms [`FieldSpec::check`] understands (see its docs).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Whether this field is the account's identifier (the login).
    #[serde(default)]
    pub identifier: bool,
}

fn yes() -> bool {
    true
}

/// The longest value a field may have, in bytes (4 KiB).
///
/// The longest real credentials are API keys, client secrets and tokens of
/// a few hundred bytes, and PEM private keys (about 3.2 KiB for RSA 4096);
/// a value longer than this is a paste gone wrong or an attack on the
/// process (each secret is registered for redaction in seven forms).
pub const MAX_FIELD_BYTES: usize = 4096;

impl FieldSpec {
    /// Checks a value against the field's requirements.
    ///
    /// Patterns are kept deliberately small, so that no regex engine runs on
    /// user input: `^\d{N}$` (exactly N digits), `^\d{N,M}$` (N to M digits)
    /// and `^.{N,M}$` (N to M characters). Other patterns are rejected when
    /// the manifest loads.
    ///
    /// Every value is refused past [`MAX_FIELD_BYTES`], whatever the field,
    /// before anything else looks at it.
    pub fn check(&self, name: &str, value: &str) -> Result<(), String> {
        if value.len() > MAX_FIELD_BYTES {
            return Err(format!(
                "field `{name}` ({}) is {} bytes long; the limit is {MAX_FIELD_BYTES} bytes (4 KiB) per field",
                self.label,
                value.len()
            ));
        }
        if value.is_empty() {
            return if self.required {
                Err(format!("field `{name}` ({}) is required", self.label))
            } else {
                Ok(())
            };
        }
        if let Some(pattern) = &self.pattern {
            let rule = PatternRule::parse(pattern)
                .ok_or_else(|| format!("field `{name}` has an unsupported pattern"))?;
            if !rule.matches(value) {
                return Err(format!(
                    "field `{name}` ({}) must match {pattern}",
                    self.label
                ));
            }
        }
        Ok(())
    }
}

/// The small set of field patterns a manifest may use (see
/// [`FieldSpec::check`]): `^\d{N}$`, `^\d{N,M}$`, `^.{N,M}$`. Forms show the
/// same rule as HTML attributes and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternRule {
    /// `min` to `max` ASCII digits.
    Digits {
        /// The fewest digits.
        min: usize,
        /// The most digits.
        max: usize,
    },
    /// `min` to `max` characters.
    Chars {
        /// The fewest characters.
        min: usize,
        /// The most characters.
        max: usize,
    },
}

impl PatternRule {
    /// Reads a manifest pattern; `None` for any other form (which the
    /// manifest's validation refuses).
    pub fn parse(pattern: &str) -> Option<Self> {
        let inner = pattern.strip_prefix('^')?.strip_suffix('$')?;
        let (class, counts) = if let Some(rest) = inner.strip_prefix(r"\d{") {
            ("d", rest)
        } else if let Some(rest) = inner.strip_prefix(".{") {
            (".", rest)
        } else {
            return None;
        };
        let counts = counts.strip_suffix('}')?;
        let (min, max) = match counts.split_once(',') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let n = counts.trim().parse().ok()?;
                (n, n)
            }
        };
        if min > max {
            return None;
        }
        Some(if class == "d" {
            Self::Digits { min, max }
        } else {
            Self::Chars { min, max }
        })
    }

    /// Whether a value follows the rule.
    pub fn matches(self, value: &str) -> bool {
        let n = value.chars().count();
        match self {
            Self::Digits { min, max } => {
                (min..=max).contains(&n) && value.chars().all(|c| c.is_ascii_digit())
            }
            Self::Chars { min, max } => (min..=max).contains(&n),
        }
    }
}

/// A konnector's manifest, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique, URL-safe identifier such as `free-mobile`.
    pub slug: String,
    /// The provider's name as users know it.
    pub name: String,
    /// The konnector's version (semver).
    pub version: String,
    /// The provider category.
    pub category: Category,
    /// The provider's public web site.
    pub vendor_link: String,
    /// The base URL requests are made against (the account may point it at a
    /// sandbox; see [`crate::context::RunContext::base_url`]).
    pub base_url: String,
    /// The hosts the konnector may contact; any other host is refused.
    pub hosts: Vec<String>,
    /// Inputs asked of the user, by field name.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// How often automatic runs happen.
    #[serde(default)]
    pub frequency: Frequency,
    /// The window `[start_hour, end_hour)` of automatic runs (UTC unless the
    /// installation says otherwise). Defaults to Cozy's `[0, 5]`.
    #[serde(default = "default_interval")]
    pub time_interval: [u8; 2],
    /// The doctypes the konnector writes, such as `io.cozy.bills`.
    pub data_types: Vec<String>,
    /// The run's time limit in seconds (default 300, like Cozy).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The most requests a run may send to one host.
    #[serde(default = "default_budget")]
    pub request_budget: u32,
    /// Present for an OAuth2 konnector: how it gets its tokens (see
    /// [`OAuthSpec`] and [`crate::oauth`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,
    /// How it logs in; when absent, `oauth2` if [`Manifest::oauth`] is
    /// present, else `form` (see [`Manifest::login_kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginKind>,
    /// The second factor the provider may ask for (default `none`).
    #[serde(default)]
    pub two_factor: SecondFactor,
}

/// The OAuth2 grant a konnector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// The person consents in a browser; the code comes back to a loopback
    /// redirect and is exchanged for an access and a refresh token.
    AuthorizationCode,
    /// The konnector authenticates as itself with a client id and secret.
    ClientCredentials,
}

/// The `[oauth]` section of a manifest.
///
/// The client secret is never written here: it comes from the account's
/// secret field named by `client_secret_field`, or from the environment
/// variable named by `client_secret_env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    /// Which grant.
    pub grant: OAuthGrant,
    /// The consent page (authorization code grant only).
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// The token endpoint; its host must be in `hosts`.
    pub token_url: String,
    /// Scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The client id (public).
    pub client_id: String,
    /// Whether to use PKCE (S256); authorization code grant only. Default true.
    #[serde(default = "yes")]
    pub pkce: bool,
    /// A `password` field of the account that holds the client secret.
    #[serde(default)]
    pub client_secret_field: Option<String>,
    /// An environment variable that holds the client secret when the account
    /// has none.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Extra query parameters of the consent URL (such as Enedis'
    /// `duration`).
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// Query parameters of the redirect, besides `code` and `state`, that are
    /// kept as account fields (such as Enedis' `usage_point_id`).
    #[serde(default)]
    pub callback_fields: Vec<String>,
}

/// Query parameters the OAuth flow sets itself.
const RESERVED_OAUTH_PARAMS: &[&str] = &[
    "client_id",
    "response_type",
    "state",
    "redirect_uri",
    "scope",
    "code",
    "code_challenge",
    "code_challenge_method",
    "error",
    "error_description",
];

fn default_interval() -> [u8; 2] {
    [0, 5]
}

fn default_timeout() -> u64 {
    300
}

fn default_budget() -> u32 {
    500
}

/// The doctypes a manifest may declare in `data_types`.
pub const KNOWN_DOCTYPES: &[&str] = &[
    "io.cozy.bills",
    "io.cozy.files",
    "io.cozy.bank.accounts",
    "io.cozy.bank.operations",
    "io.cozy.bank.balancehistories",
    "io.cozy.timeseries.energy",
];

impl Manifest {
    /// How the konnector logs in: `login`, else OAuth2 when the manifest
    /// has an `[oauth]` table, else a form.
    pub fn login_kind(&self) -> LoginKind {
        match (self.login, &self.oauth) {
            (Some(kind), _) => kind,
            (None, Some(_)) => LoginKind::Oauth2,
            (None, None) => LoginKind::Form,
        }
    }

    /// Parses and validates a manifest from its TOML text.
    ///
    /// `source` names the file in error messages.
    pub fn from_toml(source: &str, text: &str) -> Result<Self, KonnectorError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            let place = e.span().map(|s| locate(text, s.start)).unwrap_or_default();
            invalid(source, &format!("{place}{}", e.message()), "")
        })?;
        manifest.validate(source)?;
        Ok(manifest)
    }

    /// Checks every field; the first failure names the field.
    pub fn validate(&self, source: &str) -> Result<(), KonnectorError> {
        let bad = |field: &str, why: String| invalid(source, &format!("{field}: {why}"), "");
        if self.slug.is_empty()
            || !self
                .slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(
                "slug",
                format!("`{}` must be lowercase letters, digits and '-'", self.slug),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        if !is_semver(&self.version) {
            return Err(bad(
                "version",
                format!("`{}` is not a MAJOR.MINOR.PATCH version", self.version),
            ));
        }
        for (field, link) in [
            ("vendor_link", &self.vendor_link),
            ("base_url", &self.base_url),
        ] {
            let url = url::Url::parse(link)
                .map_err(|e| bad(field, format!("`{link}` is not a URL ({e})")))?;
            if url.scheme() != "https" {
                return Err(bad(field, format!("`{link}` must use https")));
            }
        }
        if self.hosts.is_empty() {
            return Err(bad("hosts", "must list at least one host".into()));
        }
        for host in &self.hosts {
            if host.is_empty() || host.contains(['/', ':', ' ']) || host != &host.to_lowercase() {
                return Err(bad(
                    "hosts",
                    format!("`{host}` must be a lowercase host name, without scheme or port"),
                ));
            }
        }
        let base_host = url::Url::parse(&self.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        if !self.hosts.contains(&base_host) {
            return Err(bad(
                "hosts",
                format!("must include the host of base_url (`{base_host}`)"),
            ));
        }
        for (name, spec) in &self.fields {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad(
                    &format!("fields.{name}"),
                    "field names are letters, digits and '_'".into(),
                ));
            }
            if spec.label.trim().is_empty() {
                return Err(bad(
                    &format!("fields.{name}.label"),
                    "must not be empty".into(),
                ));
            }
            if let Some(p) = &spec.pattern
                && PatternRule::parse(p).is_none()
            {
                return Err(bad(
                    &format!("fields.{name}.pattern"),
                    format!(r"`{p}` is not one of ^\d{{N}}$, ^\d{{N,M}}$, ^.{{N,M}}$"),
                ));
            }
        }
        if self.fields.values().filter(|f| f.identifier).count() > 1 {
            return Err(bad(
                "fields",
                "at most one field may be the identifier".into(),
            ));
        }
        let [start, end] = self.time_interval;
        if start > 23 || end > 24 || start >= end {
            return Err(bad(
                "time_interval",
                format!("[{start}, {end}] must be two hours with 0 <= start < end <= 24"),
            ));
        }
        if self.data_types.is_empty() {
            return Err(bad("data_types", "must list at least one doctype".into()));
        }
        for dt in &self.data_types {
            if !KNOWN_DOCTYPES.contains(&dt.as_str()) {
                return Err(bad(
                    "data_types",
                    format!("`{dt}` is not one of {}", KNOWN_DOCTYPES.join(", ")),
                ));
            }
        }
        if self.timeout_secs == 0 || self.timeout_secs > 6 * 3600 {
            return Err(bad(
                "timeout_secs",
                "must be between 1 and 21600 seconds".into(),
            ));
        }
        if self.request_budget == 0 {
            return Err(bad("request_budget", "must be at least 1".into()));
        }
        if let Some(oauth) = &self.oauth {
            self.validate_oauth(oauth)
                .map_err(|(field, why)| bad(&format!("oauth.{field}"), why))?;
        }
        Ok(())
    }

    fn validate_oauth(&self, o: &OAuthSpec) -> Result<(), (&'static str, String)> {
        let https = |field: &'static str, link: &str| -> Result<url::Url, (&'static str, String)> {
            let url = url::Url::parse(link)
                .map_err(|e| (field, format!("`{link}` is not a URL ({e})")))?;
            if url.scheme() != "https" {
                return Err((field, format!("`{link}` must use https")));
            }
            Ok(url)
        };
        let token = https("token_url", &o.token_url)?;
        let token_host = token.host_str().unwrap_or_default().to_owned();
        if !self.hosts.contains(&token_host) {
            return Err((
                "token_url",
                format!("its host `{token_host}` must be in hosts"),
            ));
        }
        match (o.grant, &o.authorize_url) {
            (OAuthGrant::AuthorizationCode, Some(link)) => {
                https("authorize_url", link)?;
            }
            (OAuthGrant::AuthorizationCode, None) => {
                return Err((
                    "authorize_url",
                    "is required with grant = \"authorization_code\"".into(),
                ));
            }
            (OAuthGrant::ClientCredentials, Some(_)) => {
                return Err((
                    "authorize_url",
                    "means nothing with grant = \"client_credentials\"".into(),
                ));
            }
            (OAuthGrant::ClientCredentials, None) => {}
        }
        if o.client_id.trim().is_empty() {
            return Err(("client_id", "must not be empty".into()));
        }
        if let Some(s) = o.scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
            return Err(("scopes", format!("`{s}` must be one non-empty word")));
        }
        if o.pkce && o.grant == OAuthGrant::ClientCredentials {
            return Err((
                "pkce",
                "only applies to grant = \"authorization_code\"; set pkce = false".into(),
            ));
        }
        if let Some(field) = &o.client_secret_field {
            match self.fields.get(field) {
                Some(spec) if spec.kind.is_secret() => {}
                Some(_) => {
                    return Err((
                        "client_secret_field",
                        format!("field `{field}` must have type = \"password\""),
                    ));
                }
                None => {
                    return Err((
                        "client_secret_field",
                        format!("`{field}` is not one of the manifest's fields"),
                    ));
                }
            }
        }
        if let Some(var) = &o.client_secret_env
            && (var.is_empty()
                || !var
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        {
            return Err((
                "client_secret_env",
                format!("`{var}` must be an upper-case environment variable name"),
            ));
        }
        if o.grant == OAuthGrant::ClientCredentials
            && o.client_secret_field.is_none()
            && o.client_secret_env.is_none()
        {
            return Err((
                "client_secret_field",
                "client_credentials needs a client secret: name a password field or an environment variable".into(),
            ));
        }
        if let Some(p) = o
            .authorize_params
            .keys()
            .find(|p| RESERVED_OAUTH_PARAMS.contains(&p.as_str()))
        {
            return Err((
                "authorize_params",
                format!("`{p}` is set by the OAuth flow itself"),
            ));
        }
        for f in &o.callback_fields {
            if RESERVED_OAUTH_PARAMS.contains(&f.as_str()) || self.fields.contains_key(f) {
                return Err((
                    "callback_fields",
                    format!("`{f}` clashes with an OAuth parameter or a manifest field"),
                ));
            }
        }
        Ok(())
    }

    /// The name of the field that identifies the account (the login), if any.
    pub fn identifier_field(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(_, f)| f.identifier)
            .map(|(n, _)| n.as_str())
    }
}

/// Names the key at a byte offset of a TOML text: `fields.login.pattern: `
/// plus the line number, so a parse error points at the field.
fn locate(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let mut table = String::new();
    for line in before.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            table = t.trim_matches(['[', ']']).trim().to_owned();
        }
    }
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !line.trim_start().starts_with('[') => {
            let key = key.trim();
            if table.is_empty() {
                format!("{key} (line {line_no}): ")
            } else {
                format!("{table}.{key} (line {line_no}): ")
            }
        }
        _ => format!("line {line_no}: "),
    }
}

fn is_semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn invalid(source: &str, what: &str, where_: &str) -> KonnectorError {
    KonnectorError::new(
        ErrorCode::ManifestInvalid,
        format!("manifest {source}: {what}{where_}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
slug = "acme"
name = "Acme"
version = "1.0.0"
category = "telco"
vendor_link = "https://acme.example"
base_url = "https://www.acme.example"
hosts = ["www.acme.example"]
frequency = "monthly"
time_interval = [1, 6]
data_types = ["io.cozy.bills", "io.cozy.files"]

[fields.login]
type = "text"
label = "Customer number"
pattern = '^\d{8}$'
identifier = true

[fields.password]
type = "password"
label = "Password"
"#;

    #[test]
    fn a_good_manifest_loads() {
        let m = Manifest::from_toml("acme.toml", GOOD).unwrap();
        assert_eq!(m.slug, "acme");
        assert_eq!(m.frequency, Frequency::Monthly);
        assert_eq!(m.timeout_secs, 300);
        assert_eq!(m.identifier_field(), Some("login"));
        assert!(m.fields["password"].kind.is_secret());
        // No `login`, no `[oauth]`: a form; no `two_factor`: none.
        assert_eq!(m.login_kind(), LoginKind::Form);
        assert_eq!(m.two_factor, SecondFactor::None);
    }

    #[test]
    fn login_and_second_factor_are_read_and_checked() {
        let text = GOOD.replace(
            "frequency = \"monthly\"",
            "frequency = \"monthly\"\nlogin = \"browser\"\ntwo_factor = \"sms\"",
        );
        let m = Manifest::from_toml("acme.toml", &text).unwrap();
        assert_eq!(m.login_kind(), LoginKind::Browser);
        assert_eq!(m.login_kind().to_string(), "browser");
        assert_eq!(m.two_factor.to_string(), "SMS code");
        let bad = GOOD.replace(
            "frequency = \"monthly\"",
            "frequency = \"monthly\"\nlogin = \"carrier-pigeon\"",
        );
        assert!(err_of(&bad).contains("carrier-pigeon"), "{}", err_of(&bad));
    }

    fn err_of(text: &str) -> String {
        Manifest::from_toml("acme.toml", text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("category = \"telco\"", "category = \"grocery\"", "category"),
            ("slug = \"acme\"", "slug = \"Acme!\"", "slug"),
            ("version = \"1.0.0\"", "version = \"one\"", "version"),
            (
                "hosts = [\"www.acme.example\"]",
                "hosts = [\"evil.example\"]",
                "hosts",
            ),
            (
                "time_interval = [1, 6]",
                "time_interval = [6, 1]",
                "time_interval",
            ),
            (
                "data_types = [\"io.cozy.bills\", \"io.cozy.files\"]",
                "data_types = [\"io.cozy.nope\"]",
                "data_types",
            ),
            (
                r"pattern = '^\d{8}$'",
                "pattern = '[a-z]+'",
                "fields.login.pattern",
            ),
            (
                "label = \"Password\"",
                "label = \"\"",
                "fields.password.label",
            ),
            (
                "vendor_link = \"https://acme.example\"",
                "vendor_link = \"http://acme.example\"",
                "vendor_link",
            ),
        ];
        for (from, to, field) in cases {
            let msg = err_of(&GOOD.replace(from, to));
            assert!(msg.starts_with("UNKNOWN_ERROR.MANIFEST_INVALID"), "{msg}");
            assert!(msg.contains(field), "{field} not named in: {msg}");
        }
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let msg = err_of(&format!("{GOOD}\ncolour = \"red\""));
        assert!(msg.contains("colour"), "{msg}");
        let msg = err_of(&GOOD.replace("name = \"Acme\"\n", ""));
        assert!(msg.contains("name"), "{msg}");
    }

    const OAUTH: &str = r#"
[oauth]
grant = "authorization_code"
authorize_url = "https://login.acme.example/authorize"
token_url = "https://www.acme.example/oauth/token"
scopes = ["read"]
client_id = "gleaner"
client_secret_field = "password"
authorize_params = { duration = "P1Y" }
callback_fields = ["meter"]
"#;

    #[test]
    fn an_oauth_section_loads() {
        let m = Manifest::from_toml("acme.toml", &format!("{GOOD}{OAUTH}")).unwrap();
        let o = m.oauth.unwrap();
        assert_eq!(o.grant, OAuthGrant::AuthorizationCode);
        assert!(o.pkce);
        assert_eq!(o.callback_fields, ["meter"]);
        assert!(
            Manifest::from_toml("acme.toml", GOOD)
                .unwrap()
                .oauth
                .is_none()
        );
    }

    #[test]
    fn each_bad_oauth_key_is_named() {
        let cases = [
            (
                "grant = \"authorization_code\"",
                "grant = \"implicit\"",
                "grant",
            ),
            (
                "token_url = \"https://www.acme.example/oauth/token\"",
                "token_url = \"https://other.example/token\"",
                "oauth.token_url",
            ),
            (
                "token_url = \"https://www.acme.example/oauth/token\"",
                "token_url = \"http://www.acme.example/oauth/token\"",
                "oauth.token_url",
            ),
            (
                "authorize_url = \"https://login.acme.example/authorize\"\n",
                "",
                "oauth.authorize_url",
            ),
            (
                "client_id = \"gleaner\"",
                "client_id = \"\"",
                "oauth.client_id",
            ),
            ("scopes = [\"read\"]", "scopes = [\"a b\"]", "oauth.scopes"),
            (
                "client_secret_field = \"password\"",
                "client_secret_field = \"login\"",
                "oauth.client_secret_field",
            ),
            (
                "client_secret_field = \"password\"",
                "client_secret = \"hunter2\"",
                "client_secret",
            ),
            (
                "duration = \"P1Y\"",
                "state = \"x\"",
                "oauth.authorize_params",
            ),
            (
                "callback_fields = [\"meter\"]",
                "callback_fields = [\"login\"]",
                "oauth.callback_fields",
            ),
        ];
        for (from, to, field) in cases {
            let text = format!("{GOOD}{OAUTH}");
            assert!(text.contains(from), "{from}");
            let msg = err_of(&text.replace(from, to));
            assert!(msg.starts_with("UNKNOWN_ERROR.MANIFEST_INVALID"), "{msg}");
            assert!(msg.contains(field), "{field} not named in: {msg}");
        }
        let cc = format!("{GOOD}{OAUTH}")
            .replace("authorization_code", "client_credentials")
            .replace(
                "authorize_url = \"https://login.acme.example/authorize\"\n",
                "",
            );
        assert!(err_of(&cc).contains("oauth.pkce"), "{}", err_of(&cc));
        let cc = cc.replace("client_id = ", "pkce = false\nclient_id = ");
        Manifest::from_toml("acme.toml", &cc).unwrap();
    }

    #[test]
    fn field_values_are_checked() {
        let m = Manifest::from_toml("acme.toml", GOOD).unwrap();
        let login = &m.fields["login"];
        assert!(login.check("login", "12345678").is_ok());
        assert!(login.check("login", "1234567").is_err());
        assert!(login.check("login", "1234567a").is_err());
        assert!(login.check("login", "").unwrap_err().contains("required"));
    }

    #[test]
    fn absurd_field_values_are_refused_naming_the_field_and_the_limit() {
        let m = Manifest::from_toml("acme.toml", GOOD).unwrap();
        let password = &m.fields["password"];
        let limit = "a".repeat(MAX_FIELD_BYTES);
        assert!(password.check("password", &limit).is_ok());
        let huge = "a".repeat(100 * 1024);
        let err = password.check("password", &huge).unwrap_err();
        assert!(err.contains("field `password`"), "{err}");
        assert!(err.contains("4096 bytes"), "{err}");
        assert!(!err.contains("aaaa"), "{err}");
        let err = password
            .check("password", &"é".repeat(MAX_FIELD_BYTES / 2 + 1))
            .unwrap_err();
        assert!(err.contains("4098 bytes long"), "{err}");
    }
}
