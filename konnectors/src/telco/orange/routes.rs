//! Every URL, header and selector the konnector uses, in one table.
//!
//! The real site spans two hosts: the login application at
//! `login.orange.fr` (a script-built, two-step form: identifier, then
//! password) and the customer area at `espace-client.orange.fr` (JSON
//! APIs under `/ecd_wp/`). An account endpoint (a sandbox, a recording
//! server) stands in for both: their paths do not overlap.

use gleaner_framework::{KonnectorError, Result};
use url::Url;

/// The customer area's host (the manifest's `base_url`).
pub const ESPACE_CLIENT_HOST: &str = "espace-client.orange.fr";

/// The login application's origin on the real site.
pub const LOGIN_ORIGIN: &str = "https://login.orange.fr";

/// The customer area's home, where the login sends the browser back.
pub const HOME: &str = "/accueil";

/// The contracts (lines) of the logged-in customer (Woob's `contracts_api`).
pub const CONTRACTS: &str = "/ecd_wp/portfoliomanager/contracts/users/current?filter=telco,security";

/// The recent bills of one contract, with the link to its older ones.
pub fn bills(cid: &str) -> String {
    format!("/ecd_wp/facture/v2.0/billsAndPaymentInfos/users/current/contracts/{cid}")
}

/// A recent bill's PDF: this path followed by the bill's `hrefPdf`
/// (a query string).
pub const PDF: &str = "/ecd_wp/facture/v1.0/pdf";

/// An old bill's PDF (Cozy's `historicPDF` URL), with its query.
pub fn historic_pdf(
    entity_name: &str,
    partition_key_name: &str,
    partition_key_value: &str,
    tec_id: &str,
    cid: &str,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("entityName", entity_name)
        .append_pair("partitionKeyName", partition_key_name)
        .append_pair("partitionKeyValue", partition_key_value)
        .append_pair("tecId", tec_id)
        .append_pair("cid", cid)
        .finish();
    format!("/ecd_wp/facture/historicPDF?{query}")
}

/// The headers the customer area's APIs want (Cozy's
/// `ORANGE_SPECIAL_HEADERS`, Woob's `x-orange-caller-id`).
pub const API_HEADERS: &[(&str, &str)] = &[
    ("X-Orange-Caller-Id", "ECQ"),
    ("X-Orange-Origin-Id", "ECQ"),
    ("Accept", "application/json;version=1"),
];

/// Selectors of the login application (Cozy's orange konnector).
pub mod sel {
    /// The identifier field (step 1).
    pub const LOGIN: &str = "#login";
    /// The password field (step 2).
    pub const PASSWORD: &str = "#password";
    /// The submit button of both steps.
    pub const SUBMIT: &str = "#btnSubmit";
    /// "Stay connected as ..." (a remembered account).
    pub const KEEP_CONNECTED: &str = "button[data-testid=\"button-keepconnected\"]";
    /// The captcha the site shows to suspicious clients.
    pub const CAPTCHA: &str = "div[class*=\"captcha_responseContainer\"]";
    /// The error the form shows under a refused step.
    pub const ALERT: &str = "[role=\"alert\"]";
    /// The "connected" ribbon of the customer area's header.
    pub const CONNECTED: &str = ".o-ribbon-is-connected";
}

/// Where the two applications live for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The customer area's origin.
    pub espace_client: Url,
    /// The login application's origin.
    pub login: Url,
}

impl Site {
    /// The site for the run's base URL: the real hosts for the manifest's
    /// base URL, the endpoint for both otherwise.
    pub fn new(base: &Url) -> Result<Self> {
        let login = if base.host_str() == Some(ESPACE_CLIENT_HOST) {
            Url::parse(LOGIN_ORIGIN).map_err(|e| {
                KonnectorError::new(
                    gleaner_framework::ErrorCode::UnknownError,
                    format!("bad login origin: {e}"),
                )
            })?
        } else {
            base.clone()
        };
        Ok(Self {
            espace_client: base.clone(),
            login,
        })
    }

    /// A path of the customer area as a full URL.
    pub fn ec(&self, path: &str) -> Result<String> {
        join(&self.espace_client, path)
    }

    /// The login page, asked to send the browser back to the customer
    /// area's home (`?service=ec&return_url=...`, as the real links do).
    pub fn login_page(&self) -> Result<String> {
        let back = self.ec(HOME)?;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("service", "ec")
            .append_pair("return_url", &back)
            .finish();
        join(&self.login, &format!("/?{query}"))
    }
}

fn join(base: &Url, path: &str) -> Result<String> {
    base.join(path).map(String::from).map_err(|e| {
        KonnectorError::new(
            gleaner_framework::ErrorCode::UnknownError,
            format!("cannot join `{path}` to the site's origin: {e}"),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_real_site_uses_two_hosts_an_endpoint_one() {
        let real = Site::new(&Url::parse("https://espace-client.orange.fr").unwrap()).unwrap();
        assert!(
            real.login_page()
                .unwrap()
                .starts_with("https://login.orange.fr/?service=ec&return_url=https%3A%2F%2Fespace-client.orange.fr%2Faccueil")
        );
        assert_eq!(
            real.ec(&bills("9001234567")).unwrap(),
            "https://espace-client.orange.fr/ecd_wp/facture/v2.0/billsAndPaymentInfos/users/current/contracts/9001234567"
        );
        let sandbox = Site::new(&Url::parse("http://127.0.0.1:4242").unwrap()).unwrap();
        assert!(sandbox.login_page().unwrap().starts_with("http://127.0.0.1:4242/?service=ec"));
        assert_eq!(
            historic_pdf("E", "K", "V 1", "T", "C"),
            "/ecd_wp/facture/historicPDF?entityName=E&partitionKeyName=K&partitionKeyValue=V+1&tecId=T&cid=C"
        );
    }
}
