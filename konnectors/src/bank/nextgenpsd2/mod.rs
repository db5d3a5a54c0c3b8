//! Berlin Group NextGenPSD2 account information (bank): one konnector for
//! every bank that exposes the standard XS2A interface. Accounts, their
//! balances (and daily balance history) and their booked and pending
//! transactions, after the person's consent.
//!
//! Read in this order: `manifest.toml` (the fields: the bank's base URL is
//! the account's endpoint; a PSU-ID when the bank needs one; a client
//! certificate and key for the mTLS real banks require), [`api`] (paths,
//! headers, answer types, the bank's error codes), [`auth`] (the consent:
//! creation, SCA redirect through the second-factor channel, reuse until
//! it expires), [`mapping`] (pure mapping to `io.cozy.bank.*`), this file
//! (the run), `sandbox/` (a local bank that plays the standard).
//!
//! Facts (paths, headers, fields, codes) come from the Berlin Group's
//! OpenAPI file 1.3.12 (`shared/specs/bg-psd2-1.3.12.yaml`); the konnector
//! runs unchanged against a mock server generated from it (Stoplight
//! Prism, `konnectors/tests/nextgenpsd2_prism.rs`).

pub mod api;
pub mod auth;
pub mod mapping;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use gleaner_framework::bank::{OperationBatch, SyncWindow};
use gleaner_framework::http::transport::{ClientIdentity, ReqwestTransport, TransportConfig};
use gleaner_framework::http::{HttpClient, HttpConfig};
use gleaner_framework::{ErrorCode, Konnector, KonnectorError, Manifest, Result, RunContext, async_trait};
use url::Url;

use api::{AccountDetails, Api, Balance, CallError, Transaction, link};
use auth::{Consent, Renewal};

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(NextGenPsd2::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// `PSU-IP-Address` when the account does not set one.
pub const DEFAULT_PSU_IP: &str = "127.0.0.1";

/// `TPP-Redirect-URI` when the account does not set one: after approving,
/// the person's browser lands on this machine (nothing listens there; the
/// approval is done, the run goes on once the person says so).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1/";

/// The NextGenPSD2 konnector.
pub struct NextGenPsd2 {
    manifest: Manifest,
}

impl NextGenPsd2 {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("bank/nextgenpsd2/manifest.toml", MANIFEST)?,
        })
    }
}

/// One account as read from the bank, before mapping.
struct Fetched {
    details: AccountDetails,
    resource_id: String,
    balances: Vec<Balance>,
    window: SyncWindow,
    /// Each page: booked, pending, and the URL it came from.
    pages: Vec<(Vec<Transaction>, Vec<Transaction>, String)>,
}

/// A field's value, trimmed, when set and not empty.
fn optional_field(ctx: &RunContext, name: &str) -> Option<String> {
    ctx.field(name)
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// PEM text, or the content of the PEM file the value names.
async fn pem(value: &str, what: &str) -> Result<Vec<u8>> {
    let value = value.trim();
    if value.starts_with("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    tokio::fs::read(value).await.map_err(|e| {
        KonnectorError::login_failed(format!(
            "the {what} is neither PEM text nor a readable PEM file: {e}"
        ))
    })
}

/// The HTTP client: the run's, or (with a client certificate) one that
/// presents it, under the same host allow-list and request budget. Runs
/// with a certificate are not recorded to cassettes.
async fn http_client(ctx: &RunContext) -> Result<HttpClient> {
    let cert = optional_field(ctx, "client_certificate");
    let key = ctx
        .secret("client_key")
        .ok()
        .map(|s| s.expose().trim().to_owned())
        .filter(|k| !k.is_empty());
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(ctx.http().clone()),
        (Some(c), Some(k)) => (c, k),
        _ => {
            return Err(KonnectorError::login_failed(
                "mutual TLS needs both the client certificate and its private key; one of them is missing",
            ));
        }
    };
    let mut bundle = pem(&cert, "client certificate").await?;
    bundle.push(b'\n');
    bundle.extend(pem(&key, "client key").await?);
    let identity = ClientIdentity::from_pem(bundle)?;
    let transport = ReqwestTransport::new(TransportConfig {
        client_identity: Some(identity),
        ..TransportConfig::default()
    })?;
    let mut allowed = ctx.manifest().hosts.clone();
    let base = ctx.base_url();
    if let Some(host) = base.host_str() {
        allowed.push(match base.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        });
    }
    let config = HttpConfig {
        allowed_hosts: allowed,
        request_budget: ctx.manifest().request_budget,
        ..HttpConfig::default()
    };
    Ok(HttpClient::with_transport(config, Arc::new(transport)))
}

/// The API for this account: endpoint, PSU headers, client.
async fn api(ctx: &RunContext) -> Result<Api> {
    let base: &Url = ctx.base_url();
    if base.as_str().trim_end_matches('/') == ctx.manifest().base_url.trim_end_matches('/') {
        return Err(KonnectorError::new(
            ErrorCode::UserActionNeeded,
            "this account has no bank endpoint: set the bank's NextGenPSD2 base URL (the part before /v1/) as the account's endpoint",
        ));
    }
    let psu_ip = optional_field(ctx, "psu_ip_address").unwrap_or_else(|| DEFAULT_PSU_IP.to_owned());
    if psu_ip.parse::<Ipv4Addr>().is_err() {
        return Err(KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("the field psu_ip_address is `{psu_ip}`, not an IPv4 address as the standard requires"),
        ));
    }
    let redirect =
        optional_field(ctx, "tpp_redirect_uri").unwrap_or_else(|| DEFAULT_REDIRECT_URI.to_owned());
    if Url::parse(&redirect).is_err() {
        return Err(KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("the field tpp_redirect_uri is `{redirect}`, which is not a URL"),
        ));
    }
    let http = http_client(ctx).await?;
    Ok(Api::new(
        http,
        base,
        psu_ip,
        optional_field(ctx, "psu_id"),
        redirect,
    ))
}

