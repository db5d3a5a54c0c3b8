//! HTML helpers that fail loudly.
//!
//! A konnector reads a provider's pages with CSS selectors. When the
//! provider changes its site, a selector stops matching; the worst outcome
//! is then a run that "succeeds" with no bills. So, as with Woob's pages
//! where a missing element raises, every helper here that expects an element
//! returns an [`ErrorCode::PageChanged`] error naming the selector and the
//! page URL instead of empty data. Only [`HtmlPage::select_any`] and
//! [`HtmlPage::within_all`] may return nothing, for lists that can
//! legitimately be empty.
//!
//! The page URL in messages has no query string, fragment or user info
//! (they can hold tokens); the full URL is kept privately, only to resolve
//! relative links ([`HtmlPage::absolute_url`]).
//!
//! [`scraper::Html`] is not `Send`, so these are plain synchronous helpers,
//! meant for pure page-parsing functions that take the body of a response
//! and return typed data:
//!
//! ```
//! use gleaner_framework::scrape::{HtmlPage, text};
//!
//! let page = HtmlPage::parse(
//!     "https://example.com/bills?session=secret",
//!     "<table id=bills><tr><td>Janvier</td><td><a href='/b/1.pdf'>PDF</a></td></tr></table>",
//! );
//! let table = page.select_one("#bills")?;
//! for row in page.within_all(table, "tr")? {
//!     let link = page.within(row, "a")?;
//!     let href = page.attr(link, "href")?;
//!     assert_eq!(page.absolute_url(&href)?, "https://example.com/b/1.pdf");
//!     assert_eq!(text(page.within(row, "td")?), "Janvier");
//! }
//! # Ok::<(), gleaner_framework::error::KonnectorError>(())
//! ```

use std::fmt;

use scraper::{ElementRef, Html, Selector};
use url::Url;

use crate::error::{ErrorCode, KonnectorError, Locator, Result};
use crate::filters::clean_text;

/// A parsed HTML page and the URL it came from.
pub struct HtmlPage {
    /// The URL without query string, fragment or user info, for messages.
    url: String,
    /// The URL as given, to resolve relative links; `None` if it does not
    /// parse as an absolute URL.
    base: Option<Url>,
    doc: Html,
}

impl fmt::Debug for HtmlPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The full URL (with its query string) is left out on purpose.
        f.debug_struct("HtmlPage")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Drops the query string, fragment and user info of a URL.
fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            // These fail only for URLs that cannot have user info.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => raw.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// Selectors this thread has parsed, by their text. A konnector asks for
/// the same few selectors on every row of every page; parsing them once
/// keeps the helpers near a hand-written loop with selectors parsed ahead
/// (`cargo bench --bench scraping`). Bounded: past this many distinct
/// selectors the cache is cleared and starts again.
const SELECTOR_CACHE_MAX: usize = 512;

thread_local! {
    static SELECTORS: std::cell::RefCell<std::collections::HashMap<String, Selector>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn parse_selector(selector: &str) -> Result<Selector> {
    let cached = SELECTORS.with(|c| c.borrow().get(selector).cloned());
    if let Some(sel) = cached {
        return Ok(sel);
    }
    let sel = Selector::parse(selector).map_err(|e| {
        KonnectorError::new(
            ErrorCode::UnknownError,
            format!("invalid CSS selector \"{selector}\": {e}"),
        )
    })?;
    SELECTORS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= SELECTOR_CACHE_MAX {
            c.clear();
        }
        c.insert(selector.to_owned(), sel.clone());
    });
    Ok(sel)
}

impl HtmlPage {
    /// Parses `body` as a whole HTML document fetched from `url`.
    ///
    /// Parsing never fails: like a browser, the parser repairs broken HTML.
    pub fn parse(url: impl Into<String>, body: &str) -> Self {
        let raw = url.into();
        Self {
            url: redact_url(&raw),
            base: Url::parse(&raw).ok(),
            doc: Html::parse_document(body),
        }
    }

    /// The page URL as shown in messages: without query string, fragment or
    /// user info.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The parsed document, for what these helpers do not cover.
    pub fn html(&self) -> &Html {
        &self.doc
    }

    fn locator(&self, selector: &str) -> Locator {
        Locator::Selector {
            selector: selector.to_owned(),
            page: self.url.clone(),
        }
    }

    fn no_match(&self, selector: &str) -> KonnectorError {
        KonnectorError::page_changed(format!("no element matches \"{selector}\" on {}", self.url))
            .with_locator(self.locator(selector))
    }

    fn no_match_within(&self, el: ElementRef<'_>, selector: &str) -> KonnectorError {
        KonnectorError::page_changed(format!(
            "no element matches \"{selector}\" inside <{}> on {}",
            el.value().name(),
            self.url
        ))
        .with_locator(self.locator(selector))
    }

