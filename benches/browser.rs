//! Headless browser figures: start to first page, and memory.
//!
//! Run with `cargo bench --bench browser`. A plain program
//! (`harness = false`) that prints figures and asserts nothing on time.
//! Needs Debian's chromium (`apt-get install -y chromium`); without it, it
//! prints one line and exits.
//!
//! - what `ctx.browser()` then `goto` cost: `BrowserSession::launch`
//!   (chromium start, a guarded tab) to a loopback page loaded and its
//!   script run, median of 5 (and min, max); `close` alone, median;
//! - the session's memory with the page open: the sum over chromium's
//!   process tree of `VmRSS` (resident now) and `VmHWM` (each process's
//!   peak), read from `/proc`. Shared pages count once per process, so
//!   these are upper bounds.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use gleaner_framework::browser::{BrowserConfig, BrowserSession, chromium_path};

const PAGE: &str = "<!doctype html><html><head><title>Bench</title></head><body>\
<h1>Bills</h1><table id=\"bills\"><tr><td>2024-01</td><td>19.99</td></tr></table>\
<script>const p = document.createElement('p'); p.id = 'ready'; \
document.body.appendChild(p);</script></body></html>";

/// A tiny HTTP server answering `PAGE` to every request, on a thread.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !chromium_path().is_file() {
        println!("skipped: chromium not installed (apt-get install -y chromium)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = serve();
    let url = format!("http://127.0.0.1:{port}/bills");
    let mut first_page = Vec::new();
    let mut closes = Vec::new();
    let mut memory = Vec::new();
    rt.block_on(async {
        for _ in 0..5 {
            let started = Instant::now();
            let config = BrowserConfig::new(vec![format!("127.0.0.1:{port}")]);
            let b = BrowserSession::launch(config).await.unwrap();
            b.goto(&url).await.unwrap();
            b.wait_for("#ready").await.unwrap();
            first_page.push(started.elapsed().as_secs_f64() * 1000.0);
            // Let the renderers settle, then measure with the page open.
            tokio::time::sleep(Duration::from_millis(300)).await;
            memory.push(b.memory());
            let closing = Instant::now();
            b.close().await;
            closes.push(closing.elapsed().as_secs_f64() * 1000.0);
        }
    });
    let min = first_page.iter().copied().fold(f64::INFINITY, f64::min);
    let max = first_page.iter().copied().fold(0.0, f64::max);
    println!(
        "browser start to first page: median {:.0} ms (min {min:.0}, max {max:.0}, 5 runs)",
        median(first_page.clone())
    );
    println!("browser close: median {:.0} ms", median(closes));
    let procs = memory.iter().map(|m| m.processes).max().unwrap_or(0);
    let rss = median(memory.iter().map(|m| m.rss_kib as f64).collect()) / 1024.0;
    let peak = memory.iter().map(|m| m.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "browser memory with one page open: {procs} processes, RSS {rss:.0} MiB (median), peak {peak:.0} MiB (sum of VmHWM, max of 5)"
    );
}
