//! The NextGenPSD2 konnector, unchanged, against a mock bank generated from
//! the Berlin Group's own OpenAPI file (`shared/specs/bg-psd2-1.3.12.yaml`)
//! by Stoplight Prism in static mode: Prism checks every request against
//! the spec (paths, required headers such as `X-Request-ID` and
//! `Consent-ID`, query parameters, the consent body) and answers with the
//! spec's first example. The run must end with valid documents, or with an
//! error code that the spec's example answer explains.
//!
//! Prism comes from the npm registry (`npm install @stoplight/prism-cli@5`);
//! the test finds it through `GLEANER_PRISM` (the `prism` executable) or at
//! `<repo>/.ci/node_modules/.bin/prism`. Without it the test prints one
//! `skipped:` line and passes, unless `CI` is set. Prism is started on a
//! free loopback port in its own process group, and that group is killed
//! (by its id) however the test ends.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use gleaner_framework::{
    RunOptions, Secret, TwoFactorChannel, TwoFactorKind, TwoFactorRequest, async_trait,
};
use gleaner_konnectors::bank::nextgenpsd2::NextGenPsd2;
use gleaner_testing::prism::{PrismServer, PrismSpec};
use gleaner_testing::{Harness, validate_stored};

/// The person: told the spec's `scaRedirect` (a testbank.com page, not
/// opened: no test touches the internet), says it is done; the mock then
/// reports the consent `valid`, as its example says.
#[derive(Default)]
struct Person {
    asked: Mutex<Vec<TwoFactorRequest>>,
}

#[async_trait]
impl TwoFactorChannel for Person {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        self.asked.lock().unwrap().push(request.clone());
        Ok(Secret::new(""))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_konnector_runs_unchanged_against_the_spec_mock() {
    let Some(PrismSpec { prism, spec }) = PrismSpec::find("bg-psd2-1.3.12.yaml") else {
        return;
    };
    let h = Harness::new().await.unwrap();
    let server = PrismServer::start(&prism, &spec, h.dir());
    let base = server.url().to_owned();
    let account = h
        .account("nextgenpsd2", &[("bank_name", "Prism")], &[], Some(&base))
        .await
        .unwrap();
    let person = Arc::new(Person::default());
    let options = RunOptions {
        two_factor: Arc::clone(&person) as Arc<dyn TwoFactorChannel>,
        ..h.run_options()
    };
    let result = h
        .run_with(&NextGenPsd2::new().unwrap(), &account, options)
        .await;
    let log = server.log();
    // Prism refuses (400, 422) any request the spec does not allow: none
    // may have been refused.
    let refused = server.refused();
    drop(server);
    assert!(
        refused.is_empty(),
        "prism refused requests:\n{}",
        refused.join("\n")
    );

    match result {
        Ok(report) => {
            // The spec's example consent asks for a redirect.
            let asked = person.asked.lock().unwrap().clone();
            assert_eq!(asked.len(), 1);
            assert_eq!(asked[0].kind, TwoFactorKind::Redirect);
            assert_eq!(
                asked[0].hint.as_deref(),
                Some("https://www.testbank.com/authentication/1234-wertiq-983")
            );
            // The example account list: two accounts; the example
            // transactions: two booked and one pending each.
            let all = h.all_docs().await.unwrap();
            let accounts = &all["io.cozy.bank.accounts"];
            assert_eq!(accounts.len(), 2, "{accounts:?}");
            let ops = &all["io.cozy.bank.operations"];
            assert_eq!(ops.len(), 6, "{ops:?}");
            assert_eq!(ops.iter().filter(|o| o.data["isComing"] == true).count(), 2);
            for (doctype, docs) in &all {
                for doc in docs {
                    validate_stored(doctype, &doc.data)
                        .unwrap_or_else(|e| panic!("{doctype} {}: {e}", doc.data));
                }
            }
            println!("prism: {} documents, {:?}", report.created(), report.counts);
        }
        Err(e) => {
            // Only what the spec's own example answers explain is accepted.
            panic!(
                "the run against the spec mock failed: {}: {}\nprism log:\n{log}",
                e.code, e.message
            );
        }
    }
}