    /// The first element matching `selector`.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::PageChanged`] naming the selector and the page when
    /// nothing matches; [`ErrorCode::UnknownError`] when the selector is not
    /// valid CSS.
    pub fn select_one(&self, selector: &str) -> Result<ElementRef<'_>> {
        let sel = parse_selector(selector)?;
        self.doc
            .select(&sel)
            .next()
            .ok_or_else(|| self.no_match(selector))
    }

    /// Every element matching `selector`, in document order; at least one.
    ///
    /// # Errors
    ///
    /// As [`HtmlPage::select_one`].
    pub fn select_all(&self, selector: &str) -> Result<Vec<ElementRef<'_>>> {
        let all = self.select_any(selector)?;
        if all.is_empty() {
            return Err(self.no_match(selector));
        }
        Ok(all)
    }

    /// Every element matching `selector`, in document order; possibly none.
    ///
    /// Use it only for lists that may legitimately be empty (no bills this
    /// year), and first confirm that their container is there with
    /// [`HtmlPage::select_one`], so a changed page is still caught.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::UnknownError`] when the selector is not valid CSS.
    pub fn select_any(&self, selector: &str) -> Result<Vec<ElementRef<'_>>> {
        let sel = parse_selector(selector)?;
        Ok(self.doc.select(&sel).collect())
    }

    /// Whether any element matches `selector`.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::UnknownError`] when the selector is not valid CSS.
    pub fn exists(&self, selector: &str) -> Result<bool> {
        let sel = parse_selector(selector)?;
        Ok(self.doc.select(&sel).next().is_some())
    }

    /// The clean text (see [`clean_text`]) of the first element matching
    /// `selector`.
    ///
    /// # Errors
    ///
    /// As [`HtmlPage::select_one`].
    pub fn text_of(&self, selector: &str) -> Result<String> {
        self.select_one(selector).map(text)
    }

    /// The first descendant of `el` matching `selector`.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::PageChanged`] naming the selector, the tag of `el` and
    /// the page when nothing matches; [`ErrorCode::UnknownError`] when the
    /// selector is not valid CSS.
    pub fn within<'a>(&self, el: ElementRef<'a>, selector: &str) -> Result<ElementRef<'a>> {
        let sel = parse_selector(selector)?;
        el.select(&sel)
            .next()
            .ok_or_else(|| self.no_match_within(el, selector))
    }

    /// Every descendant of `el` matching `selector`, in document order;
    /// possibly none.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::UnknownError`] when the selector is not valid CSS.
    pub fn within_all<'a>(
        &self,
        el: ElementRef<'a>,
        selector: &str,
    ) -> Result<Vec<ElementRef<'a>>> {
        let sel = parse_selector(selector)?;
        Ok(el.select(&sel).collect())
    }

    /// The value of attribute `name` on `el`, as written.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::PageChanged`] naming the attribute, the tag of `el` and
    /// the page when `el` has no such attribute.
    pub fn attr(&self, el: ElementRef<'_>, name: &str) -> Result<String> {
        el.value().attr(name).map(str::to_owned).ok_or_else(|| {
            KonnectorError::page_changed(format!(
                "element <{}> has no \"{name}\" attribute on {}",
                el.value().name(),
                self.url
            ))
        })
    }

    /// Resolves a link found on the page (`href`, `src`, `action`) against
    /// the page URL, as a browser would.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::PageChanged`] when the link cannot be resolved (the page
    /// URL is not absolute and neither is `href`, or `href` is malformed).
    pub fn absolute_url(&self, href: &str) -> Result<String> {
        let href = href.trim();
        let joined = match &self.base {
            Some(base) => base.join(href),
            None => Url::parse(href),
        };
        joined.map(String::from).map_err(|e| {
            KonnectorError::page_changed(format!(
                "cannot resolve the link \"{}\" against {}: {e}",
                redact_url(href),
                self.url
            ))
        })
    }
}

