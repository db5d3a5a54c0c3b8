//! Free Mobile pages: extraction only, no HTTP.
//!
//! Each function takes an [`HtmlPage`] and returns provider structs. A
//! missing element is an `UNKNOWN_ERROR.PAGE_CHANGED` error naming the
//! selector and the page, never an empty list.

use chrono::NaiveDate;
use gleaner_framework::filters::{Currency, parse_amount, parse_month_year_fr};
use gleaner_framework::scrape::{HtmlPage, text};
use gleaner_framework::{KonnectorError, Result};
use rust_decimal::Decimal;

/// What a response from the customer area is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageKind {
    /// The login form, with the flash message if one is shown.
    Login {
        /// The error shown above the form.
        flash: Option<String>,
    },
    /// The logged-in home page.
    Home,
    /// The maintenance page.
    Maintenance {
        /// What the page says.
        message: String,
    },
    /// New-device verification: a code was sent and the form asks for it.
    Verification(Verification),
    /// New-device verification is locked after too many wrong codes.
    VerificationLocked {
        /// What the page says.
        message: String,
    },
}

/// The new-device verification form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Where the code went, as the page shows it (`j***@example.org`).
    pub hint: Option<String>,
    /// The form's hidden `otp-token`, to post back with the code.
    pub token: String,
    /// The error shown above the form (after a wrong code).
    pub flash: Option<String>,
}

/// Tells which page this is. A page that is none of them means the site
/// changed.
pub fn classify(page: &HtmlPage) -> Result<PageKind> {
    if page.exists("div.maintenance")? {
        let message = page.text_of("div.maintenance h1").unwrap_or_default();
        return Ok(PageKind::Maintenance { message });
    }
    // Before the home page: the verification page has a cancel link to
    // `?logout` too.
    if page.exists("form.form-verification")? {
        return Ok(PageKind::Verification(parse_verification(page)?));
    }
    if page.exists("section.verification-box")? {
        let message = flash(page)?
            .unwrap_or_else(|| page.text_of("section.verification-box").unwrap_or_default());
        return Ok(PageKind::VerificationLocked { message });
    }
    if page.exists(r#"a[href*="?logout"]"#)? {
        return Ok(PageKind::Home);
    }
    if page.exists("form.form-login")? {
        return Ok(PageKind::Login {
            flash: flash(page)?,
        });
    }
    Err(KonnectorError::page_changed(format!(
        "{} is neither the login form (form.form-login), the verification form (form.form-verification), the home page (a logout link) nor the maintenance page",
        page.url()
    )))
}

/// The flash message of a page, if one is shown.
fn flash(page: &HtmlPage) -> Result<Option<String>> {
    Ok(if page.exists("div.flash")? {
        Some(page.text_of("div.flash")?)
    } else {
        None
    })
}

/// Reads the new-device verification form: where the code went, the
/// hidden token, and the error of a refused code.
pub fn parse_verification(page: &HtmlPage) -> Result<Verification> {
    let form = page.select_one("form.form-verification")?;
    let token = page.attr(page.within(form, r#"input[name="otp-token"]"#)?, "value")?;
    // The address is in bold in the hint; without it, the hint as a whole.
    let hint = if page.exists(".verification-box__hint strong")? {
        Some(page.text_of(".verification-box__hint strong")?)
    } else if page.exists(".verification-box__hint")? {
        Some(page.text_of(".verification-box__hint")?)
    } else {
        None
    };
    Ok(Verification {
        hint: hint.filter(|h| !h.is_empty()),
        token,
        flash: flash(page)?,
    })
}

/// One line of the account, from the line selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRef {
    /// The id to switch to it.
    pub switch_id: String,
    /// The phone number as shown (`06 12 34 56 78`).
    pub phone: String,
    /// The line holder's name.
    pub holder: String,
}

/// Whether an invoice is a line's own or the multi-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceKind {
    /// A line's monthly invoice.
    Line,
    /// The multi-line summary ("récapitulatif").
    Summary,
}

/// One row of the invoice list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The month it covers (first day).
    pub month: NaiveDate,
    /// The amount.
    pub amount: Decimal,
    /// The currency.
    pub currency: Currency,
    /// Line invoice or summary.
    pub kind: InvoiceKind,
    /// The invoice id (`id=` of the link).
    pub id: String,
    /// The line id (`l=` of the link).
    pub line_id: String,
    /// The `date=` of the link: the issue date for line invoices, the day
    /// the page was made for summaries (not to be trusted there).
    pub link_date: Option<NaiveDate>,
    /// The absolute PDF URL.
    pub pdf_url: String,
}

