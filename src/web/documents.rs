//! The documents: per doctype, with totals and pictures (money spent per
//! month, energy per day), and the files with their download.
//!
//! The store lists documents in id order, a page at a time, and has no sums
//! or date order: the pages read every document of the doctype (of the
//! account, with `?account=`) and sum, group and sort here. That is fine
//! for a household's few thousand documents; `docs/performance.md` has the
//! figures and the store queries that would replace it.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use gleaner_framework::store::StoredDoc;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Session;
use super::charts::{self, MonthBar, Point};
use super::render::{self, Layout, Nav, WebError};
use super::state::WebState;

/// The bills doctype.
const BILLS: &str = "io.cozy.bills";
/// The files doctype.
const FILES: &str = "io.cozy.files";
/// The energy doctype.
const ENERGY: &str = "io.cozy.timeseries.energy";
/// Documents read from the store per call.
const STORE_PAGE: u32 = 1000;
/// Rows per page of a table.
const PER_PAGE: usize = 50;
/// The most recent months drawn on the bills chart (the table has all).
const CHART_MONTHS: usize = 36;

/// The pages that read a whole doctype, running at once: as many as the
/// machine has cores. Beyond that they only share the CPU and the store's
/// connections, all finish late together and each holds its partial sums;
/// queued (first come, first served), the first ones are answered early.
fn scans() -> &'static tokio::sync::Semaphore {
    static SCANS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SCANS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// `/documents`, `/documents/{doctype}`, `/files/{id}`.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/documents", get(overview))
        .route("/documents/{doctype}", get(doctype_page))
        .route("/files/{id}", get(file))
}

/// The query of every documents page.
#[derive(Debug, Default, Deserialize)]
struct DocsQuery {
    /// An account's id (or label): only its documents.
    account: Option<String>,
    /// The table's page, from 1 (anything else is page 1).
    page: Option<String>,
}

/// An account, as the filter shows it.
struct AccountChoice {
    id: String,
    label: String,
    konnector: String,
    selected: bool,
}

/// The accounts of the filter, and the chosen one (404 for an unknown one;
/// an empty `?account=` is no filter).
async fn accounts_filter(
    state: &WebState,
    wanted: Option<&str>,
) -> Result<(Vec<AccountChoice>, Option<AccountChoice>), WebError> {
    let accounts = state.app.store.list_accounts().await?;
    let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
    let chosen = match wanted {
        None => None,
        Some(w) => Some(
            accounts
                .iter()
                .find(|a| a.id == w)
                .or_else(|| accounts.iter().find(|a| a.label == w))
                .ok_or_else(|| WebError::NotFound("there is no such account".into()))?,
        ),
    };
    let to_choice = |a: &gleaner_framework::store::Account| AccountChoice {
        id: a.id.clone(),
        label: a.label.clone(),
        konnector: a.konnector.clone(),
        selected: chosen.is_some_and(|c| c.id == a.id),
    };
    let chosen_choice = chosen.map(to_choice);
    let choices = accounts.iter().map(to_choice).collect();
    Ok((choices, chosen_choice))
}

/// Calls `each` with every document of `doctype` (of `account`), a store
/// page at a time.
async fn for_each_doc(
    state: &WebState,
    doctype: &str,
    account: Option<&str>,
    mut each: impl FnMut(StoredDoc),
) -> Result<(), WebError> {
    let mut after: Option<String> = None;
    loop {
        let page = state
            .app
            .store
            .list(doctype, account, after.as_deref(), STORE_PAGE)
            .await?;
        let full = page.len() == STORE_PAGE as usize;
        after = page.last().map(|d| d.id.clone());
        page.into_iter().for_each(&mut each);
        if !full || after.is_none() {
            return Ok(());
        }
    }
}

