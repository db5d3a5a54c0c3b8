//! The EDF site map: every URL the konnector visits, in one place.
//!
//! Two real hosts: the SSO (`espace-client.edf.fr`, a ForgeRock Access
//! Management server, realm `/INTERNET`) and the customer area
//! (`particulier.edf.fr`, its `services/rest` JSON services and the
//! consumption API). Against the real site, SSO paths go to the SSO host;
//! against any other endpoint (a sandbox, a recording server) every path
//! goes to that one endpoint: the paths of the two hosts do not overlap.

use gleaner_framework::{Result, RunContext};

/// The customer area's host (the manifest's `base_url`).
pub const SITE_HOST: &str = "particulier.edf.fr";

/// The SSO's origin on the real site.
pub const SSO_ORIGIN: &str = "https://espace-client.edf.fr";

/// ForgeRock's authentication tree endpoint: an empty POST starts a login,
/// each later POST sends back the previous answer with its callbacks filled.
pub const AUTHENTICATE: &str = "/sso/json/authenticate";

/// The realm EDF's customers log in to (query parameter `realm`).
pub const REALM: &str = "/INTERNET";

/// The API version header ForgeRock's REST API wants.
pub const API_VERSION: (&str, &str) = ("Accept-API-Version", "protocol=1.0,resource=2.0");

/// Makes the customer area accept the SSO session (`ivoiream` cookie);
/// must be called before the other services or they answer "invalid
/// session" (Woob).
pub const CHECK_AUTHENTICATE: &str = "/services/rest/openid/checkAuthenticate";

/// The CSRF token the document downloads need (`{"data": token}`); called
/// with `?_=<timestamp>` as the site's scripts do.
pub const INIT_PAGE: &str = "/services/rest/init/initPage";

/// The customer's contracts (`customerAccordContracts`).
pub const LIST_CONTRACTS: &str = "/services/rest/authenticate/getListContracts";

/// "Mes documents": must be opened before the bill list, or the list fails
/// (Woob, Cozy).
pub const MY_DOCUMENTS: &str = "/services/rest/edoc/getMyDocuments";

/// Every invoice of every contract, per business partner.
pub const BILLS_DOCUMENTS: &str = "/services/rest/edoc/getBillsDocuments";

/// The monthly payment schedule (échéancier) and its deadlines.
pub const BILL_CONSULT: &str = "/services/rest/bill/consult";

/// The last payment-schedule document of each contract.
pub const PAYMENTS_DOCUMENTS: &str = "/services/rest/edoc/getPaymentsDocuments";

/// A document's PDF: `csrfToken`, `dn` (document kind), `pn`, `di`, `bn`,
/// `an` (see [`document_query`]).
pub const DOCUMENT: &str = "/services/rest/document/getDocumentGetXByData";

/// `dn` of an invoice.
pub const DN_INVOICE: &str = "FACTURE";

/// `dn` of a payment schedule.
pub const DN_SCHEDULE: &str = "CalendrierPaiement";

/// The monthly electricity consumption (EDF's "suivi conso", Edelia's
/// API): `begin-month`, `end-month` (`YYYY-MM`), `ended=false`, with the
/// `person-ext-id` (business partner) and `site-ext-id` (delivery point)
/// headers.
pub const MONTHLY_ELEC: &str = "/api/v1/sites/-/monthly-elec-consumptions";

/// Header naming the business partner for [`MONTHLY_ELEC`].
pub const PERSON_HEADER: &str = "person-ext-id";

/// Header naming the delivery point (PDL) for [`MONTHLY_ELEC`].
pub const SITE_HEADER: &str = "site-ext-id";

/// The SSO cookie the customer area reads.
pub const SSO_COOKIE: &str = "ivoiream";

/// The URL of an SSO path: on the SSO host against the real site, on the
/// endpoint otherwise.
pub fn sso_url(ctx: &RunContext, path: &str) -> Result<String> {
    if ctx.base_url().host_str() == Some(SITE_HOST) {
        Ok(format!("{SSO_ORIGIN}{path}"))
    } else {
        ctx.url(path)
    }
}

/// The query of a [`DOCUMENT`] download, in the site's order.
pub fn document_query<'a>(
    csrf: &'a str,
    dn: &'a str,
    pn: &'a str,
    di: &'a str,
    bn: &'a str,
    an: &'a str,
) -> [(&'static str, &'a str); 6] {
    [
        ("csrfToken", csrf),
        ("dn", dn),
        ("pn", pn),
        ("di", di),
        ("bn", bn),
        ("an", an),
    ]
}
