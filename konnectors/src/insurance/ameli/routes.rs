//! The compte ameli site map: every URL the konnector visits, and every
//! form field and query parameter it sends, in one place.
//!
//! All paths are relative to the base URL (`https://assure.ameli.fr`, or a
//! sandbox on loopback). The portal is a WebLogic portal: pages are
//! `/PortailAS/appmanager/PortailAS/assure?_nfpb=true&_pageLabel=<page>`,
//! and the payments portlet answers under `/PortailAS/paiements.do`.

use chrono::NaiveDate;

/// The portal's page path (login form, home, payments page...).
pub const PORTAL: &str = "/PortailAS/appmanager/PortailAS/assure";

/// The login page (Cozy's `loginUrl`): sets the session cookie and shows
/// the form `#connexioncompte_2connexionCompteForm`.
pub const LOGIN_PAGE: &str = "/PortailAS/appmanager/PortailAS/assure?_nfpb=true&_pageLabel=as_login_page&connexioncompte_2actionEvt=afficher";

/// Where the login form posts (its `action`, as Woob's login URL pattern
/// `validationconnexioncompte` has it). The emailed-code steps post here
/// too.
pub const LOGIN_POST: &str = "/PortailAS/appmanager/PortailAS/assure?_nfpb=true&_windowLabel=connexioncompte_2&connexioncompte_2_actionOverride=%2Fportlets%2Fconnexioncompte%2Fvalidationconnexioncompte&_pageLabel=as_login_page";

/// The payments page ("Mes paiements"), the landing page after login in
/// Cozy's konnector.
pub const PAYMENTS_PAGE: &str =
    "/PortailAS/appmanager/PortailAS/assure?_nfpb=true&_pageLabel=as_paiements_page";

/// The anti-CSRF token servlet: `POST` with [`CSRF_HEADER`] answers
/// `_ct:<token>`, sent back as the `_ct` form field and header.
pub const CSRF: &str = "/PortailAS/JavaScriptServlet";

/// The header that asks [`CSRF`] for a token (value `1`).
pub const CSRF_HEADER: &str = "FETCH-CSRF-TOKEN";

/// The name of the anti-CSRF token, as form field and as header.
pub const CT: &str = "_ct";

/// The payments portlet.
pub const PAYMENTS: &str = "/PortailAS/paiements.do";

/// The login form's field names.
pub mod form {
    /// The social security number (13 characters: the NIR without its key).
    pub const NIR: &str = "connexioncompte_2numSecuriteSociale";
    /// The password ("code personnel").
    pub const PASSWORD: &str = "connexioncompte_2codeConfidentiel";
    /// The portlet event: `connecter`.
    pub const ACTION: (&str, &str) = ("connexioncompte_2actionEvt", "connecter");
    /// The submit button, as the browser sends it.
    pub const SUBMIT: (&str, &str) = ("submit", "me connecter");
    /// The login step (`OTP_NECESSAIRE`, `SAISIE_OTP`...), a hidden input.
    pub const AUTH_STEP: &str = "authStep";
    /// The step posted to have the security code emailed.
    pub const SEND_CODE_STEP: &str = "ENVOI_OTP";
    /// The button that asks for the code.
    pub const SEND_CODE: (&str, &str) = ("envoiOTP", "Recevoir un code");
    /// The six code digits are `numOTP1` ... `numOTP6`.
    pub const CODE_DIGIT_PREFIX: &str = "numOTP";
    /// "Remember this device" (`trustConnect0` cookie), ticked.
    pub const TRUST_DEVICE: (&str, &str) = ("enrolerDevice", "on");
}

/// The payments list for `from..=to`, `index` being the paging index the
/// last answer gave (`None` for the first page). Cozy's
/// `afficherPaiementsComplementaires` call, with Woob's date window.
pub fn payments_list(from: NaiveDate, to: NaiveDate, index: Option<u32>) -> String {
    let index = index.map(|i| i.to_string()).unwrap_or_default();
    format!(
        "{PAYMENTS}?actionEvt=afficherPaiementsComplementaires&DateDebut={}&DateFin={}&Beneficiaire=tout_selectionner&afficherReleves=false&afficherIJ=false&afficherPT=false&afficherInva=false&afficherRentes=false&afficherRS=false&indexPaiement={index}&idNotif=",
        fr_date(from),
        fr_date(to)
    )
}

/// The detail of one payment (Cozy's `getDetailsUrl`, without the
/// `idNoCache` timestamp).
pub fn payment_detail(
    id: &str,
    nature: &str,
    group_index: &str,
    payment_index: &str,
) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "{PAYMENTS}?actionEvt=chargerDetailPaiements&idPaiement={}&naturePaiement={}&indexGroupe={}&indexPaiement={}",
        enc(id),
        enc(nature),
        enc(group_index),
        enc(payment_index)
    )
}

/// `dd/mm/yyyy`, as the portal's date fields take it (URL-encoded).
fn fr_date(d: NaiveDate) -> String {
    d.format("%d%%2F%m%%2F%Y").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_list_url_carries_the_window_and_the_index() {
        let d = |m, day| NaiveDate::from_ymd_opt(2025, m, day).unwrap();
        let first = payments_list(d(1, 2), d(12, 31), None);
        assert!(first.contains("DateDebut=02%2F01%2F2025&DateFin=31%2F12%2F2025"));
        assert!(first.contains("&indexPaiement=&"));
        assert!(payments_list(d(1, 2), d(12, 31), Some(4)).contains("&indexPaiement=4&"));
    }
}