/// Calls `each` with the id and the picked `fields` (as a JSON object) of
/// every document of `doctype` (of `account`): the store picks them out
/// with SQLite's JSON operators, so a page that sums 10,000 bills never
/// decodes 10,000 documents.
async fn for_each_picked(
    state: &WebState,
    doctype: &str,
    account: Option<&str>,
    fields: &[&str],
    mut each: impl FnMut(String, &Value),
) -> Result<(), WebError> {
    for picked in state.app.store.project(doctype, account, fields).await? {
        let object: serde_json::Map<String, Value> = fields
            .iter()
            .map(|f| (*f).to_owned())
            .zip(picked.values)
            .collect();
        each(picked.id, &Value::Object(object));
    }
    Ok(())
}

/// A doctype in words.
fn doctype_words(doctype: &str) -> &str {
    match doctype {
        BILLS => "Bills",
        FILES => "Files",
        ENERGY => "Energy consumption",
        "io.cozy.bank.operations" => "Bank operations",
        "io.cozy.bank.accounts" => "Bank accounts",
        "io.cozy.bank.balancehistories" => "Bank balance histories",
        other => other,
    }
}

/// Whether `doctype` could be one (letters, digits, dots, dashes): anything
/// else is no page.
fn plausible_doctype(doctype: &str) -> bool {
    !doctype.is_empty()
        && doctype.len() <= 100
        && doctype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// `?account=ID` (URL-encoded) or nothing.
fn account_query(account: Option<&AccountChoice>) -> String {
    account
        .map(|a| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("account", &a.id)
                .finish()
        })
        .unwrap_or_default()
}

/// A link to a documents page, with the account filter kept.
fn docs_href(doctype: &str, account: Option<&AccountChoice>, page: Option<usize>) -> String {
    let mut query = account_query(account);
    if let Some(page) = page {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!("page={page}"));
    }
    if query.is_empty() {
        format!("/documents/{doctype}")
    } else {
        format!("/documents/{doctype}?{query}")
    }
}

