//! `gleaner dev <account>`: the konnector author's loop.
//!
//! The run goes as `gleaner run` does, with TRACE logs of the gleaner
//! crates on stderr (set in `main`) and every exchange recorded. On
//! failure, everything the run saw is saved to
//! `<data dir>/dev/<slug>-<timestamp>/`: one file per exchange,
//! `NN-METHOD-path.{html,json,txt,bin}` holding the response body, and
//! `cassette.json`, all scrubbed as cassettes are (nothing unscrubbed is
//! ever written). The error is printed with, for a selector or JSON path
//! that failed ([`gleaner_framework::Locator`]), the saved file of the page
//! it was looked for on. On success, the summary is printed and nothing is
//! kept.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gleaner_framework::cassette::{Cassette, Exchange};
use gleaner_framework::{CassetteMode, KonnectorError};

use crate::app::App;
use crate::commands::print_report;

/// Runs the account's konnector in dev mode.
pub async fn dev(app: &App, what: &str) -> Result<()> {
    let account = app.find_account(what).await?;
    app.registry.get(&account.konnector)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let dev_dir = app.data_dir.join("dev");
    let recording = dev_dir.join(format!(".recording-{}-{stamp}", account.konnector));
    std::fs::create_dir_all(&recording)
        .with_context(|| format!("cannot create {}", recording.display()))?;
    eprintln!(
        "gleaner dev: running {} ({}) with trace logs, recording every exchange",
        account.label, account.konnector
    );
    let result =
        crate::scheduling::run_job(app, &account, Some(CassetteMode::Record(recording.clone())))
            .await;
    let cassette = Cassette::find(&recording, &account.konnector)
        .and_then(|path| Cassette::load(&path))
        .ok();
    let _ = std::fs::remove_dir_all(&recording);
    let error = match result {
        Ok(report) => {
            print_report(&account.label, &report);
            println!(
                "the run succeeded: nothing was saved under {}",
                dev_dir.display()
            );
            return Ok(());
        }
        Err(error) => error,
    };
    let folder = dev_dir.join(format!("{}-{stamp}", account.konnector));
    let saved = match &cassette {
        Some(cassette) => save_exchanges(&folder, cassette)?,
        None => Vec::new(),
    };
    println!("the run failed: {}", crate::describe(&error, 0));
    if let Some(locator) = error
        .chain()
        .find_map(|c| c.downcast_ref::<KonnectorError>())
        .and_then(|k| k.locator.as_deref())
    {
        println!("failing {locator}");
        match page_file(&saved, locator.page()) {
            Some(file) => println!("the page it was looked for on: {}", file.display()),
            None => println!("(no saved response came from {})", locator.page()),
        }
    }
    if cassette.is_some() {
        println!(
            "saved {} exchange(s) (scrubbed) and cassette.json to {}",
            saved.len(),
            folder.display()
        );
    } else {
        println!("no exchange was recorded (the run failed before any request)");
    }
    Err(error)
}

/// Writes one file per exchange and `cassette.json` into `folder`; returns
/// each exchange's response URL (without query) and file, in order.
fn save_exchanges(folder: &Path, cassette: &Cassette) -> Result<Vec<(String, PathBuf)>> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let mut saved = Vec::with_capacity(cassette.exchanges.len());
    for (i, exchange) in cassette.exchanges.iter().enumerate() {
        let file = folder.join(exchange_file_name(i + 1, exchange));
        let body = exchange
            .response
            .body
            .as_ref()
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        std::fs::write(&file, &body).with_context(|| format!("cannot write {}", file.display()))?;
        let url = exchange.response.url.split(['?', '#']).next().unwrap_or("");
        saved.push((url.to_owned(), file));
    }
    cassette.save(&folder.join("cassette.json"))?;
    Ok(saved)
}

/// `NN-METHOD-path.ext`: the path's characters that are not letters or
/// digits become `_`; the extension follows the response's type.
pub fn exchange_file_name(n: usize, exchange: &Exchange) -> String {
    let path = url::Url::parse(&exchange.request.url)
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    let mut slug: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if slug.is_empty() {
        slug.push_str("root");
    }
    let content_type = exchange
        .response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.to_ascii_lowercase())
        .unwrap_or_default();
    let ext = if content_type.contains("html") {
        "html"
    } else if content_type.contains("json") {
        "json"
    } else if content_type.starts_with("text/") {
        "txt"
    } else {
        "bin"
    };
    let slug = slug.trim_end_matches(&format!(".{ext}")).to_owned();
    format!("{n:02}-{}-{slug}.{ext}", exchange.request.method)
}

/// The saved file of the last response that came from `page`.
fn page_file<'a>(saved: &'a [(String, PathBuf)], page: &str) -> Option<&'a Path> {
    saved
        .iter()
        .rev()
        .find(|(url, _)| url == page)
        .map(|(_, file)| file.as_path())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gleaner_framework::cassette::{RecordedRequest, RecordedResponse};

    fn exchange(method: &str, url: &str, content_type: &str) -> Exchange {
        Exchange {
            request: RecordedRequest {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
            },
            response: RecordedResponse {
                status: 200,
                url: url.into(),
                headers: vec![("content-type".into(), content_type.into())],
                body: None,
            },
        }
    }

    #[test]
    fn file_names_say_order_method_path_and_type() {
        let e = exchange(
            "GET",
            "http://127.0.0.1:1/account/?x=1",
            "text/html; charset=UTF-8",
        );
        assert_eq!(exchange_file_name(3, &e), "03-GET-account.html");
        let e = exchange("POST", "http://127.0.0.1:1/api/token", "application/json");
        assert_eq!(exchange_file_name(12, &e), "12-POST-api_token.json");
        let e = exchange("GET", "http://127.0.0.1:1/bills/F1.pdf", "application/pdf");
        assert_eq!(exchange_file_name(1, &e), "01-GET-bills_F1.pdf.bin");
        let e = exchange("GET", "http://127.0.0.1:1/", "text/plain");
        assert_eq!(exchange_file_name(1, &e), "01-GET-root.txt");
    }
}
