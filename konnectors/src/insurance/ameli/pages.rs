//! compte ameli pages: extraction only, no HTTP.
//!
//! Each function takes an [`HtmlPage`] (or the payments portlet's JSON
//! answer) and returns provider structs. A missing element is an
//! `UNKNOWN_ERROR.PAGE_CHANGED` error naming the selector and the page,
//! never an empty list.
//!
//! The selectors are the real portal's, as Cozy's konnector (`src/index.js`:
//! `ul#unordered_list`, `.rowdate .mois`, `.col-date`, `.col-montant span`,
//! the `onclick` of a payment line, `[id^=liendowndecompte]`,
//! `[id^=nomBeneficiaire]`, `[id^=montantVerse]`, `[id^=dateActePFF]`...)
//! and Woob's `ameli` module (`pages.py`: the login form
//! `#connexioncompte_2connexionCompteForm`, the visible `div.zone-alerte`,
//! `div.compte_bloque p.msg_erreur`, `authStep`) read them.

use chrono::NaiveDate;
use gleaner_framework::filters::{parse_amount, parse_date, parse_month_year_fr};
use gleaner_framework::scrape::{HtmlPage, text};
use gleaner_framework::{KonnectorError, Result};
use rust_decimal::Decimal;
use scraper::ElementRef;

/// The form id of the login form (and of the emailed-code steps).
pub const LOGIN_FORM: &str = "form#connexioncompte_2connexionCompteForm";

/// The logout link every logged-in page has (Cozy's login check).
pub const LOGOUT_LINK: &str = r#"a[title="Déconnexion du compte ameli"]"#;

/// What a page of the portal is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageKind {
    /// A logged-in page (the logout link is there).
    LoggedIn,
    /// The login form, at some step, with the alert shown above it.
    Login(LoginForm),
    /// "Compte bloqué": too many wrong passwords.
    Blocked {
        /// What the page says.
        message: String,
    },
    /// The "compte indisponible" page (`/vu/INDISPO_COMPTE_ASSURES.html`).
    Unavailable {
        /// What the page says.
        message: String,
    },
    /// A redirect to the terms of use to accept
    /// (`as_conditions_generales_page`).
    TermsToAccept,
}

/// The login form as a page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginForm {
    /// The hidden `authStep`: empty (credentials), `OTP_NECESSAIRE` (a new
    /// device: a code must be asked for), `SAISIE_OTP` (type the emailed
    /// code), `KO_SAISIE_OTP` (the code was wrong)...
    pub step: String,
    /// The visible alert (`div.zone-alerte` without `invisible`), if any.
    pub alert: Option<String>,
    /// Where the code goes, as shown (`c***n@example.org`).
    pub hint: Option<String>,
}

/// Tells which page this is. A page that is none of them means the site
/// changed.
pub fn classify(page: &HtmlPage) -> Result<PageKind> {
    if page.exists("div#indisponibilite")? {
        let message = page
            .text_of("div#indisponibilite div.mobile p")
            .unwrap_or_default();
        return Ok(PageKind::Unavailable { message });
    }
    if page.exists("div.compte_bloque")? {
        let message = page
            .text_of("div.compte_bloque p.msg_erreur")
            .or_else(|_| page.text_of("div.compte_bloque h1"))
            .unwrap_or_default();
        return Ok(PageKind::Blocked { message });
    }
    if page.exists(LOGOUT_LINK)? {
        return Ok(PageKind::LoggedIn);
    }
    if page.exists(LOGIN_FORM)? {
        let form = page.select_one(LOGIN_FORM)?;
        let step = page
            .within_all(form, "input#authStep")?
            .first()
            .and_then(|el| el.value().attr("value"))
            .unwrap_or_default()
            .to_owned();
        let alert = page
            .select_any("div.zone-alerte")?
            .into_iter()
            .filter(|el| !el.value().classes().any(|c| c == "invisible" || c == "hidden"))
            .map(text)
            .find(|t| !t.is_empty());
        let hint = page
            .select_any(".otp-destinataire strong")?
            .first()
            .map(|el| text(*el))
            .filter(|t| !t.is_empty());
        return Ok(PageKind::Login(LoginForm { step, alert, hint }));
    }
    for meta in page.select_any(r#"meta[http-equiv="refresh"]"#)? {
        if meta
            .value()
            .attr("content")
            .is_some_and(|c| c.contains("as_conditions_generales_page"))
        {
            return Ok(PageKind::TermsToAccept);
        }
    }
    Err(KonnectorError::page_changed(format!(
        "{} is neither the login form ({LOGIN_FORM}), a logged-in page (the logout link), the blocked account page nor the unavailability page",
        page.url()
    )))
}