/// A string field of a document (numbers and booleans as text).
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A number field of a document (numbers, or numbers written as text).
fn amount(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64().or_else(|| n.to_string().parse().ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// The day of an RFC 3339 date (`2025-03-14`), or the text as it is.
fn day(date: &str) -> String {
    date.get(..10).unwrap_or(date).to_owned()
}

/// An amount with two decimals and thousands separators (`1,234.50`).
fn money(value: f64) -> String {
    let cents = (value.abs() * 100.0).round();
    let whole = format!("{:.0}", (cents / 100.0).trunc());
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if value < 0.0 && cents > 0.0 {
        "−"
    } else {
        ""
    };
    format!("{sign}{grouped}.{:02}", (cents % 100.0) as u64)
}

/// A size in words (`12.3 KB`).
fn size_words(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} byte{}", if bytes == 1 { "" } else { "s" })
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The table's page asked for, from 1, kept within `1..=pages`.
fn page_number(asked: Option<&str>, rows: usize) -> (usize, usize) {
    let pages = rows.div_ceil(PER_PAGE).max(1);
    let page = asked
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    (page, pages)
}

/// The links between a table's pages.
struct Pager {
    page: usize,
    pages: usize,
    rows: usize,
    first_row: usize,
    last_row: usize,
    prev: Option<String>,
    next: Option<String>,
}

impl Pager {
    fn new(
        doctype: &str,
        account: Option<&AccountChoice>,
        asked: Option<&str>,
        rows: usize,
    ) -> Self {
        let (page, pages) = page_number(asked, rows);
        let first_row = (page - 1) * PER_PAGE;
        Self {
            page,
            pages,
            rows,
            first_row: if rows == 0 { 0 } else { first_row + 1 },
            last_row: (first_row + PER_PAGE).min(rows),
            prev: (page > 1).then(|| docs_href(doctype, account, Some(page - 1))),
            next: (page < pages).then(|| docs_href(doctype, account, Some(page + 1))),
        }
    }
}

// ---------------------------------------------------------------- overview

/// One doctype on the overview.
struct DoctypeRow {
    words: String,
    doctype: String,
    count: u64,
    totals: Vec<String>,
    href: String,
}

#[derive(Template)]
#[template(path = "documents.html")]
struct Overview {
    layout: Layout,
    accounts: Vec<AccountChoice>,
    account: Option<AccountChoice>,
    rows: Vec<DoctypeRow>,
}

/// Sums of bills per currency: (paid, refunded).
type BillSums = BTreeMap<String, (f64, f64)>;

async fn overview(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(query): Query<DocsQuery>,
) -> Result<Response, WebError> {
    let (accounts, account) = accounts_filter(&state, query.account.as_deref()).await?;
    let account_id = account.as_ref().map(|a| a.id.as_str());
    // The semaphore is never closed.
    let _scan = scans().acquire().await.ok();
    let counts = state.app.store.count_by_doctype().await?;
    let mut rows = Vec::new();
    for (doctype, all) in counts {
        let mut count = 0u64;
        let mut totals = Vec::new();
        match doctype.as_str() {
            BILLS => {
                let mut sums = BillSums::new();
                let fields = ["currency", "amount", "isRefund"];
                for_each_picked(&state, BILLS, account_id, &fields, |_, v| {
                    count += 1;
                    let sum = sums.entry(text(v, "currency")).or_default();
                    let a = amount(v, "amount").unwrap_or(0.0);
                    if v.get("isRefund") == Some(&Value::Bool(true)) {
                        sum.1 += a;
                    } else {
                        sum.0 += a;
                    }
                })
                .await?;
                for (currency, (paid, refunded)) in sums {
                    totals.push(format!("{} {currency} spent", money(paid)));
                    if refunded > 0.0 {
                        totals.push(format!("{} {currency} refunded", money(refunded)));
                    }
                }
            }
            FILES => {
                let mut bytes = 0u64;
                for_each_picked(&state, FILES, account_id, &["size"], |_, v| {
                    count += 1;
                    bytes += v.get("size").and_then(Value::as_u64).unwrap_or(0);
                })
                .await?;
                totals.push(format!("{count} file(s), {}", size_words(bytes)));
            }
            ENERGY => {
                // (source, unit) -> sum
                let mut sums: BTreeMap<(String, String), f64> = BTreeMap::new();
                for_each_doc(&state, ENERGY, account_id, |d| {
                    count += 1;
                    let key = (text(&d.data, "source"), text(&d.data, "unit"));
                    let sum: f64 = d
                        .data
                        .get("series")
                        .and_then(Value::as_array)
                        .map(|s| s.iter().filter_map(|p| amount(p, "value")).sum())
                        .unwrap_or(0.0);
                    *sums.entry(key).or_default() += sum;
                })
                .await?;
                for ((source, unit), sum) in sums {
                    let (value, unit) = readable_energy(sum, &unit);
                    totals.push(format!("{} {unit} from {source}", money(value)));
                }
            }
            _ => match account_id {
                None => count = all,
                // One account: count by paging (the store has no
                // per-account count).
                Some(_) => {
                    for_each_picked(&state, &doctype, account_id, &[], |_, _| count += 1).await?
                }
            },
        }
        if count == 0 && account_id.is_some() {
            continue;
        }
        rows.push(DoctypeRow {
            words: doctype_words(&doctype).to_owned(),
            href: docs_href(&doctype, account.as_ref(), None),
            doctype,
            count,
            totals,
        });
    }
    let title = match &account {
        Some(a) => format!("Documents of {}", a.label),
        None => "Your documents".to_owned(),
    };
    Ok(render::page(&Overview {
        layout: Layout::new(&state, &session, title, Nav::Documents),
        accounts,
        account,
        rows,
    }))
}

/// Energy in a unit people read: Wh above 10,000 as kWh.
fn readable_energy(value: f64, unit: &str) -> (f64, String) {
    if unit == "Wh" && value.abs() >= 10_000.0 {
        (value / 1000.0, "kWh".to_owned())
    } else {
        (value, unit.to_owned())
    }
}

// --------------------------------------------------------- doctype pages

async fn doctype_page(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    UrlPath(doctype): UrlPath<String>,
    Query(query): Query<DocsQuery>,
) -> Result<Response, WebError> {
    if !plausible_doctype(&doctype) {
        return Err(WebError::NotFound(
            "there is no such kind of document".into(),
        ));
    }
    let (accounts, account) = accounts_filter(&state, query.account.as_deref()).await?;
    let known = matches!(doctype.as_str(), BILLS | FILES | ENERGY)
        || state
            .app
            .store
            .count_by_doctype()
            .await?
            .contains_key(&doctype);
    if !known {
        return Err(WebError::NotFound(format!(
            "there are no documents of the kind {doctype}"
        )));
    }
    let labels: BTreeMap<String, String> = accounts
        .iter()
        .map(|a| (a.id.clone(), a.label.clone()))
        .collect();
    let ctx = PageCtx {
        layout: Layout::new(&state, &session, doctype_words(&doctype), Nav::Documents),
        doctype: doctype.clone(),
        accounts,
        account,
        page: query.page,
        labels,
    };
    let _scan = scans().acquire().await.ok();
    match doctype.as_str() {
        BILLS => bills_page(&state, ctx).await,
        ENERGY => energy_page(&state, ctx).await,
        _ => list_page(&state, ctx).await,
    }
}

/// What every doctype page starts from.
struct PageCtx {
    layout: Layout,
    doctype: String,
    accounts: Vec<AccountChoice>,
    account: Option<AccountChoice>,
    page: Option<String>,
    /// Account labels by id.
    labels: BTreeMap<String, String>,
}

impl PageCtx {
    fn account_id(&self) -> Option<String> {
        self.account.as_ref().map(|a| a.id.clone())
    }
}

/// `/files/{id}` of an `io.cozy.files:<id>` reference (a bill's `invoice`).
fn file_href(reference: &str) -> Option<String> {
    let id = reference.strip_prefix("io.cozy.files:")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| format!("/files/{id}"))
}

/// One bill in the table.
struct BillRow {
    date: String,
    vendor: String,
    amount: String,
    currency: String,
    refund: bool,
    /// Subtype, beneficiary and contract, when present.
    details: String,
    account: String,
    file: Option<String>,
    filename: String,
}

/// One month in the table under the chart.
struct MonthRow {
    month: String,
    paid: String,
    refunded: String,
    bills: usize,
}

#[derive(Template)]
#[template(path = "documents_bills.html")]
struct BillsPage {
    layout: Layout,
    accounts: Vec<AccountChoice>,
    account: Option<AccountChoice>,
    chart: String,
    currency: String,
    months: Vec<MonthRow>,
    other_currencies: Vec<String>,
    rows: Vec<BillRow>,
    pager: Pager,
}

/// A bill as its table row shows it.
fn bill_row(d: &StoredDoc, labels: &BTreeMap<String, String>) -> BillRow {
    let v = &d.data;
    let value = amount(v, "amount").unwrap_or(0.0);
    let refund = v.get("isRefund") == Some(&Value::Bool(true));
    let details = [
        text(v, "subtype"),
        text(v, "beneficiary"),
        text(v, "contractLabel"),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" · ");
    BillRow {
        date: day(&text(v, "date")),
        vendor: text(v, "vendor"),
        amount: money(if refund { -value } else { value }),
        currency: text(v, "currency"),
        refund,
        details,
        account: labels.get(&d.account_id).cloned().unwrap_or_default(),
        file: file_href(&text(v, "invoice")),
        filename: text(v, "filename"),
    }
}

/// The documents of `ids` (one table page), in that order.
async fn docs_in_order(
    state: &WebState,
    doctype: &str,
    ids: Vec<String>,
) -> Result<Vec<StoredDoc>, WebError> {
    let mut found = state.app.store.docs_by_id(doctype, &ids).await?;
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// The ids of one table page of `keys` (sort key, id), newest first.
fn page_ids(keys: &mut [(String, String)], pager: &Pager) -> Vec<String> {
    keys.sort_unstable_by(|a, b| b.cmp(a));
    let start = (pager.page - 1) * PER_PAGE;
    keys.iter()
        .skip(start)
        .take(PER_PAGE)
        .map(|(_, id)| id.clone())
        .collect()
}

async fn bills_page(state: &WebState, ctx: PageCtx) -> Result<Response, WebError> {
    // A first pass over every bill: the month sums and each bill's date
    // (not the bills: 10,000 of them would be held per request); then the
    // page's 50 bills read again by id.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut per_currency: BTreeMap<String, usize> = BTreeMap::new();
    // (currency, month) -> (paid, refunded, bills)
    let mut months: BTreeMap<(String, String), (f64, f64, usize)> = BTreeMap::new();
    let fields = ["date", "currency", "amount", "isRefund"];
    for_each_picked(
        state,
        BILLS,
        ctx.account_id().as_deref(),
        &fields,
        |id, v| {
            let date = text(v, "date");
            let currency = text(v, "currency");
            let value = amount(v, "amount").unwrap_or(0.0);
            let refund = v.get("isRefund") == Some(&Value::Bool(true));
            let month = date.get(..7).unwrap_or_default().to_owned();
            let m = months.entry((currency.clone(), month)).or_default();
            if refund {
                m.1 += value;
            } else {
                m.0 += value;
            }
            m.2 += 1;
            *per_currency.entry(currency).or_default() += 1;
            keys.push((date, id));
        },
    )
    .await?;
    // The chart is in the currency most bills are in.
    let currency = per_currency
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, _)| c.clone())
        .unwrap_or_else(|| "EUR".to_owned());
    let other_currencies = per_currency
        .keys()
        .filter(|c| **c != currency)
        .cloned()
        .collect();
    let mut bars: Vec<MonthBar> = Vec::new();
    let mut month_rows = Vec::new();
    let in_currency: Vec<(&String, &(f64, f64, usize))> = months
        .iter()
        .filter(|((c, m), _)| *c == currency && !m.is_empty())
        .map(|((_, m), sums)| (m, sums))
        .collect();
    // Every month from the first to the last (empty ones too), the most
    // recent CHART_MONTHS of them.
    if let (Some(first), Some(last)) = (in_currency.first(), in_currency.last()) {
        let by_month: BTreeMap<&String, &(f64, f64, usize)> = in_currency.iter().copied().collect();
        let mut month = month_after(last.0, -(CHART_MONTHS as i32 - 1));
        if month.as_str() < first.0.as_str() {
            month = first.0.clone();
        }
        while month.as_str() <= last.0.as_str() {
            let (paid, refunded, n) = by_month.get(&month).map_or((0.0, 0.0, 0), |s| **s);
            bars.push(MonthBar {
                label: month.clone(),
                spent: paid,
                refunded,
            });
            month_rows.push(MonthRow {
                month: month.clone(),
                paid: money(paid),
                refunded: if refunded > 0.0 {
                    money(refunded)
                } else {
                    String::new()
                },
                bills: n,
            });
            let next = month_after(&month, 1);
            if next <= month {
                break;
            }
            month = next;
        }
    }
    let title = format!("Money spent per month ({currency})");
    let chart = charts::money_per_month("chart-bills", &title, &currency, &bars);
    let pager = Pager::new(
        &ctx.doctype,
        ctx.account.as_ref(),
        ctx.page.as_deref(),
        keys.len(),
    );
    let ids = page_ids(&mut keys, &pager);
    drop(keys);
    let page_rows: Vec<BillRow> = docs_in_order(state, BILLS, ids)
        .await?
        .iter()
        .map(|d| bill_row(d, &ctx.labels))
        .collect();
    month_rows.reverse();
    Ok(render::page(&BillsPage {
        layout: ctx.layout,
        accounts: ctx.accounts,
        account: ctx.account,
        chart,
        currency,
        months: month_rows,
        other_currencies,
        rows: page_rows,
        pager,
    }))
}

