//! The {{name}} API: paths, answers and paging, in one place.
//!
//! Answers are decoded into typed structs with [`Response::json`]: a field
//! renamed or retyped by the provider is `UNKNOWN_ERROR.SCHEMA_CHANGED`
//! naming the JSON path (`items[0].amount`) and the URL.
//!
//! [`Response::json`]: gleaner_framework::http::Response::json

use chrono::NaiveDate;
use gleaner_framework::http::display_url;
use gleaner_framework::{KonnectorError, Result, RunContext, Secret};
use rust_decimal::Decimal;
use serde::Deserialize;

/// The token endpoint (POST, JSON `{login, password}`).
pub const TOKEN: &str = "/api/token";

/// The bills, paged: `?page=N&size=M`.
pub const BILLS: &str = "/api/bills";

/// Bills asked for per page.
pub const PAGE_SIZE: usize = 10;

/// Pages read at most (a provider that always says "next" must not loop).
pub const MAX_PAGES: usize = 100;

/// One page of `GET /api/bills`.
#[derive(Debug, Clone, Deserialize)]
pub struct BillsPage {
    /// The page's bills.
    pub items: Vec<ApiBill>,
    /// The next page's path and query; `null` on the last page.
    pub next: Option<String>,
}

/// A bill as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiBill {
    /// The invoice number.
    pub id: String,
    /// The issue date, `YYYY-MM-DD`.
    pub date: NaiveDate,
    /// The amount, as a JSON number.
    pub amount: Decimal,
    /// The ISO 4217 currency code.
    pub currency: String,
    /// The PDF's path (a pre-signed link: no token needed).
    pub pdf_url: String,
}

/// Every bill, page after page.
pub async fn bills(ctx: &RunContext, token: &Secret) -> Result<Vec<ApiBill>> {
    let mut url = ctx.url(&format!("{BILLS}?page=1&size={PAGE_SIZE}"))?;
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let resp = ctx.http().get(&url).bearer(token).send().await?;
        if !resp.status.is_success() {
            return Err(KonnectorError::vendor_down(format!(
                "{} answered {}",
                display_url(&resp.url),
                resp.status
            )));
        }
        let page: BillsPage = resp.json()?;
        out.extend(page.items);
        match page.next {
            Some(next) => url = ctx.url(&next)?,
            None => return Ok(out),
        }
    }
    Err(KonnectorError::page_changed(format!(
        "{BILLS} still had a next page after {MAX_PAGES} pages"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_page_decodes() {
        let page: BillsPage = serde_json::from_str(
            r#"{"items":[{"id":"F2026-01","date":"2026-01-15","amount":19.99,"currency":"EUR","pdf_url":"/files/F2026-01.pdf"}],"next":null}"#,
        )
        .unwrap();
        assert_eq!(page.items[0].amount, Decimal::new(1999, 2));
        assert_eq!(page.next, None);
    }
}
