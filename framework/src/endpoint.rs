//! Where a konnector may send requests: the endpoint policy.
//!
//! An account's `endpoint` replaces its konnector's base URL (a sandbox or
//! a recording server on loopback). Whoever creates accounts (a person at a
//! terminal today; a web page or a tenant of a shared server tomorrow) could
//! otherwise point Gleaner at the machine's own network: a cloud metadata
//! service, an intranet. The policy:
//!
//! - only `http` and `https` URLs, without user name or password;
//! - **refused outright**: link-local addresses (`169.254.0.0/16`,
//!   `fe80::/10`), the cloud metadata addresses and names
//!   (`169.254.169.254`, `fd00:ec2::254`, `metadata.google.internal`),
//!   unspecified (`0.0.0.0/8`, `::`), broadcast and multicast addresses;
//! - **always fine**: loopback (`127.0.0.0/8`, `::1`, `localhost`);
//! - **anything else** (private ranges such as `10.0.0.0/8`, public hosts)
//!   only with an explicit confirmation ([`check_endpoint`]'s
//!   `allow_remote`; the caller words how a person gives it).
//!
//! The refused addresses are refused again at run time, for every request
//! of every [`crate::HttpClient`]: [`check_target`] checks the URL (scheme,
//! literal IP, metadata names) before a request is sent, and
//! [`GuardedResolver`] drops refused addresses from DNS answers, so a name
//! that resolves to a metadata address is not dialled either.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use url::{Host, Url};

use crate::error::{ErrorCode, KonnectorError, Result};

/// Host names of cloud metadata services, refused like their addresses.
const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata.goog"];

/// The AWS metadata service's IPv6 address, `fd00:ec2::254`.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Why an address is never dialled, or `None` if it may be.
pub fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            // ::ffff:a.b.c.d reaches a.b.c.d.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            if v6 == AWS_METADATA_V6 {
                Some("a cloud metadata address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else {
                None
            }
        }
    }
}

fn refused_v4(v4: Ipv4Addr) -> Option<&'static str> {
    if v4 == Ipv4Addr::new(169, 254, 169, 254) {
        Some("a cloud metadata address")
    } else if v4.is_link_local() {
        Some("a link-local address")
    } else if v4.octets()[0] == 0 {
        Some("the unspecified address")
    } else if v4.is_broadcast() {
        Some("the broadcast address")
    } else if v4.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// Whether an address is loopback (`127.0.0.0/8`, `::1`, `::ffff:127.x`).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// A host name without its trailing dot, lowercased.
fn normalized(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Why a host name is never dialled, or `None` if it may be.
fn refused_name(name: &str) -> Option<&'static str> {
    let name = normalized(name);
    METADATA_NAMES
        .contains(&name.as_str())
        .then_some("a cloud metadata name")
}

fn refusal(what: impl std::fmt::Display, why: impl std::fmt::Display) -> KonnectorError {
    KonnectorError::new(ErrorCode::HostNotAllowed, format!("{what} {why}"))
}