/// The month `delta` months after `month` (`YYYY-MM`); the same text if it
/// is not a month.
fn month_after(month: &str, delta: i32) -> String {
    let parsed = month.split_once('-').and_then(|(y, m)| {
        let y: i32 = y.parse().ok()?;
        let m: i32 = m.parse().ok()?;
        (1..=12).contains(&m).then_some(y * 12 + m - 1)
    });
    match parsed {
        Some(n) => {
            let n = n + delta;
            format!("{:04}-{:02}", n.div_euclid(12), n.rem_euclid(12) + 1)
        }
        None => month.to_owned(),
    }
}

/// One series of the energy page: a meter's values of one unit and step.
struct EnergyChart {
    id: String,
    heading: String,
    chart: String,
    unit: String,
    points: Vec<Point>,
    total: String,
}

#[derive(Template)]
#[template(path = "documents_energy.html")]
struct EnergyPage {
    layout: Layout,
    accounts: Vec<AccountChoice>,
    account: Option<AccountChoice>,
    charts: Vec<EnergyChart>,
}

/// Whether a series document holds a value per day (Enedis: one document
/// per month, one point per day) rather than per month (EDF: one document
/// per year, one point per month).
fn is_daily(doc: &Value, points: usize) -> bool {
    let span_days = match (
        chrono::DateTime::parse_from_rfc3339(&text(doc, "startDate")),
        chrono::DateTime::parse_from_rfc3339(&text(doc, "endDate")),
    ) {
        (Ok(s), Ok(e)) => (e - s).num_days(),
        _ => return true,
    };
    span_days <= 31 || points as i64 * 2 >= span_days
}

