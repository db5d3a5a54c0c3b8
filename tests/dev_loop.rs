//! `gleaner dev`: against the Free Mobile sandbox in its `changed-markup`
//! scenario, the run fails, prints the selector that matched nothing and
//! the saved page it was looked for on, and the dev folder holds that page
//! and the cassette, scrubbed. A run that works saves nothing.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::Home;
use gleaner_konnectors::telco::free_mobile::sandbox::{PASSWORD, Sandbox, Scenario};

fn dev(home: &Home, label: &str) -> std::process::Output {
    home.gleaner(&["dev", label])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_page_fails_the_dev_run_naming_the_selector_and_the_saved_page() {
    let sandbox = Sandbox::start(Scenario::ChangedMarkup).await.unwrap();
    let endpoint = sandbox.base_url();
    let home = Home::new();
    let out = tokio::task::spawn_blocking(move || {
        home.add_free_mobile(&endpoint, PASSWORD, "fm");
        let out = dev(&home, "fm");
        (home, out)
    })
    .await
    .unwrap();
    let (home, out) = out;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("UNKNOWN_ERROR.PAGE_CHANGED"), "{stdout}");
    assert!(
        stdout.contains("failing selector `div.table-facture`"),
        "{stdout}"
    );
    // The gleaner crates' logs (TRACE and below) on stderr: every request.
    assert!(
        stderr.contains("gleaner_framework::http") && stderr.contains("DEBUG"),
        "{stderr}"
    );

    let page_line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the page it was looked for on: "))
        .unwrap_or_else(|| panic!("no saved page named:\n{stdout}"));
    let page = std::path::Path::new(page_line);
    assert!(page.starts_with(home.path().join("dev")), "{page_line}");
    assert!(page_line.ends_with(".html"), "{page_line}");
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.contains("logout"), "the saved page is the home page");
    assert!(!html.contains("table-facture"), "it is the changed page");

    let folder = page.parent().unwrap();
    let names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "cassette.json"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("01-GET-account")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.contains("-POST-")), "{names:?}");
    // Scrubbed as cassettes are: the password appears nowhere.
    for name in &names {
        let bytes = std::fs::read(folder.join(name)).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(PASSWORD),
            "{name} holds the password"
        );
    }

    // The site fixed: the run succeeds and nothing more is saved.
    sandbox.set_scenario(Scenario::Normal);
    let (home, out) = tokio::task::spawn_blocking(move || {
        let out = dev(&home, "fm");
        (home, out)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("nothing was saved"), "{stdout}");
    let folders = std::fs::read_dir(home.path().join("dev")).unwrap().count();
    assert_eq!(folders, 1, "only the failed run's folder");
    sandbox.shutdown().await;
}