/// Checks an endpoint given for an account and returns it parsed.
///
/// Refused with `UNKNOWN_ERROR.HOST_NOT_ALLOWED` and a sentence naming the
/// reason: a string that is not a URL, a scheme other than `http` or
/// `https`, a user name or password in the URL, a refused address or name
/// (see the module's policy), and, unless `allow_remote`, any host that is
/// not loopback (the message says it needs an explicit confirmation; a
/// caller that gets this error with `allow_remote` false and none with it
/// true knows the confirmation is what is missing).
pub fn check_endpoint(endpoint: &str, allow_remote: bool) -> Result<Url> {
    let url = Url::parse(endpoint).map_err(|e| {
        refusal(
            format_args!("the endpoint `{}`", crate::http::strip_query(endpoint)),
            format_args!("is not a URL: {e}"),
        )
    })?;
    let shown = crate::http::display_url(&url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refusal(
            format_args!("the endpoint `{shown}`"),
            format_args!(
                "uses `{}:`; only http:// and https:// endpoints are allowed",
                url.scheme()
            ),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refusal(
            format_args!("the endpoint `{shown}`"),
            "carries a user name or password; give credentials as fields instead",
        ));
    }
    check_target(&url)?;
    let loopback = match url.host() {
        Some(Host::Ipv4(v4)) => is_loopback(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => is_loopback(IpAddr::V6(v6)),
        Some(Host::Domain(name)) => normalized(name) == "localhost",
        None => false,
    };
    if !loopback && !allow_remote {
        return Err(refusal(
            format_args!("the endpoint `{shown}`"),
            format_args!(
                "is not on this machine (loopback): sending the account's credentials there needs an explicit confirmation"
            ),
        ));
    }
    Ok(url)
}

/// Checks a URL just before a request: `http` or `https`, a host, and no
/// refused literal address or metadata name. (Names are checked again
/// after resolution by [`GuardedResolver`].)
pub fn check_target(url: &Url) -> Result<()> {
    let shown = crate::http::display_url(url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refusal(
            format_args!("refused a request to {shown}:"),
            format_args!("the `{}:` scheme is not http or https", url.scheme()),
        ));
    }
    let why = match url.host() {
        Some(Host::Ipv4(v4)) => refused_ip(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => refused_ip(IpAddr::V6(v6)),
        Some(Host::Domain(name)) => refused_name(name),
        None => Some("no host"),
    };
    match why {
        Some(why) => Err(refusal(
            format_args!("refused a request to {shown}:"),
            format_args!("the host is {why}, which Gleaner never contacts"),
        )),
        None => Ok(()),
    }
}

/// The error a [`GuardedResolver`] gives when a name resolves only to
/// refused addresses; the HTTP client turns it into
/// `UNKNOWN_ERROR.HOST_NOT_ALLOWED` (not retried).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{name} resolves only to addresses Gleaner never contacts ({refused})")]
pub struct RefusedResolution {
    /// The name looked up.
    pub name: String,
    /// The refused addresses with their reasons.
    pub refused: String,
}

/// The future a [`Lookup`] returns.
pub type LookupFuture =
    Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'static>>;

/// Resolves a host name to addresses (the system resolver by default; tests
/// give fake answers).
pub type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

/// A DNS resolver for reqwest that drops refused addresses (link-local,
/// metadata, unspecified, multicast) from every answer, and fails with
/// [`RefusedResolution`] when none is left.
#[derive(Clone)]
pub struct GuardedResolver {
    lookup: Lookup,
}

impl Default for GuardedResolver {
    fn default() -> Self {
        Self::system()
    }
}

impl GuardedResolver {
    /// The system resolver (`getaddrinfo` through tokio), guarded.
    pub fn system() -> Self {
        Self::with_lookup(Arc::new(|name: String| {
            Box::pin(async move {
                tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .map(Iterator::collect)
            })
        }))
    }

    /// A guarded resolver over any lookup function.
    pub fn with_lookup(lookup: Lookup) -> Self {
        Self { lookup }
    }

    /// Resolves `name` and keeps the addresses the policy allows.
    pub async fn resolve_name(
        &self,
        name: &str,
    ) -> std::result::Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        if let Some(why) = refused_name(name) {
            return Err(Box::new(RefusedResolution {
                name: name.to_owned(),
                refused: why.to_owned(),
            }));
        }
        let answers = (self.lookup)(name.to_owned()).await?;
        let (kept, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = answers
            .into_iter()
            .partition(|a| refused_ip(a.ip()).is_none());
        for a in &refused {
            tracing::warn!(host = name, address = %a.ip(), "dropped a refused address from a DNS answer");
        }
        if kept.is_empty() && !refused.is_empty() {
            let refused = refused
                .iter()
                .map(|a| format!("{}: {}", a.ip(), refused_ip(a.ip()).unwrap_or("refused")))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Box::new(RefusedResolution {
                name: name.to_owned(),
                refused,
            }));
        }
        Ok(kept)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.resolve_name(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The [`RefusedResolution`] somewhere in an error's causes, if any.
pub fn find_refused_resolution<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a RefusedResolution> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<RefusedResolution>() {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// The hosts a run may contact, from its manifest: `host` or `host:port`.
/// The HTTP client and the browser enforce the same list with this one
/// type.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowList(Vec<(String, Option<u16>)>);

impl AllowList {
    /// Parses manifest entries such as `mobile.free.fr` or `127.0.0.1:8080`.
    pub(crate) fn new(entries: &[String]) -> Self {
        Self(
            entries
                .iter()
                .map(|e| match e.rsplit_once(':') {
                    Some((host, port)) if port.parse::<u16>().is_ok() => {
                        (host.to_ascii_lowercase(), port.parse().ok())
                    }
                    _ => (e.to_ascii_lowercase(), None),
                })
                .collect(),
        )
    }

    /// Whether `url`'s host (and port, when the entry names one) is listed.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.0
            .iter()
            .any(|(h, p)| *h == host && (p.is_none() || *p == port))
    }

    /// Whether a cookie of `domain` (CDP's form: a leading dot for a
    /// domain cookie) belongs to an allowed host.
    pub(crate) fn allows_cookie_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        self.0
            .iter()
            .any(|(h, _)| *h == domain || h.ends_with(&format!(".{domain}")))
    }

    /// The host names alone (ports dropped), for chromium's resolver rules.
    pub(crate) fn host_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn code(r: Result<Url>) -> ErrorCode {
        r.err().map(|e| e.code).unwrap_or(ErrorCode::UnknownError)
    }

    #[test]
    fn loopback_endpoints_are_fine_without_the_flag() {
        for ok in [
            "http://127.0.0.1:8080/",
            "http://127.1.2.3/",
            "https://localhost:4443/api",
            "http://LOCALHOST./",
            "http://[::1]:9000/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(check_endpoint(ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_schemes_and_userinfo_are_refused() {
        for bad in [
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/plain,hi",
            "gopher://localhost/",
        ] {
            let e = check_endpoint(bad, true).unwrap_err();
            assert_eq!(e.code, ErrorCode::HostNotAllowed, "{bad}");
            assert!(
                e.message.contains("only http:// and https://"),
                "{}",
                e.message
            );
        }
        let e = check_endpoint("http://me:pw@127.0.0.1/", true).unwrap_err();
        assert!(e.message.contains("user name or password"), "{}", e.message);
        assert!(!e.message.contains("pw@"), "{}", e.message);
        let e = check_endpoint("not a url", true).unwrap_err();
        assert!(e.message.contains("is not a URL"), "{}", e.message);
    }

    #[test]
    fn link_local_metadata_unspecified_and_multicast_are_refused_even_with_the_flag() {
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1/",
            "http://[fe80::1]/",
            "http://[febf::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.GOOGLE.INTERNAL./",
            "http://0.0.0.0:8080/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
            "http://255.255.255.255/",
            // The url crate reads these as 169.254.169.254 too.
            "http://2852039166/",
            "http://0xa9.0xfe.0xa9.0xfe/",
        ] {
            let e = check_endpoint(bad, true).unwrap_err();
            assert_eq!(e.code, ErrorCode::HostNotAllowed, "{bad}");
            assert!(e.message.contains("never contacts"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn remote_endpoints_need_the_flag() {
        for remote in [
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "https://example.com/",
            "http://[fd12::1]/",
        ] {
            let e = check_endpoint(remote, false).unwrap_err();
            assert_eq!(e.code, ErrorCode::HostNotAllowed, "{remote}");
            assert!(e.message.contains("explicit confirmation"), "{}", e.message);
            assert!(check_endpoint(remote, true).is_ok(), "{remote}");
        }
        assert_eq!(
            code(check_endpoint("https://example.com/", false)),
            ErrorCode::HostNotAllowed
        );
    }

    #[test]
    fn link_local_boundaries() {
        assert!(refused_ip("169.253.255.255".parse().unwrap()).is_none());
        assert!(refused_ip("169.255.0.0".parse().unwrap()).is_none());
        assert!(refused_ip("fec0::1".parse().unwrap()).is_none());
        assert!(refused_ip("fe80::".parse().unwrap()).is_some());
        assert!(refused_ip("93.184.215.14".parse().unwrap()).is_none());
    }

    fn fake(answers: &'static [&'static str]) -> GuardedResolver {
        GuardedResolver::with_lookup(Arc::new(move |_name: String| {
            Box::pin(async move {
                Ok(answers
                    .iter()
                    .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
                    .collect())
            })
        }))
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let r = fake(&["169.254.169.254", "93.184.215.14", "fe80::1"]);
        let addrs = r.resolve_name("mixed.example").await.unwrap();
        assert_eq!(
            addrs,
            vec![SocketAddr::new("93.184.215.14".parse().unwrap(), 0)]
        );
    }

    #[tokio::test]
    async fn a_name_resolving_only_to_metadata_fails_clearly() {
        let r = fake(&["169.254.169.254", "fd00:ec2::254"]);
        let e = r.resolve_name("rebind.example").await.unwrap_err();
        let refused = find_refused_resolution(e.as_ref()).unwrap();
        assert_eq!(refused.name, "rebind.example");
        assert!(
            e.to_string()
                .contains("169.254.169.254: a cloud metadata address"),
            "{e}"
        );
        let e = r
            .resolve_name("metadata.google.internal")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cloud metadata name"), "{e}");
    }

    #[tokio::test]
    async fn the_resolver_goes_through_reqwest() {
        use reqwest::dns::Resolve as _;
        let r = fake(&["169.254.169.254"]);
        let name: reqwest::dns::Name = "rebind.example".parse().unwrap();
        let Err(e) = r.resolve(name).await else {
            panic!("resolved a metadata address");
        };
        assert!(find_refused_resolution(e.as_ref()).is_some());
        let r = fake(&["127.0.0.1"]);
        let name: reqwest::dns::Name = "ok.example".parse().unwrap();
        let Ok(addrs) = r.resolve(name).await else {
            panic!("refused loopback");
        };
        assert_eq!(addrs.count(), 1);
    }
}