async fn energy_page(state: &WebState, ctx: PageCtx) -> Result<Response, WebError> {
    // (daily?, source, meter, unit) -> day -> value
    type Key = (bool, String, String, String);
    let mut groups: BTreeMap<Key, BTreeMap<String, f64>> = BTreeMap::new();
    for_each_doc(state, ENERGY, ctx.account_id().as_deref(), |d| {
        let v = &d.data;
        let series = v.get("series").and_then(Value::as_array);
        let n = series.map_or(0, Vec::len);
        let key = (
            // Daily first: they sort before monthly ones (false < true).
            !is_daily(v, n),
            text(v, "source"),
            text(v, "meterId"),
            text(v, "unit"),
        );
        let values = groups.entry(key).or_default();
        for p in series.into_iter().flatten() {
            if let Some(value) = amount(p, "value") {
                *values.entry(day(&text(p, "date"))).or_default() += value;
            }
        }
    })
    .await?;
    let mut out = Vec::new();
    for (i, ((monthly, source, meter, unit), values)) in groups.into_iter().enumerate() {
        let wh_to_kwh = unit == "Wh";
        let shown_unit = if wh_to_kwh { "kWh".to_owned() } else { unit };
        let points: Vec<Point> = values
            .into_iter()
            .map(|(day, value)| Point {
                label: if monthly {
                    day.get(..7).unwrap_or(&day).to_owned()
                } else {
                    day
                },
                value: if wh_to_kwh { value / 1000.0 } else { value },
            })
            .collect();
        let id = if i == 0 {
            "chart-energy".to_owned()
        } else {
            format!("chart-energy-{}", i + 1)
        };
        let step = if monthly { "month" } else { "day" };
        let heading = format!("Energy per {step}, meter {meter} ({source})");
        let chart = charts::line(&id, &heading, &shown_unit, &points);
        let total = charts::number(points.iter().map(|p| p.value).sum());
        out.push(EnergyChart {
            id,
            heading,
            chart,
            unit: shown_unit,
            points,
            total,
        });
    }
    Ok(render::page(&EnergyPage {
        layout: ctx.layout,
        accounts: ctx.accounts,
        account: ctx.account,
        charts: out,
    }))
}

