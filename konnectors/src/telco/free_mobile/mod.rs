//! Free Mobile (telco): the customer area's invoices, as bills and PDFs.
//!
//! Read in this order: `manifest.toml` (identity, fields, hosts), [`auth`]
//! (the login form), [`routes`] (the site map), [`pages`] (extraction,
//! no HTTP), [`map`] (pure mapping to doctypes), `sandbox/` (the local
//! stand-in for the site, for tests and `gleaner demo`).
//!
//! Facts about the site (URLs, form fields, markup) come from public
//! sources: Woob's `freemobile` module and Cozy's Free Mobile konnector.

pub mod auth;
pub mod map;
pub mod pages;
pub mod routes;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::sync::Arc;

use gleaner_framework::{Konnector, Manifest, Result, RunContext, async_trait};

use pages::HomePage;

/// The konnector, for the registry (found by `konnectors/build.rs`).
pub fn konnector() -> Result<Arc<dyn Konnector>> {
    Ok(Arc::new(FreeMobile::new()?))
}

/// The manifest's text.
pub const MANIFEST: &str = include_str!("manifest.toml");

/// The Free Mobile konnector.
pub struct FreeMobile {
    manifest: Manifest,
}

impl FreeMobile {
    /// Loads and validates the manifest.
    pub fn new() -> Result<Self> {
        Ok(Self {
            manifest: Manifest::from_toml("telco/free_mobile/manifest.toml", MANIFEST)?,
        })
    }
}

#[async_trait]
impl Konnector for FreeMobile {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let first = auth::open_session(ctx).await?;
        // The first page shows the current line; the others need a switch.
        let mut homes: Vec<HomePage> = Vec::new();
        let others: Vec<_> = first
            .lines
            .iter()
            .filter(|l| l.phone != first.current_phone)
            .cloned()
            .collect();
        homes.push(first);
        for line in &others {
            let url = ctx.url(&routes::switch_user(&line.switch_id))?;
            let home = auth::fetch_home(ctx, &url).await?;
            if home.current_phone != line.phone {
                ctx.warn(format!(
                    "switching to line {} showed line {}; its invoices were skipped",
                    line.phone, home.current_phone
                ));
                continue;
            }
            homes.push(home);
        }
        let total: usize = homes.iter().map(|h| h.invoices.len()).sum();
        let mut done = 0u64;
        for home in &homes {
            for invoice in &home.invoices {
                let (bill, file) = map::bill_for(invoice, &home.current_phone, &home.holder);
                ctx.progress(done, Some(total as u64), format!("invoice {}", file.name));
                ctx.save_bill(bill, Some(file)).await?;
                done += 1;
            }
        }
        ctx.progress(done, Some(total as u64), "done");
        ctx.set_state(serde_json::json!({
            "lines": homes.iter().map(|h| h.current_phone.clone()).collect::<Vec<_>>(),
            "invoices_seen": total,
        }));
        // No logout: the session is kept (sealed) for the next run, which
        // then needs no login request while it lives.
        Ok(())
    }
}