/// The payments portlet's answer: a JSON object whose `tableauPaiement` is
/// the HTML of the list (Cozy: `reqNoCheerio.tableauPaiement`; Woob:
/// `res["tableauPaiement"]`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PaymentsAnswer {
    /// The list's HTML.
    #[serde(rename = "tableauPaiement")]
    pub table: String,
}

/// One line of the payments list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// `idPaiement`, from the line's `onclick`.
    pub id: String,
    /// `naturePaiement`: `REMBOURSEMENT_SOINS` (paid to the insured),
    /// `PAIEMENT_A_UN_TIERS` (paid to a professional, *tiers payant*),
    /// `INDEMNITE_JOURNALIERE_ASSURE`...
    pub nature: String,
    /// `indexGroupe`, from the `onclick`.
    pub group_index: String,
    /// `indexPaiement`, from the `onclick`.
    pub payment_index: String,
    /// The payment date.
    pub date: NaiveDate,
    /// The line's label.
    pub label: String,
    /// The amount paid.
    pub amount: Decimal,
    /// The statement (décompte) PDF, absolute.
    pub pdf_url: Option<String>,
}

/// One page of the payments list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentsPage {
    /// Its payments, newest first.
    pub rows: Vec<PaymentRow>,
    /// The `indexPaiement` of the next page, when the "more payments"
    /// button is shown.
    pub next_index: Option<u32>,
}

/// Parses one page of the payments list (the HTML of `tableauPaiement`).
pub fn parse_payments(page: &HtmlPage) -> Result<PaymentsPage> {
    let list = page.select_one("ul#unordered_list")?;
    let mut year: Option<i32> = None;
    let mut rows = Vec::new();
    for li in page.within_all(list, "li")? {
        let classes: Vec<&str> = li.value().classes().collect();
        if classes.contains(&"rowdate") {
            let month = text(page.within(li, "span.mois")?);
            let first = parse_month_year_fr(&month).map_err(|e| in_page(page, e))?;
            year = Some(chrono::Datelike::year(&first));
        } else if classes.contains(&"rowitem") {
            let Some(year) = year else {
                return Err(KonnectorError::page_changed(format!(
                    "a payment line comes before any month heading (li.rowdate) on {}",
                    page.url()
                )));
            };
            rows.push(parse_row(page, li, year)?);
        }
    }
    if rows.is_empty() && !page.exists("p.aucunPaiement")? {
        return Err(KonnectorError::page_changed(format!(
            "no element matches \"li.rowitem\" on {} and no empty-list notice (p.aucunPaiement) is shown",
            page.url()
        )));
    }
    let next_index = match page
        .select_any("button.boutonPaiementsSuivants")?
        .first()
    {
        None => None,
        Some(button) => {
            let raw = page.attr(*button, "data-index-paiement")?;
            Some(raw.trim().parse::<u32>().map_err(|_| {
                KonnectorError::page_changed(format!(
                    "the next-payments button on {} has the index \"{raw}\", not a number",
                    page.url()
                ))
            })?)
        }
    };
    Ok(PaymentsPage { rows, next_index })
}

fn parse_row(page: &HtmlPage, li: ElementRef<'_>, year: i32) -> Result<PaymentRow> {
    let day = text(page.within(li, "div.col-date span.jour")?);
    let month = text(page.within(li, "div.col-date span.mois")?);
    let date = parse_date(&format!("{day} {month} {year}")).map_err(|e| in_page(page, e))?;
    let amount = parse_amount(&text(page.within(li, "div.col-montant span")?))
        .map_err(|e| in_page(page, e))?
        .value
        .abs();
    let onclick = page.attr(li, "onclick")?;
    // chargerDetailPaiement('<id>','<nature>','<groupe>','<index>')
    let tokens: Vec<&str> = onclick.split('\'').collect();
    let token = |i: usize| {
        tokens
            .get(i)
            .map(|s| (*s).to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                KonnectorError::page_changed(format!(
                    "a payment line's onclick on {} does not name the payment (idPaiement, naturePaiement, indexGroupe, indexPaiement)",
                    page.url()
                ))
            })
    };
    let pdf_url = match page
        .within_all(li, r#"a.downdetail, a[id^="liendowndecompte"]"#)?
        .first()
    {
        Some(a) => Some(page.absolute_url(&page.attr(*a, "href")?)?),
        None => None,
    };
    Ok(PaymentRow {
        id: token(1)?,
        nature: token(3)?,
        group_index: token(5)?,
        payment_index: token(7)?,
        date,
        label: text(page.within(li, "div.col-label")?),
        amount,
        pdf_url,
    })
}