/// One row of a plain documents table.
struct ListRow {
    date: String,
    name: String,
    size: String,
    amount: String,
    account: String,
    href: Option<String>,
    id: String,
}

#[derive(Template)]
#[template(path = "documents_list.html")]
struct ListPage {
    layout: Layout,
    doctype: String,
    accounts: Vec<AccountChoice>,
    account: Option<AccountChoice>,
    files: bool,
    rows: Vec<ListRow>,
    pager: Pager,
}

/// The date a document is about (files: their metadata's date, else when
/// Gleaner saved them).
fn doc_date(v: &Value) -> String {
    let meta = v.get("metadata").cloned().unwrap_or(Value::Null);
    for date in [
        text(&meta, "datetime"),
        text(&meta, "issueDate"),
        text(v, "date"),
        text(v, "startDate"),
        text(v.get("cozyMetadata").unwrap_or(&Value::Null), "createdAt"),
    ] {
        if !date.is_empty() {
            return date;
        }
    }
    String::new()
}

/// A document as a plain table row shows it.
fn list_row(d: StoredDoc, labels: &BTreeMap<String, String>, files: bool) -> ListRow {
    let v = &d.data;
    let name = ["name", "label", "vendor", "institutionLabel"]
        .iter()
        .map(|k| text(v, k))
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let value = amount(v, "amount").or_else(|| amount(v, "balance"));
    ListRow {
        date: day(&doc_date(v)),
        name,
        size: v
            .get("size")
            .and_then(Value::as_u64)
            .map(size_words)
            .unwrap_or_default(),
        amount: value
            .map(|a| format!("{} {}", money(a), text(v, "currency")))
            .unwrap_or_default(),
        account: labels.get(&d.account_id).cloned().unwrap_or_default(),
        href: files.then(|| format!("/files/{}", d.id)),
        id: d.id,
    }
}

