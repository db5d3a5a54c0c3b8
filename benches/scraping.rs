//! Scraping benchmark: the SDK's page helpers against a bare `scraper` loop.
//!
//! Run with `cargo bench --bench scraping`. A plain program
//! (`harness = false`) that prints its figures.
//!
//! Both sides do the same extraction on the same page, the Free Mobile
//! home page fixture (`fixtures/free-mobile/home_line1.html`): the customer
//! id, the holder, every line of the line selector (link, number, name),
//! the invoice table's title, and for every invoice its month, amount and
//! PDF link, each text cleaned with the same `clean_text`.
//!
//! - **SDK**: [`HtmlPage`]'s helpers (`text_of`, `select_any`, `select_one`,
//!   `within`, `within_all`, `attr`), which check every expected element
//!   and build an error naming the selector and the page when one is
//!   missing.
//! - **bare**: `scraper` alone, with every selector parsed once before the
//!   loop and `unwrap_or_default` where the SDK would return an error: the
//!   fastest a hand-written loop gets.
//!
//! Each figure is the CPU time of this thread (`/proc/thread-self/schedstat`,
//! nanoseconds on a CPU, so other processes on the machine do not count),
//! the median of 7 rounds. Rounds alternate between the two sides. Two
//! pairs are measured: parse + extract (what a konnector does for each
//! page it fetches), and extraction alone on a page parsed once.
//!
//! `GLEANER_BENCH_SCALE` (a float, default 1.0) scales the iterations.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use gleaner_framework::filters::clean_text;
use gleaner_framework::scrape::{HtmlPage, text};
use scraper::{ElementRef, Html, Selector};

/// The URL the page is parsed as coming from.
const URL: &str = "https://mobile.free.fr/account/";
/// Pages per round at scale 1.
const PAGES: f64 = 2_000.0;
/// Rounds per side; the median is reported.
const ROUNDS: usize = 7;

/// What both sides extract.
#[derive(Debug, Default, PartialEq, Eq)]
struct Extracted {
    account_id: String,
    holder: String,
    lines: Vec<(String, String, String)>,
    current_phone: String,
    invoices: Vec<(String, String, String)>,
}

