//! Browser tests on a machine that may lack chromium.

use gleaner_framework::browser::chromium_path;

/// Whether Debian's chromium (or `GLEANER_CHROMIUM`) is here for a browser
/// test. Under CI its absence fails the test; elsewhere the test is skipped
/// with one printed line naming what to install.
pub fn chromium_or_skip() -> bool {
    let path = chromium_path();
    if path.is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs chromium at {} (apt-get install -y chromium)",
        path.display()
    );
    println!("skipped: chromium not installed (apt-get install -y chromium)");
    false
}
