//! The sandbox alone, over plain HTTP: what works without scripts and what
//! does not.

#![allow(clippy::unwrap_used)]

use super::*;

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

#[tokio::test]
async fn plain_http_sees_no_form_and_cannot_log_in() {
    let s = Sandbox::start(Scenario::Normal).await.unwrap();
    let base = s.base_url();
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let page = client.get(format!("{base}/?service=ec")).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("o-login-app"));
    assert!(!html.contains("id=\"login\""), "the form comes from the script");
    // Without the script's proof the identifier step is refused.
    let refused = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"login": login()}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // The APIs need the session.
    let api = get(&format!(
        "{base}/ecd_wp/portfoliomanager/contracts/users/current?filter=telco,security"
    ))
    .await;
    assert_eq!(api.status(), 401);
    s.shutdown().await;
}
