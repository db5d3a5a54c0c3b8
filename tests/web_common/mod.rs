//! What the web interface's end-to-end tests share: a `gleaner serve`
//! process on a data directory, and Debian's chromium driven by
//! headless_chrome, which logs in with the printed one-time link and takes
//! the screenshots kept in `docs/ui/`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};

#[path = "../common/mod.rs"]
pub mod common;

pub use common::Home;

/// A running `gleaner serve` on a data directory; stopped (SIGTERM, then
/// SIGKILL) when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The one-time login link it printed.
    pub login_link: String,
    /// Everything it printed so far (stdout and stderr).
    pub output: Arc<Mutex<String>>,
}

impl Served {
    /// `gleaner serve --listen 127.0.0.1:0 ARGS` on `home`, once it printed
    /// its login link.
    pub fn start(home: &Home, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut cmd = home.command(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("gleaner serve starts");
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let err_out = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut reader = BufReader::new(stderr);
            while reader.read_line(&mut text).unwrap_or(0) > 0 {
                err_out.lock().unwrap().push_str(&text);
                text.clear();
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                out.lock().unwrap().push_str(&line);
                if let Some(at) = line.find("http://")
                    && line.contains("/login?token=")
                {
                    let _ = tx.send(line[at..].trim().to_owned());
                }
                line.clear();
            }
        });
        let login_link = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(link) => link,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "gleaner serve printed no login link:\n{}",
                    output.lock().unwrap()
                );
            }
        };
        let base = login_link
            .split("/login?")
            .next()
            .unwrap_or_default()
            .to_owned();
        Self {
            child,
            base,
            login_link,
            output,
        }
    }

    /// A path of this server as a URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's process id (for its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM and waits (at most 20 s) for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Debian's chromium (or `GLEANER_CHROMIUM`).
#[allow(unused_imports)]
pub use gleaner_framework::browser::chromium_path;
/// Under CI chromium is required; elsewhere its absence skips the test with
/// one printed line.
#[allow(unused_imports)]
pub use gleaner_testing::chromium_or_skip;