/// The logged-in home page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomePage {
    /// The customer id.
    pub account_id: String,
    /// The account holder.
    pub holder: String,
    /// The phone of the line shown.
    pub current_phone: String,
    /// Every line of the account (empty for a single-line account).
    pub lines: Vec<LineRef>,
    /// The invoices of the line shown.
    pub invoices: Vec<Invoice>,
}

/// Parses the home page.
pub fn parse_home(page: &HtmlPage) -> Result<HomePage> {
    let account_id = page.text_of("div.current-user__infos div.current-user__id span")?;
    let holder = page.text_of("div.current-user__infos .identite")?;
    let mut lines = Vec::new();
    for a in page.select_any("ul#multi-ligne-selector li.user a")? {
        let href = page.attr(a, "href")?;
        let switch_id = query_param(&href, "switch-user").ok_or_else(|| {
            KonnectorError::page_changed(format!(
                "a line link on {} has no switch-user id",
                page.url()
            ))
        })?;
        lines.push(LineRef {
            switch_id,
            phone: text(page.within(a, "span.msidn")?),
            holder: text(page.within(a, "span.name-bold")?),
        });
    }
    let table = page.select_one("div.table-facture")?;
    let current_phone = text(page.within(table, "p.table-sub-title")?);
    let mut invoices = Vec::new();
    for row in page.within_all(table, "div.invoice")? {
        let month_text = text(page.within(row, "div.date")?);
        let month = parse_month_year_fr(&month_text).map_err(|e| in_page(page, e))?;
        let amount = parse_amount(&text(page.within(row, "div.table-price")?))
            .map_err(|e| in_page(page, e))?;
        let link = page.within(row, r#"a[data-title="Télécharger ma facture"]"#)?;
        let href = page.attr(link, "href")?;
        let param = |name: &str| {
            query_param(&href, name).ok_or_else(|| {
                KonnectorError::page_changed(format!(
                    "an invoice link on {} has no `{name}` parameter",
                    page.url()
                ))
            })
        };
        let kind = match param("facture")?.as_str() {
            "pdf" => InvoiceKind::Line,
            "pdfrecap" => InvoiceKind::Summary,
            other => {
                return Err(KonnectorError::page_changed(format!(
                    "an invoice link on {} has an unknown kind `{other}`",
                    page.url()
                )));
            }
        };
        invoices.push(Invoice {
            month,
            amount: amount.value,
            currency: amount.currency.unwrap_or(Currency::EUR),
            kind,
            id: param("id")?,
            line_id: param("l")?,
            link_date: query_param(&href, "date")
                .and_then(|d| NaiveDate::parse_from_str(&d, "%Y%m%d").ok()),
            pdf_url: page.absolute_url(&href)?,
        });
    }
    if invoices.is_empty() && !page.exists("div.table-facture .table-empty")? {
        return Err(KonnectorError::page_changed(format!(
            "no element matches \"div.invoice\" on {} and no empty-list notice is shown",
            page.url()
        )));
    }
    Ok(HomePage {
        account_id,
        holder,
        current_phone,
        lines,
        invoices,
    })
}

fn in_page(page: &HtmlPage, e: KonnectorError) -> KonnectorError {
    let locator = e.locator;
    let mut wrapped = KonnectorError::page_changed(format!("{} on {}", e.message, page.url()));
    wrapped.locator = locator;
    wrapped
}

fn query_param(href: &str, name: &str) -> Option<String> {
    let query = href.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = "https://mobile.free.fr/account/";

    fn fixture(name: &str) -> HtmlPage {
        let path = format!(
            "{}/../fixtures/free-mobile/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        HtmlPage::parse(BASE, &std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn classifies_every_page() {
        assert_eq!(
            classify(&fixture("login.html")).unwrap(),
            PageKind::Login { flash: None }
        );
        match classify(&fixture("login_failed.html")).unwrap() {
            PageKind::Login { flash: Some(f) } => assert!(f.contains("incorrect"), "{f}"),
            other => panic!("{other:?}"),
        }
        match classify(&fixture("login_blocked.html")).unwrap() {
            PageKind::Login { flash: Some(f) } => {
                assert!(f.contains("temporairement bloquées"), "{f}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(&fixture("home_line1.html")).unwrap(),
            PageKind::Home
        );
        assert!(matches!(
            classify(&fixture("maintenance.html")).unwrap(),
            PageKind::Maintenance { .. }
        ));
        match classify(&fixture("verification.html")).unwrap() {
            PageKind::Verification(v) => {
                assert_eq!(v.hint.as_deref(), Some("j***@example.org"));
                assert_eq!(v.token, "{{token}}");
                assert_eq!(v.flash, None);
            }
            other => panic!("{other:?}"),
        }
        match classify(&fixture("verification_wrong.html")).unwrap() {
            PageKind::Verification(v) => {
                assert_eq!(v.hint.as_deref(), Some("j***@example.org"));
                let flash = v.flash.unwrap();
                assert!(flash.starts_with("Le code saisi est incorrect"), "{flash}");
            }
            other => panic!("{other:?}"),
        }
        match classify(&fixture("verification_locked.html")).unwrap() {
            PageKind::VerificationLocked { message } => {
                assert!(message.contains("Trop de codes erronés"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match classify(&fixture("login_code_expired.html")).unwrap() {
            PageKind::Login { flash: Some(f) } => assert!(f.contains("a expiré"), "{f}"),
            other => panic!("{other:?}"),
        }
        let err = classify(&fixture("not_found.html")).unwrap_err();
        assert_eq!(err.code, gleaner_framework::ErrorCode::PageChanged);
    }

    #[test]
    fn a_verification_form_without_its_token_is_a_changed_page() {
        let html = std::fs::read_to_string(format!(
            "{}/../fixtures/free-mobile/verification.html",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .replace(r#"name="otp-token""#, r#"name="csrf""#);
        let err = classify(&HtmlPage::parse(BASE, &html)).unwrap_err();
        assert_eq!(err.code, gleaner_framework::ErrorCode::PageChanged);
        assert!(err.message.contains("otp-token"), "{}", err.message);
    }

    #[test]
    fn parses_the_first_line_with_its_summaries() {
        let home = parse_home(&fixture("home_line1.html")).unwrap();
        assert_eq!(home.account_id, "12345678");
        assert_eq!(home.holder, "Camille Martin");
        assert_eq!(home.current_phone, "06 12 34 56 78");
        assert_eq!(home.lines.len(), 2);
        assert_eq!(home.lines[1].switch_id, "87654321");
        assert_eq!(home.lines[1].phone, "07 98 76 54 32");
        assert_eq!(home.invoices.len(), 14);
        let summaries = home
            .invoices
            .iter()
            .filter(|i| i.kind == InvoiceKind::Summary)
            .count();
        assert_eq!(summaries, 2);
        let dec = home
            .invoices
            .iter()
            .find(|i| {
                i.kind == InvoiceKind::Line
                    && i.month == NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
            })
            .unwrap();
        assert_eq!(dec.amount, Decimal::new(1999, 2));
        assert_eq!(dec.currency, Currency::EUR);
        assert_eq!(dec.id, "bf084f2f231923b7");
        assert_eq!(dec.link_date, NaiveDate::from_ymd_opt(2025, 12, 2));
        assert!(
            dec.pdf_url
                .starts_with("https://mobile.free.fr/account/conso-et-factures?facture=pdf&")
        );
    }

    #[test]
    fn parses_the_second_line() {
        let home = parse_home(&fixture("home_line2.html")).unwrap();
        assert_eq!(home.current_phone, "07 98 76 54 32");
        assert_eq!(home.invoices.len(), 6);
        assert!(
            home.invoices
                .iter()
                .all(|i| i.kind == InvoiceKind::Line && i.line_id == "87654321")
        );
    }

    #[test]
    fn changed_markup_names_the_missing_selector() {
        let err = parse_home(&fixture("home_changed.html")).unwrap_err();
        assert_eq!(err.code, gleaner_framework::ErrorCode::PageChanged);
        assert!(err.message.contains("div.table-facture"), "{}", err.message);
        assert!(
            err.message.contains("https://mobile.free.fr/account/"),
            "{}",
            err.message
        );
    }
}
