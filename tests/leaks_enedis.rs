//! The leak test, Enedis part: what needs its sandbox's controls. A client
//! secret with characters that get URL-encoded and non-ASCII ones (set on
//! the sandbox), the OAuth consent through the loopback redirect, a run,
//! access tokens revoked so the next run refreshes, a vault rotation; then
//! a scan for the client secret, the vault passphrases and **every access
//! and refresh token the sandbox issued**. The generic part, over every
//! konnector, is `tests/leaks.rs`.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

mod leak_scan;

use gleaner_konnectors::energy::enedis::sandbox::Sandbox as Enedis;
use leak_scan::Run;

const CLIENT_SECRET: &str = "cs+/=ʘ leak-91c2";
const PASSPHRASE: &str = "vault phrase ☂ leak-4d1e";
const NEW_PASSPHRASE: &str = "second phrase ☔ leak-5e2f";

#[tokio::test(flavor = "multi_thread")]
async fn no_enedis_client_secret_or_token_is_printed_logged_or_written_in_clear() {
    let enedis = Enedis::start().await.unwrap();
    enedis.set_client_secret(CLIENT_SECRET);
    let mut r = Run::new(PASSPHRASE);

    // OAuth consent through the loopback redirect, then runs.
    let fields = [("client_secret".to_owned(), CLIENT_SECRET.to_owned())];
    let (ok, err) = r
        .add_account("enedis", &fields, "home", &enedis.base_url())
        .await;
    assert!(ok, "{err}");
    r.ok(&["run", "home"]);
    enedis.revoke_access_tokens();
    r.ok(&["run", "home"]);

    // Rotate the vault (the tokens are re-sealed); then read everything back.
    let out = r
        .command(&["vault", "rotate", "--to-passphrase"])
        .env("GLEANER_NEW_PASSPHRASE", NEW_PASSPHRASE)
        .output()
        .unwrap();
    r.keep(&out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.passphrase = NEW_PASSPHRASE.to_owned();
    r.ok(&["run", "home"]);
    r.ok(&["jobs", "--json", "--limit", "1000"]);
    r.ok(&["export"]);

    let mut secrets: Vec<String> = [CLIENT_SECRET, PASSPHRASE, NEW_PASSPHRASE]
        .map(str::to_owned)
        .to_vec();
    let tokens = enedis.issued_tokens();
    assert!(tokens.len() >= 3, "access and refresh tokens were issued");
    secrets.extend(tokens);
    r.assert_no_leak(&secrets, &[], 20_000);
}