async fn list_page(state: &WebState, ctx: PageCtx) -> Result<Response, WebError> {
    let files = ctx.doctype == FILES;
    // Every document's date and id, then the page's documents by id.
    let mut keys: Vec<(String, String)> = Vec::new();
    for_each_doc(state, &ctx.doctype, ctx.account_id().as_deref(), |d| {
        keys.push((doc_date(&d.data), d.id));
    })
    .await?;
    let pager = Pager::new(
        &ctx.doctype,
        ctx.account.as_ref(),
        ctx.page.as_deref(),
        keys.len(),
    );
    let ids = page_ids(&mut keys, &pager);
    drop(keys);
    let rows = docs_in_order(state, &ctx.doctype, ids)
        .await?
        .into_iter()
        .map(|d| list_row(d, &ctx.labels, files))
        .collect();
    Ok(render::page(&ListPage {
        layout: ctx.layout,
        doctype: ctx.doctype,
        accounts: ctx.accounts,
        account: ctx.account,
        files,
        rows,
        pager,
    }))
}

// ------------------------------------------------------------------ files

/// The types shown in the browser (`inline`); any other is downloaded as
/// bytes (`attachment`, `application/octet-stream`): a provider's HTML or
/// SVG file must never run in this origin.
const INLINE_TYPES: &[&str] = &[
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
    "text/csv",
];