/// A headless chromium with one tab, closed (its processes killed) when
/// dropped.
///
/// Navigations end when the page stopped loading (`Page.frameStoppedLoading`,
/// counted by a listener): headless_chrome's own `wait_until_navigated`
/// waits for lifecycle events whose numbers serde_json's
/// `arbitrary_precision` (on for the whole workspace) keeps it from
/// parsing. Clicks and focus go through DevTools calls only, because the
/// crate's `Element::click` scrolls with a script, which never ends when
/// scripts are off.
pub struct Web {
    _browser: Browser,
    profile: tempfile::TempDir,
    loads: Arc<AtomicUsize>,
    pub tab: Arc<Tab>,
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Web {
    /// Starts chromium; `scripts` false turns JavaScript off (the pages must
    /// still work).
    pub fn launch(scripts: bool) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let args: Vec<&OsStr> = [
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        let options = LaunchOptions::default_builder()
            .path(Some(chromium_path()))
            .headless(true)
            .sandbox(!is_root())
            .user_data_dir(Some(profile.path().join("profile")))
            .window_size(Some((1280, 900)))
            .idle_browser_timeout(Duration::from_secs(300))
            .args(args)
            .build()
            .unwrap();
        let browser = Browser::new(options).expect("chromium starts");
        let tab = browser.new_tab().unwrap();
        tab.set_default_timeout(Duration::from_secs(30));
        if !scripts {
            tab.call_method(
                headless_chrome::protocol::cdp::Emulation::SetScriptExecutionDisabled {
                    value: true,
                },
            )
            .unwrap();
        }
        let loads = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&loads);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            if let Event::PageFrameStoppedLoading(_) = event {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }))
        .unwrap();
        Self {
            _browser: browser,
            profile,
            loads,
            tab,
        }
    }

    /// Does `action` and waits until the page it loads (after any
    /// redirects) stopped loading.
    pub fn loading(&self, what: &str, action: impl FnOnce()) -> &Self {
        let before = self.loads.load(Ordering::SeqCst);
        action();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.loads.load(Ordering::SeqCst) == before {
            assert!(
                Instant::now() < deadline,
                "{what}: no page loaded; at {}",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self
    }

    /// Opens a URL and waits for the page to load.
    pub fn goto(&self, url: &str) -> &Self {
        self.loading(url, || {
            self.tab.navigate_to(url).unwrap();
        })
    }

    /// Logs in with the server's one-time link; the home page shows.
    pub fn login(&self, served: &Served) -> &Self {
        self.goto(&served.login_link);
        self.wait_for("h1");
        assert!(
            !self.html().contains("Log in to Gleaner"),
            "the one-time link did not log in:\n{}",
            self.html()
        );
        self
    }

    /// The page's HTML as the browser holds it now (read again if the page
    /// was being replaced).
    pub fn html(&self) -> String {
        for _ in 0..50 {
            if let Ok(html) = self.tab.get_content() {
                return html;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.tab.get_content().unwrap()
    }

    /// The current URL.
    pub fn current_url(&self) -> String {
        self.tab.get_url()
    }

    /// Waits (at most 30 s) for an element to appear. A page that reloads
    /// itself meanwhile (the account page does, when its run moves on) is
    /// looked at again.
    pub fn wait_for(&self, selector: &str) -> &Self {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .tab
                .wait_for_element_with_custom_timeout(selector, Duration::from_secs(2))
            {
                Ok(_) => return self,
                Err(e) if Instant::now() > deadline => panic!(
                    "no `{selector}` on {}: {e}\n{}",
                    self.current_url(),
                    self.tab.get_content().unwrap_or_default()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits (at most `limit`) until the page's HTML contains `text`,
    /// reloading it every second if `reload` (for a page without scripts).
    pub fn wait_for_text(&self, text: &str, limit: Duration, reload: bool) -> &Self {
        let deadline = Instant::now() + limit;
        loop {
            if self.html().contains(text) {
                return self;
            }
            if Instant::now() > deadline {
                panic!(
                    "`{text}` never showed on {} within {limit:?}:\n{}",
                    self.current_url(),
                    self.html()
                );
            }
            std::thread::sleep(Duration::from_millis(if reload { 1000 } else { 200 }));
            if reload {
                self.loading("reload", || {
                    self.tab.reload(false, None).unwrap();
                });
            }
        }
    }

    /// Scrolls an element into view and focuses it, by DevTools calls only.
    pub fn focus(&self, selector: &str) -> headless_chrome::Element<'_> {
        use headless_chrome::protocol::cdp::DOM;
        let element = self.tab.wait_for_element(selector).unwrap();
        self.tab
            .call_method(DOM::ScrollIntoViewIfNeeded {
                node_id: None,
                backend_node_id: Some(element.backend_node_id),
                object_id: None,
                rect: None,
            })
            .unwrap();
        self.tab
            .call_method(DOM::Focus {
                node_id: None,
                backend_node_id: Some(element.backend_node_id),
                object_id: None,
            })
            .unwrap();
        element
    }

    /// Types into an input (found by CSS selector).
    ///
    /// The text goes in as one `Input.insertText` (the field gets its
    /// `input` event, as from a keyboard or an input method): headless_chrome's
    /// `type_str` makes two DevTools round trips per character, which
    /// took a quarter of a second per character in a debug build, a dozen
    /// seconds per form.
    pub fn fill(&self, selector: &str, text: &str) -> &Self {
        self.focus(selector);
        self.tab.send_character(text).unwrap();
        self
    }

    /// Clicks an element that does not navigate (a checkbox).
    pub fn check(&self, selector: &str) -> &Self {
        let point = self.focus(selector).get_midpoint().unwrap();
        self.tab.click_point(point).unwrap();
        self
    }

    /// Clicks an element (a link, a button) and waits for the page it
    /// loads.
    pub fn click(&self, selector: &str) -> &Self {
        let point = self.focus(selector).get_midpoint().unwrap();
        self.loading(selector, || {
            self.tab.click_point(point).unwrap();
        })
    }

    /// Saves a PNG of the visible window (1280×900) as `docs/ui/<name>.png`.
    pub fn screenshot(&self, name: &str) -> &Self {
        let png = self
            .tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/ui");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        self
    }
}

/// Reads a whole response body of a plain HTTP GET with a cookie (for the
/// checks that need the bytes, not a browser).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).unwrap();
    buf
}