/// One act of a payment's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Act {
    /// Who received the care.
    pub beneficiary: String,
    /// The care date.
    pub care_date: NaiveDate,
    /// The act (`.naturePrestation`).
    pub label: String,
    /// What was paid to the professional (`montantPaye`).
    pub paid: Decimal,
    /// The reimbursement base (`baseRemboursement`).
    pub base: Decimal,
    /// The rate, in percent (`taux`).
    pub rate: Option<u32>,
    /// What the insurance paid for the act (`montantVerse`), before the
    /// *participation forfaitaire*.
    pub gross: Decimal,
    /// The *participation forfaitaire* withheld for this act (positive).
    pub participation: Decimal,
}

impl Act {
    /// What the insurance refunded in the end: the gross refund minus the
    /// participation withheld.
    pub fn refund(&self) -> Decimal {
        self.gross - self.participation
    }
}

/// A payment's detail page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDetail {
    /// The statement link of the header (`.entete [id^=liendowndecompte]`).
    pub pdf_url: Option<String>,
    /// Every act, per beneficiary in page order.
    pub acts: Vec<Act>,
    /// Participations that match no act (beneficiary and date), as
    /// (date, amount): kept aside and reported.
    pub unmatched_participations: Vec<(NaiveDate, Decimal)>,
}

