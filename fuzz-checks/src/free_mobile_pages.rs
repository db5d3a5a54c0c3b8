//! Free Mobile's page parsers (`konnectors::telco::free_mobile::pages`).
//!
//! The input is the HTML body of a customer-area response. Properties: no
//! panic; a verification page reads the same through `classify` and
//! `parse_verification`; a home page that parses has invoices for the first
//! day of a month, with absolute PDF URLs, and texts that are clean (as
//! `clean_text` leaves them).

use chrono::Datelike;
use gleaner_framework::filters::clean_text;
use gleaner_framework::scrape::HtmlPage;
use gleaner_konnectors::telco::free_mobile::pages::{
    PageKind, classify, parse_home, parse_verification,
};

const URL: &str = "https://mobile.free.fr/account/v2";

/// Checks one input of the `free_mobile_pages` fuzz target: returns when the module's
/// properties hold (or the input is not one the target reads), panics
/// naming the broken one otherwise.
pub fn check_free_mobile_pages(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let page = HtmlPage::parse(URL, &body);
    let kind = classify(&page);
    if let Ok(PageKind::Verification(v)) = &kind {
        assert_eq!(parse_verification(&page).ok().as_ref(), Some(v));
    }
    let _ = parse_verification(&page);
    if let Ok(home) = parse_home(&page) {
        for invoice in &home.invoices {
            assert_eq!(invoice.month.day(), 1, "{invoice:?}");
            url::Url::parse(&invoice.pdf_url)
                .unwrap_or_else(|e| panic!("{invoice:?}: the PDF URL is not absolute: {e}"));
        }
        // Texts read off the page are clean: one space between words, none
        // at the ends.
        let texts = [&home.account_id, &home.holder, &home.current_phone];
        let lines = home.lines.iter().flat_map(|l| [&l.phone, &l.holder]);
        for t in texts.into_iter().chain(lines) {
            assert_eq!(&clean_text(t), t);
        }
    }
}
