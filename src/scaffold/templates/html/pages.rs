//! {{name}} pages: extraction only, no HTTP.
//!
//! Each function takes an [`HtmlPage`] and returns provider structs. A
//! missing element is an `UNKNOWN_ERROR.PAGE_CHANGED` error naming the
//! selector and the page, never an empty list.

use chrono::NaiveDate;
use gleaner_framework::filters::{Currency, parse_amount, parse_date};
use gleaner_framework::scrape::{HtmlPage, text};
use gleaner_framework::{KonnectorError, Result};
use rust_decimal::Decimal;

/// What a page of the customer area is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageKind {
    /// The login form, with its error message if one is shown.
    Login {
        /// The message shown above the form.
        flash: Option<String>,
    },
    /// A page of the logged-in customer area.
    LoggedIn,
    /// The maintenance page.
    Maintenance {
        /// What the page says.
        message: String,
    },
}

/// Tells which page this is. A page that is none of them means the site
/// changed.
pub fn classify(page: &HtmlPage) -> Result<PageKind> {
    if page.exists("div.maintenance")? {
        let message = page.text_of("div.maintenance").unwrap_or_default();
        return Ok(PageKind::Maintenance { message });
    }
    if page.exists("a.logout")? {
        return Ok(PageKind::LoggedIn);
    }
    if page.exists("form.login")? {
        let flash = if page.exists("p.flash")? {
            Some(page.text_of("p.flash")?)
        } else {
            None
        };
        return Ok(PageKind::Login { flash });
    }
    Err(KonnectorError::page_changed(format!(
        "{} is neither the login form (form.login), a logged-in page (a.logout) nor the maintenance page (div.maintenance)",
        page.url()
    )))
}

/// One row of the bills table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The invoice number.
    pub id: String,
    /// The issue date.
    pub date: NaiveDate,
    /// The amount.
    pub amount: Decimal,
    /// The currency (euros when the page does not say).
    pub currency: Currency,
    /// The PDF's absolute URL.
    pub pdf_url: String,
}

/// Reads the bills table: one [`Invoice`] per `tr.invoice` row.
pub fn parse_bills(page: &HtmlPage) -> Result<Vec<Invoice>> {
    let table = page.select_one("table.invoices")?;
    let mut invoices = Vec::new();
    for row in page.within_all(table, "tr.invoice")? {
        let id = page.attr(row, "data-id")?;
        let date = parse_date(&text(page.within(row, "td.date")?))?;
        let amount = parse_amount(&text(page.within(row, "td.amount")?))?;
        let href = page.attr(page.within(row, "a.pdf")?, "href")?;
        invoices.push(Invoice {
            id,
            date,
            amount: amount.value,
            currency: amount.currency.unwrap_or(Currency::EUR),
            pdf_url: page.absolute_url(&href)?,
        });
    }
    Ok(invoices)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gleaner_framework::ErrorCode;

    const BASE: &str = "https://www.{{slug}}.example/bills";

    fn fixture(name: &str) -> HtmlPage {
        let path = format!("{}/../fixtures/{{slug}}/{name}", env!("CARGO_MANIFEST_DIR"));
        HtmlPage::parse(BASE, &std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn the_bills_page_lists_its_invoices() {
        let page = fixture("bills.html");
        assert_eq!(classify(&page).unwrap(), PageKind::LoggedIn);
        let invoices = parse_bills(&page).unwrap();
        assert_eq!(invoices.len(), 2);
        assert_eq!(invoices[0].id, "F2026-01");
        assert_eq!(invoices[0].amount, Decimal::new(1999, 2));
        assert!(invoices[0].pdf_url.starts_with("https://www.{{slug}}.example/bills/"));
    }

    #[test]
    fn the_login_form_and_its_message_are_recognised() {
        assert_eq!(
            classify(&fixture("login.html")).unwrap(),
            PageKind::Login { flash: None }
        );
        match classify(&fixture("login_failed.html")).unwrap() {
            PageKind::Login { flash: Some(f) } => assert!(f.contains("incorrect"), "{f}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_renamed_table_is_page_changed_naming_the_selector() {
        let html = std::fs::read_to_string(format!(
            "{}/../fixtures/{{slug}}/bills.html",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .replace("invoices", "renamed");
        let err = parse_bills(&HtmlPage::parse(BASE, &html)).unwrap_err();
        assert_eq!(err.code, ErrorCode::PageChanged);
        assert!(err.message.contains("table.invoices"), "{}", err.message);
    }
}