/// Parses a payment's detail (`chargerDetailPaiements`): containers
/// `div.container` after the header, each either a beneficiary's name
/// (`[id^=nomBeneficiaire]`), the table of that beneficiary's acts, or the
/// *participations forfaitaires* withheld (`[id^=naturePFF]`), which are
/// netted from the act of the same beneficiary and date.
pub fn parse_detail(page: &HtmlPage) -> Result<PaymentDetail> {
    let header = page.select_one("div.entete")?;
    let pdf_url = match page
        .within_all(header, r#"[id^="liendowndecompte"]"#)?
        .first()
    {
        Some(a) => Some(page.absolute_url(&page.attr(*a, "href")?)?),
        None => None,
    };
    let mut acts: Vec<Act> = Vec::new();
    let mut unmatched = Vec::new();
    let mut current: Option<String> = None;
    let mut last: Option<String> = None;
    for container in page.select_any("div.container")? {
        if container.value().classes().any(|c| c == "entete") {
            continue;
        }
        if let Some(name) = page
            .within_all(container, r#"[id^="nomBeneficiaire"]"#)?
            .first()
        {
            current = Some(text(*name));
            continue;
        }
        if let Some(beneficiary) = current.take() {
            for row in page.within_all(container, "tr")? {
                if !page.within_all(row, "th")?.is_empty() {
                    continue;
                }
                acts.push(parse_act(page, row, &beneficiary)?);
            }
            last = Some(beneficiary);
            continue;
        }
        for row in page.within_all(container, "tr")? {
            if !page.within_all(row, "th")?.is_empty() {
                continue;
            }
            let date = parse_date(&text(page.within(row, r#"[id^="dateActePFF"]"#)?))
                .map_err(|e| in_page(page, e))?;
            let amount = amount_in(page, row, r#"[id^="montantVerse"]"#)?.abs();
            let target = acts.iter_mut().rev().find(|a| {
                a.care_date == date && last.as_deref().is_none_or(|b| a.beneficiary == b)
            });
            match target {
                Some(act) => act.participation += amount,
                None => unmatched.push((date, amount)),
            }
        }
    }
    if acts.is_empty() {
        return Err(KonnectorError::page_changed(format!(
            "no act (a beneficiary [id^=nomBeneficiaire] followed by its table of acts) on {}",
            page.url()
        )));
    }
    Ok(PaymentDetail {
        pdf_url,
        acts,
        unmatched_participations: unmatched,
    })
}

fn parse_act(page: &HtmlPage, row: ElementRef<'_>, beneficiary: &str) -> Result<Act> {
    let nature = page.within(row, r#"[id^="Nature"]"#)?;
    let label = text(page.within(nature, ".naturePrestation")?);
    // "<span class=naturePrestation>…</span><br>dd/mm/yyyy": the date ends it.
    let all = text(nature);
    let tail: String = all
        .chars()
        .rev()
        .take(10)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let care_date = parse_date(&tail).map_err(|e| in_page(page, e))?;
    let rate = text(page.within(row, r#"[id^="taux"]"#)?)
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse::<u32>()
        .ok();
    Ok(Act {
        beneficiary: beneficiary.to_owned(),
        care_date,
        label,
        paid: amount_in(page, row, r#"[id^="montantPaye"]"#)?,
        base: amount_in(page, row, r#"[id^="baseRemboursement"]"#)?,
        rate,
        gross: amount_in(page, row, r#"[id^="montantVerse"]"#)?,
        participation: Decimal::ZERO,
    })
}

fn amount_in(page: &HtmlPage, el: ElementRef<'_>, selector: &str) -> Result<Decimal> {
    let cell = page.within(el, selector)?;
    Ok(parse_amount(&text(cell))
        .map_err(|e| in_page(page, e))?
        .value)
}

fn in_page(page: &HtmlPage, e: KonnectorError) -> KonnectorError {
    let locator = e.locator;
    let mut wrapped = KonnectorError::page_changed(format!("{} on {}", e.message, page.url()));
    wrapped.locator = locator;
    wrapped
}

/// Fixture pages for the tests of this module and of [`super::auth`]: the
/// templates of `fixtures/ameli/`, filled as the site fills them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testing {
    use gleaner_framework::scrape::HtmlPage;

    /// The portal's login URL, as the pages are served from.
    pub const BASE: &str = "https://assure.ameli.fr/PortailAS/appmanager/PortailAS/assure";

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../fixtures/ameli/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// A fixture page as is.
    pub fn page(name: &str) -> HtmlPage {
        HtmlPage::parse(BASE, &read(name))
    }

    /// The login page at `step` (`""`, `OTP_NECESSAIRE`, `SAISIE_OTP`,
    /// `KO_SAISIE_OTP`) with `alert`.
    pub fn login(step: &str, alert: Option<&str>) -> HtmlPage {
        let fields = match step {
            "OTP_NECESSAIRE" => read("login_fields_otp_needed.html"),
            "SAISIE_OTP" | "KO_SAISIE_OTP" => read("login_fields_otp_entry.html"),
            _ => read("login_fields_credentials.html"),
        };
        let html = read("login.html")
            .replace("{{fields}}", &fields)
            .replace("{{step}}", step)
            .replace("{{alert_class}}", if alert.is_some() { "" } else { "invisible" })
            .replace("{{alert}}", alert.unwrap_or(""))
            .replace("{{hint}}", "c***n@example.org");
        HtmlPage::parse(BASE, &html)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::testing::{BASE, login, page};
    use super::*;
    use gleaner_framework::ErrorCode;

    #[test]
    fn classifies_every_page() {
        assert_eq!(
            classify(&login("", None)).unwrap(),
            PageKind::Login(LoginForm {
                step: String::new(),
                alert: None,
                hint: None
            })
        );
        match classify(&login("", Some("Le numéro de sécurité sociale et le code personnel ne correspondent pas."))).unwrap() {
            PageKind::Login(form) => assert!(form.alert.unwrap().contains("ne correspondent pas")),
            other => panic!("{other:?}"),
        }
        match classify(&login("OTP_NECESSAIRE", None)).unwrap() {
            PageKind::Login(form) => {
                assert_eq!(form.step, "OTP_NECESSAIRE");
                assert_eq!(form.hint.as_deref(), Some("c***n@example.org"));
            }
            other => panic!("{other:?}"),
        }
        match classify(&login("KO_SAISIE_OTP", Some("Le code de sécurité saisi est incorrect."))).unwrap() {
            PageKind::Login(form) => {
                assert_eq!(form.step, "KO_SAISIE_OTP");
                assert!(form.alert.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(&page("accueil.html")).unwrap(), PageKind::LoggedIn);
        match classify(&page("blocked.html")).unwrap() {
            PageKind::Blocked { message } => assert!(message.contains("bloqué"), "{message}"),
            other => panic!("{other:?}"),
        }
        match classify(&page("maintenance.html")).unwrap() {
            PageKind::Unavailable { message } => {
                assert!(message.contains("maintenance"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let cgu = HtmlPage::parse(
            BASE,
            r#"<html><head><meta http-equiv="refresh" content="0; url=/PortailAS/appmanager/PortailAS/assure?_nfpb=true&_pageLabel=as_conditions_generales_page"></head><body></body></html>"#,
        );
        assert_eq!(classify(&cgu).unwrap(), PageKind::TermsToAccept);
        let other = HtmlPage::parse(BASE, "<html><body><h1>Bienvenue</h1></body></html>");
        assert_eq!(classify(&other).unwrap_err().code, ErrorCode::PageChanged);
    }

    #[cfg(feature = "sandbox")]
    mod rendered {
        use super::*;
        use crate::insurance::ameli::sandbox::data::{Fixture, Markup, detail_html, list_html};

        fn list(offset: usize, markup: Markup) -> HtmlPage {
            let fixture = Fixture::load().unwrap();
            let all: Vec<_> = fixture.payments.iter().collect();
            HtmlPage::parse(
                "https://assure.ameli.fr/PortailAS/paiements.do",
                &list_html(&all, offset, fixture.page_size, markup),
            )
        }

        #[test]
        fn parses_both_pages_of_the_payments_list() {
            let first = parse_payments(&list(0, Markup::Real)).unwrap();
            assert_eq!(first.rows.len(), 4);
            assert_eq!(first.next_index, Some(4));
            let newest = &first.rows[0];
            assert_eq!(newest.id, "8F3A2C91D4E07B55A1C6");
            assert_eq!(newest.nature, "REMBOURSEMENT_SOINS");
            assert_eq!(newest.date, NaiveDate::from_ymd_opt(2025, 12, 8).unwrap());
            assert_eq!(newest.amount, Decimal::new(3360, 2));
            assert_eq!(newest.payment_index, "0");
            assert_eq!(
                newest.pdf_url.as_deref(),
                Some("https://assure.ameli.fr/PortailAS/paiements.do?actionEvt=telechargerDecompte&idPaiement=8F3A2C91D4E07B55A1C6")
            );
            let second = parse_payments(&list(4, Markup::Real)).unwrap();
            assert_eq!(second.rows.len(), 2);
            assert_eq!(second.next_index, None);
            assert_eq!(second.rows[0].nature, "PAIEMENT_A_UN_TIERS");
            assert_eq!(second.rows[0].date, NaiveDate::from_ymd_opt(2025, 7, 24).unwrap());
            assert_eq!(second.rows[1].payment_index, "5");
        }

        #[test]
        fn an_empty_window_is_an_empty_list_not_a_changed_page() {
            let empty = parse_payments(&list(99, Markup::Real)).unwrap();
            assert!(empty.rows.is_empty());
            assert_eq!(empty.next_index, None);
        }

        #[test]
        fn a_redesigned_list_is_a_changed_page_naming_the_selector() {
            let err = parse_payments(&list(0, Markup::Redesigned)).unwrap_err();
            assert_eq!(err.code, ErrorCode::PageChanged);
            assert!(err.message.contains("ul#unordered_list"), "{}", err.message);
        }

        #[test]
        fn a_detail_nets_each_participation_from_its_act() {
            let fixture = Fixture::load().unwrap();
            let september = fixture
                .payments
                .iter()
                .find(|p| p.id == "7E92B3D05A6C14F8E93D")
                .unwrap();
            let page = HtmlPage::parse(
                "https://assure.ameli.fr/PortailAS/paiements.do",
                &detail_html(september, "2", "3"),
            );
            let detail = parse_detail(&page).unwrap();
            assert!(detail.unmatched_participations.is_empty());
            assert_eq!(detail.acts.len(), 2);
            let louise = &detail.acts[0];
            assert_eq!(louise.beneficiary, "Louise MARTIN");
            assert_eq!(louise.label, "Consultation pédiatre");
            assert_eq!(louise.care_date, NaiveDate::from_ymd_opt(2025, 9, 8).unwrap());
            assert_eq!(louise.paid, Decimal::new(3200, 2));
            assert_eq!(louise.rate, Some(70));
            assert_eq!(louise.gross, Decimal::new(2240, 2));
            assert_eq!(louise.participation, Decimal::new(200, 2));
            assert_eq!(louise.refund(), Decimal::new(2040, 2));
            let camille = &detail.acts[1];
            assert_eq!(camille.beneficiary, "Camille MARTIN");
            assert_eq!(camille.refund(), Decimal::new(1900, 2));
            assert!(detail.pdf_url.unwrap().ends_with("idPaiement=7E92B3D05A6C14F8E93D"));

            // Every payment of the fixture reads back to its refunds.
            for p in &fixture.payments {
                let page = HtmlPage::parse(BASE, &detail_html(p, "0", "0"));
                let detail = parse_detail(&page).unwrap();
                let total: Decimal = detail.acts.iter().map(Act::refund).sum();
                assert_eq!(total.to_string(), p.amount, "{}", p.id);
            }
        }

        #[test]
        fn a_detail_without_acts_is_a_changed_page() {
            let page = HtmlPage::parse(
                BASE,
                r#"<div class="container entete"><h2>Paiement</h2></div><div class="container"><p>rien</p></div>"#,
            );
            assert_eq!(parse_detail(&page).unwrap_err().code, ErrorCode::PageChanged);
        }
    }
}