/// Reads every account the consent covers: details, balances and the
/// window's transactions, all pages.
async fn fetch(
    ctx: &mut RunContext,
    api: &Api,
    consent: &Consent,
) -> std::result::Result<Vec<Fetched>, CallError> {
    let psu = consent.fresh;
    let (list, list_url) = api.accounts(&consent.id, psu).await?;
    let total = list.accounts.len() as u64;
    let mut out = Vec::with_capacity(list.accounts.len());
    for (index, details) in list.accounts.into_iter().enumerate() {
        let resource_id = mapping::resource_id(&details, index, &list_url)?.to_owned();
        ctx.progress(index as u64, Some(total), format!("account {}", index + 1));
        let mut balances = api.balances(&consent.id, psu, &resource_id).await?.balances;
        if balances.is_empty() {
            balances = details.balances.clone().unwrap_or_default();
        }
        let window = ctx.sync_window(&resource_id)?;
        let mut url = api.transactions_url(&resource_id, window.from, window.to)?;
        let mut seen = HashSet::new();
        let mut pages = Vec::new();
        loop {
            seen.insert(url.to_string());
            let (answer, shown) = api.transactions_page(&consent.id, psu, &url).await?;
            let Some(report) = answer.transactions else {
                if link(&answer.links, "download").is_some() {
                    return Err(CallError::Other(KonnectorError::new(
                        ErrorCode::UnknownError,
                        "the bank offers the transactions only as a report to download (camt), which this konnector does not read",
                    )));
                }
                break;
            };
            if answer.balances.as_ref().is_some_and(|b| !b.is_empty()) && balances.is_empty() {
                balances = answer.balances.clone().unwrap_or_default();
            }
            let next = link(&report.links, "next").map(|h| api.resolve(h)).transpose()?;
            pages.push((report.booked, report.pending, shown));
            ctx.progress(
                index as u64,
                Some(total),
                format!("account {}: page {}", index + 1, pages.len()),
            );
            match next {
                None => break,
                Some(n) if seen.contains(n.as_str()) => {
                    ctx.warn(format!(
                        "the bank's `next` link of account {} repeats a page it gave already; stopped there",
                        index + 1
                    ));
                    break;
                }
                Some(n) => url = n,
            }
        }
        out.push(Fetched {
            details,
            resource_id,
            balances,
            window,
            pages,
        });
    }
    ctx.progress(total, Some(total), "read");
    Ok(out)
}

/// Maps and saves what was read.
async fn save(ctx: &mut RunContext, fetched: Vec<Fetched>, institution: &str) -> Result<()> {
    let today = ctx.today();
    for account in fetched {
        let doc = mapping::bank_account(
            &account.details,
            &account.resource_id,
            &account.balances,
            institution,
            today,
        );
        let doc_id = ctx.save_bank_account(&doc).await?;
        let mut operations = Vec::new();
        for (booked, pending, url) in &account.pages {
            operations.extend(mapping::page_operations(
                booked,
                pending,
                &account.resource_id,
                Some(&doc_id),
                today,
                url,
            )?);
        }
        let operations = mapping::dedup(operations);
        let days = mapping::daily_balances(
            &account.balances,
            account.details.currency,
            &operations,
            account.window.from,
            today,
        );
        let summary = ctx
            .save_bank_operations(OperationBatch {
                vendor_account_id: account.resource_id.clone(),
                window: account.window,
                operations,
            })
            .await?;
        tracing::info!(
            saved = summary.created_or_updated,
            booked_from_pending = summary.booked_from_pending,
            pending_vanished = summary.pending_vanished,
            "operations saved"
        );
        if !days.is_empty() {
            ctx.save_balances(&doc_id, &account.resource_id, &days).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl Konnector for NextGenPsd2 {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let api = api(ctx).await?;
        let institution = optional_field(ctx, "bank_name").unwrap_or_else(|| {
            api.base()
                .host_str()
                .map(str::to_owned)
                .unwrap_or_else(|| "NextGenPSD2".to_owned())
        });
        let consent = auth::consent(ctx, &api).await?;
        let fetched = match fetch(ctx, &api, &consent).await {
            Ok(f) => f,
            // A kept consent the bank no longer honours: forget it and ask
            // for a new one (the person approves it if present; otherwise
            // USER_ACTION_NEEDED.SCA_REQUIRED says what to do).
            Err(CallError::Consent(refusal, said)) if !consent.fresh => {
                tracing::info!(?refusal, "the bank refused the kept consent; asking for a new one");
                auth::forget(ctx);
                let renewed = auth::new_consent(ctx, &api, Renewal::Refused(refusal, said)).await?;
                fetch(ctx, &api, &renewed)
                    .await
                    .map_err(CallError::into_error)?
            }
            Err(e) => return Err(e.into_error()),
        };
        save(ctx, fetched, &institution).await
    }
}
