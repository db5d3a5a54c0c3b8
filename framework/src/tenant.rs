//! Tenants: the people or households whose data an installation keeps
//! apart ([`TenantId`]).
//!
//! On SQLite the tenant is implicit and single ([`TenantId::DEFAULT`]).
//! On PostgreSQL every row of the store and the queue carries a
//! `tenant_id`; code scopes each query to its tenant, and row-level
//! security is the second wall: a tenant's work runs inside a transaction
//! that takes the role [`TENANT_ROLE`] and sets [`TENANT_SETTING`]
//! (`store::postgres::tenant::begin_scoped`), and the policies only let
//! that role see and write the rows of the tenant so named.

use std::fmt;
use std::sync::Arc;

/// The PostgreSQL role a tenant's transactions take (`SET LOCAL ROLE`):
/// the row-level security policies apply to it.
pub const TENANT_ROLE: &str = "gleaner_tenant";

/// The PostgreSQL setting naming the tenant of a transaction, read by the
/// row-level security policies.
pub const TENANT_SETTING: &str = "gleaner.tenant";

/// A tenant's name: 1 to 63 characters, lowercase ASCII letters, digits,
/// `-` and `_`, starting with a letter or a digit (it names a folder and
/// appears in commands).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// A name that is not a valid [`TenantId`], with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a tenant name: {reason}")]
pub struct InvalidTenant {
    /// The name given (escaped for printing).
    pub name: String,
    /// Why it is refused.
    pub reason: &'static str,
}

impl TenantId {
    /// The implicit tenant: the only one on SQLite, and on PostgreSQL the
    /// one commands use without `--tenant` (an installation moved from
    /// SQLite lands in it).
    pub const DEFAULT: &'static str = "default";

    /// The default tenant ([`TenantId::DEFAULT`]).
    pub fn default_tenant() -> Self {
        Self(Arc::from(Self::DEFAULT))
    }

    /// Checks `name` and makes it a tenant id.
    pub fn parse(name: &str) -> Result<Self, InvalidTenant> {
        let refuse = |reason| InvalidTenant {
            name: name.escape_default().to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(refuse("it is empty"));
        }
        if name.len() > 63 {
            return Err(refuse("it is longer than 63 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(refuse(
                "only lowercase letters a-z, digits, `-` and `_` are allowed",
            ));
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(refuse("it must start with a letter or a digit"));
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the default tenant.
    pub fn is_default(&self) -> bool {
        &*self.0 == Self::DEFAULT
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::default_tenant()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = InvalidTenant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(TenantId::parse("alice").is_ok());
        assert!(TenantId::parse("family-2_b").is_ok());
        assert!(TenantId::parse("0a").is_ok());
        for bad in [
            "",
            "Alice",
            "a b",
            "-a",
            "_a",
            "a/b",
            "..",
            "é",
            &"a".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = TenantId::parse("a/b").unwrap_err();
        assert!(e.to_string().contains("`a/b` is not a tenant name"), "{e}");
        assert!(TenantId::default_tenant().is_default());
    }
}