/// The clean text (see [`clean_text`]) of `el` and all its descendants.
///
/// Text nodes are joined as they are, so `<b>12</b>,50` reads `12,50`.
pub fn text(el: ElementRef<'_>) -> String {
    clean_text(&el.text().collect::<String>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const URL: &str = "https://mobile.free.fr/account/?token=s3cret#bills";

    const BODY: &str = r#"<!doctype html>
        <html><body>
          <div class="table-facture">
            <div class="invoice" data-id="42">
              <span class="date">2 janvier 2025</span>
              <span class="amount"> 19,99&nbsp;€ </span>
              <a href="/account/facture?id=42">PDF</a>
            </div>
            <div class="invoice" data-id="43">
              <span class="date">2 février 2025</span>
              <span class="amount">
                <b>20</b>,49 €
              </span>
              <a>no link</a>
            </div>
          </div>
          <ul id="empty"></ul>
        </body></html>"#;

    fn page() -> HtmlPage {
        HtmlPage::parse(URL, BODY)
    }

    #[test]
    fn url_is_redacted() {
        let p = page();
        assert_eq!(p.url(), "https://mobile.free.fr/account/");
        assert!(!format!("{p:?}").contains("s3cret"));
        let p = HtmlPage::parse("https://user:pw@example.com/a?b=c", "");
        assert_eq!(p.url(), "https://example.com/a");
        let p = HtmlPage::parse("not a url?token=x", "");
        assert_eq!(p.url(), "not a url");
    }

    #[test]
    fn select_one_found() {
        let p = page();
        let el = p.select_one("div.invoice").unwrap();
        assert_eq!(el.value().attr("data-id"), Some("42"));
        assert_eq!(p.text_of(".amount").unwrap(), "19,99 €");
        assert!(p.html().root_element().value().name() == "html");
    }

    #[test]
    fn select_one_missing_names_selector_and_url() {
        let p = page();
        let err = p.select_one("div.table-bills").unwrap_err();
        assert_eq!(err.code, ErrorCode::PageChanged);
        assert_eq!(
            err.message,
            "no element matches \"div.table-bills\" on https://mobile.free.fr/account/"
        );
        assert!(!err.message.contains("s3cret"));
        assert!(!err.message.contains("token"));
        let err = p.text_of("#nope").unwrap_err();
        assert!(err.message.contains("#nope"));
        assert!(err.message.contains("https://mobile.free.fr/account/"));
    }

    #[test]
    fn select_all_and_any() {
        let p = page();
        assert_eq!(p.select_all("div.invoice").unwrap().len(), 2);
        let err = p.select_all("tr.facture").unwrap_err();
        assert_eq!(err.code, ErrorCode::PageChanged);
        assert!(err.message.contains("\"tr.facture\""));
        assert!(err.message.contains("https://mobile.free.fr/account/"));
        assert!(p.select_any("#empty li").unwrap().is_empty());
        assert_eq!(p.select_any("span.date").unwrap().len(), 2);
        assert!(p.exists("#empty").unwrap());
        assert!(!p.exists("#missing").unwrap());
    }

    #[test]
    fn invalid_selector_is_an_error_not_a_panic() {
        let p = page();
        for bad in ["div[", "::::", "", "a >"] {
            let err = p.select_one(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::UnknownError, "{bad:?}");
            assert!(
                err.message.contains(&format!("\"{bad}\"")),
                "{}",
                err.message
            );
            assert!(p.select_all(bad).is_err());
            assert!(p.select_any(bad).is_err());
            assert!(p.exists(bad).is_err());
        }
        let root = p.select_one("body").unwrap();
        assert_eq!(
            p.within(root, "div[").unwrap_err().code,
            ErrorCode::UnknownError
        );
        assert!(p.within_all(root, "div[").is_err());
    }

    #[test]
    fn within_scopes_to_the_element() {
        let p = page();
        let invoices = p.select_all("div.invoice").unwrap();
        let second = invoices[1];
        assert_eq!(text(p.within(second, ".date").unwrap()), "2 février 2025");
        assert_eq!(text(p.within(second, ".amount").unwrap()), "20,49 €");
        assert_eq!(p.within_all(second, "span").unwrap().len(), 2);
        assert!(p.within_all(second, "table").unwrap().is_empty());

        let err = p.within(second, "img").unwrap_err();
        assert_eq!(err.code, ErrorCode::PageChanged);
        assert_eq!(
            err.message,
            "no element matches \"img\" inside <div> on https://mobile.free.fr/account/"
        );
    }

    #[test]
    fn attributes() {
        let p = page();
        let invoices = p.select_all("div.invoice").unwrap();
        let link = p.within(invoices[0], "a").unwrap();
        assert_eq!(p.attr(link, "href").unwrap(), "/account/facture?id=42");
        assert_eq!(p.attr(invoices[0], "data-id").unwrap(), "42");

        let bare = p.within(invoices[1], "a").unwrap();
        let err = p.attr(bare, "href").unwrap_err();
        assert_eq!(err.code, ErrorCode::PageChanged);
        assert!(err.message.contains("\"href\""));
        assert!(err.message.contains("<a>"));
        assert!(err.message.contains("https://mobile.free.fr/account/"));
        assert!(!err.message.contains("s3cret"));
    }

    #[test]
    fn absolute_urls() {
        let p = page();
        assert_eq!(
            p.absolute_url("/account/facture?id=42").unwrap(),
            "https://mobile.free.fr/account/facture?id=42"
        );
        assert_eq!(
            p.absolute_url("facture.pdf").unwrap(),
            "https://mobile.free.fr/account/facture.pdf"
        );
        assert_eq!(
            p.absolute_url("?page=2").unwrap(),
            "https://mobile.free.fr/account/?page=2"
        );
        assert_eq!(
            p.absolute_url("https://cdn.free.fr/x.pdf").unwrap(),
            "https://cdn.free.fr/x.pdf"
        );
        assert_eq!(
            p.absolute_url("//cdn.free.fr/y.pdf").unwrap(),
            "https://cdn.free.fr/y.pdf"
        );

        let relative_page = HtmlPage::parse("/local", "");
        assert_eq!(
            relative_page.absolute_url("https://a.example/b").unwrap(),
            "https://a.example/b"
        );
        let err = relative_page.absolute_url("b.pdf?t=secret").unwrap_err();
        assert_eq!(err.code, ErrorCode::PageChanged);
        assert!(err.message.contains("b.pdf"));
        assert!(!err.message.contains("secret"));
    }
}