/// The SDK's way, as `free_mobile::pages::parse_home` reads the page.
fn with_sdk(page: &HtmlPage) -> gleaner_framework::Result<Extracted> {
    let mut out = Extracted {
        account_id: page.text_of("div.current-user__infos div.current-user__id span")?,
        holder: page.text_of("div.current-user__infos .identite")?,
        ..Extracted::default()
    };
    for a in page.select_any("ul#multi-ligne-selector li.user a")? {
        out.lines.push((
            page.attr(a, "href")?,
            text(page.within(a, "span.msidn")?),
            text(page.within(a, "span.name-bold")?),
        ));
    }
    let table = page.select_one("div.table-facture")?;
    out.current_phone = text(page.within(table, "p.table-sub-title")?);
    for row in page.within_all(table, "div.invoice")? {
        let link = page.within(row, r#"a[data-title="Télécharger ma facture"]"#)?;
        out.invoices.push((
            text(page.within(row, "div.date")?),
            text(page.within(row, "div.table-price")?),
            page.attr(link, "href")?,
        ));
    }
    Ok(out)
}

/// The selectors of the bare loop, parsed once.
struct Bare {
    id: Selector,
    holder: Selector,
    line: Selector,
    msidn: Selector,
    name: Selector,
    table: Selector,
    title: Selector,
    invoice: Selector,
    date: Selector,
    price: Selector,
    link: Selector,
}

impl Bare {
    fn new() -> Self {
        let s = |css: &str| Selector::parse(css).unwrap();
        Self {
            id: s("div.current-user__infos div.current-user__id span"),
            holder: s("div.current-user__infos .identite"),
            line: s("ul#multi-ligne-selector li.user a"),
            msidn: s("span.msidn"),
            name: s("span.name-bold"),
            table: s("div.table-facture"),
            title: s("p.table-sub-title"),
            invoice: s("div.invoice"),
            date: s("div.date"),
            price: s("div.table-price"),
            link: s(r#"a[data-title="Télécharger ma facture"]"#),
        }
    }

    fn first_text(el: ElementRef<'_>, sel: &Selector) -> String {
        el.select(sel).next().map(bare_text).unwrap_or_default()
    }

    fn extract(&self, doc: &Html) -> Extracted {
        let root = doc.root_element();
        let mut out = Extracted {
            account_id: Self::first_text(root, &self.id),
            holder: Self::first_text(root, &self.holder),
            ..Extracted::default()
        };
        for a in doc.select(&self.line) {
            out.lines.push((
                a.value().attr("href").unwrap_or_default().to_owned(),
                Self::first_text(a, &self.msidn),
                Self::first_text(a, &self.name),
            ));
        }
        if let Some(table) = doc.select(&self.table).next() {
            out.current_phone = Self::first_text(table, &self.title);
            for row in table.select(&self.invoice) {
                let href = row
                    .select(&self.link)
                    .next()
                    .and_then(|l| l.value().attr("href"))
                    .unwrap_or_default()
                    .to_owned();
                out.invoices.push((
                    Self::first_text(row, &self.date),
                    Self::first_text(row, &self.price),
                    href,
                ));
            }
        }
        out
    }
}

fn bare_text(el: ElementRef<'_>) -> String {
    clean_text(&el.text().collect::<String>())
}

/// Nanoseconds this thread has spent on a CPU.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The median CPU time per page of `rounds` rounds of `n` calls of `f`.
fn measure(n: usize, mut f: impl FnMut()) -> u64 {
    let start = thread_cpu_ns();
    for _ in 0..n {
        f();
    }
    (thread_cpu_ns() - start) / n as u64
}

fn main() {
    let scale: f64 = std::env::var("GLEANER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = ((PAGES * scale) as usize).max(10);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/free-mobile/home_line1.html"
    );
    let html = std::fs::read_to_string(path).unwrap();
    if thread_cpu_ns() == 0 {
        eprintln!("/proc/thread-self/schedstat is not readable: no CPU figures on this system");
        return;
    }

    // Both sides must extract the same thing, or the comparison is void.
    let bare = Bare::new();
    let sdk_out = with_sdk(&HtmlPage::parse(URL, &html)).unwrap();
    let bare_out = bare.extract(&Html::parse_document(&html));
    assert_eq!(sdk_out, bare_out, "the two sides disagree");
    println!(
        "[scraping] {} ({} KiB): {} lines, {} invoices; {n} pages per round, {ROUNDS} rounds, thread CPU time",
        path.rsplit('/').next().unwrap_or(path),
        html.len() / 1024,
        sdk_out.lines.len(),
        sdk_out.invoices.len(),
    );

    let (mut sdk_full, mut bare_full) = (Vec::new(), Vec::new());
    let (mut sdk_extract, mut bare_extract) = (Vec::new(), Vec::new());
    let page = HtmlPage::parse(URL, &html);
    let doc = Html::parse_document(&html);
    for _ in 0..ROUNDS {
        sdk_full.push(measure(n, || {
            let page = HtmlPage::parse(URL, black_box(&html));
            black_box(with_sdk(&page).unwrap());
        }));
        bare_full.push(measure(n, || {
            let doc = Html::parse_document(black_box(&html));
            black_box(bare.extract(&doc));
        }));
        sdk_extract.push(measure(n * 4, || {
            black_box(with_sdk(black_box(&page)).unwrap());
        }));
        bare_extract.push(measure(n * 4, || {
            black_box(bare.extract(black_box(&doc)));
        }));
    }
    let rows = [
        ("parse + extract", median(sdk_full), median(bare_full)),
        ("extract only", median(sdk_extract), median(bare_extract)),
    ];
    println!();
    println!("| per page | SDK helpers | bare scraper | ratio |");
    println!("|---|---:|---:|---:|");
    for (what, sdk, bare) in rows {
        println!(
            "| {what} | {:.1} µs | {:.1} µs | {:.2}× |",
            sdk as f64 / 1000.0,
            bare as f64 / 1000.0,
            sdk as f64 / bare as f64
        );
    }
}