/// A relative path that stays inside the files root: no `..`, no root, no
/// drive, no backslash, no NUL.
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && !path.starts_with('/')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// `filename` for `Content-Disposition`: ASCII without quotes or controls,
/// plus the exact name as RFC 5987 `filename*`.
fn disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The bytes of a file read in chunks (a large file is never whole in
/// memory).
fn file_stream(file: tokio::fs::File) -> Body {
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

async fn file(
    State(state): State<Arc<WebState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, WebError> {
    let missing = || WebError::NotFound("there is no such file".into());
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(missing());
    }
    let doc = state
        .app
        .store
        .docs_by_id(FILES, std::slice::from_ref(&id))
        .await?
        .remove(&id)
        .ok_or_else(missing)?;
    let rel = text(&doc.data, "path");
    if !safe_relative(&rel) {
        tracing::warn!(id = %id, "a file document's path leaves the files folder; refused");
        return Err(WebError::Forbidden(
            "this file's path leaves the files folder".into(),
        ));
    }
    let root = state.app.files.root();
    let absolute = state.app.files.absolute(&rel);
    // Resolved, symbolic links too: it must still be under the root.
    let (Ok(real_root), Ok(real)) = (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&absolute).await,
    ) else {
        return Err(WebError::NotFound(
            "this file is listed but no longer on disk".into(),
        ));
    };
    if !real.starts_with(&real_root) {
        tracing::warn!(id = %id, "a file resolves outside the files folder; refused");
        return Err(WebError::Forbidden(
            "this file's path leaves the files folder".into(),
        ));
    }
    let handle = tokio::fs::File::open(&real)
        .await
        .map_err(|_| WebError::NotFound("this file cannot be read".into()))?;
    let meta = handle
        .metadata()
        .await
        .map_err(|e| WebError::Internal(anyhow::Error::new(e)))?;
    if !meta.is_file() {
        return Err(missing());
    }
    let mime = text(&doc.data, "mime").to_ascii_lowercase();
    let inline = INLINE_TYPES.contains(&mime.as_str());
    let (content_type, kind) = if inline {
        (mime.as_str(), "inline")
    } else {
        ("application/octet-stream", "attachment")
    };
    let mut name = text(&doc.data, "name");
    if name.is_empty() {
        name = rel.rsplit('/').next().unwrap_or("file").to_owned();
    }
    let mut response = file_stream(handle).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    if let Ok(value) = HeaderValue::from_str(&disposition(kind, &name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // A file from a provider is shown in a sandbox: no script, no form, no
    // same-origin access, whatever it holds.
    if let Ok(value) = HeaderValue::from_str(&format!("{}; sandbox", super::security::CSP)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_root_are_refused() {
        assert!(safe_relative("Free Mobile/acc/2025-01.pdf"));
        assert!(safe_relative("a/./b.pdf"));
        for bad in [
            "",
            "../secret",
            "a/../../b",
            "/etc/passwd",
            "a\\..\\b",
            "a/\0b",
            "..",
        ] {
            assert!(!safe_relative(bad), "{bad:?}");
        }
    }

    #[test]
    fn amounts_months_and_sizes_read_well() {
        assert_eq!(money(1234.5), "1,234.50");
        assert_eq!(money(-16.5), "−16.50");
        assert_eq!(money(0.004), "0.00");
        assert_eq!(money(999999.999), "1,000,000.00");
        assert_eq!(month_after("2025-01", -1), "2024-12");
        assert_eq!(month_after("2025-12", 1), "2026-01");
        assert_eq!(month_after("2025-03", -35), "2022-04");
        assert_eq!(month_after("junk", 1), "junk");
        assert_eq!(size_words(999), "999 bytes");
        assert_eq!(size_words(12_345), "12.3 KB");
        let (page, pages) = page_number(Some("9"), 120);
        assert_eq!((page, pages), (3, 3));
        assert_eq!(page_number(Some("x"), 0), (1, 1));
        assert_eq!(
            disposition("inline", "Facture \"mars\" é.pdf"),
            "inline; filename=\"Facture _mars_ _.pdf\"; filename*=UTF-8''Facture%20%22mars%22%20%C3%A9.pdf"
        );
    }
}
