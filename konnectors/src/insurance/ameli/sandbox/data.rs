//! The account's data: `fixtures/ameli/payments.json` (embedded at compile
//! time), the statements' PDFs, and how the payments portlet renders them
//! (the list's JSON answer, a payment's detail page).

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

/// The fixture file, shared with the tests and the bank sandbox generator.
pub const PAYMENTS_JSON: &str = include_str!("../../../../../fixtures/ameli/payments.json");

/// The statements, by payment id (made by `fixtures/ameli/make_pdfs.py`).
const PDFS: [(&str, &[u8]); 6] = [
    (
        "8F3A2C91D4E07B55A1C6",
        include_bytes!("../../../../../fixtures/ameli/pdf/8F3A2C91D4E07B55A1C6.pdf"),
    ),
    (
        "51B7E0A9C3F2D8164E2B",
        include_bytes!("../../../../../fixtures/ameli/pdf/51B7E0A9C3F2D8164E2B.pdf"),
    ),
    (
        "C04D9E6A7B21F385D0A7",
        include_bytes!("../../../../../fixtures/ameli/pdf/C04D9E6A7B21F385D0A7.pdf"),
    ),
    (
        "7E92B3D05A6C14F8E93D",
        include_bytes!("../../../../../fixtures/ameli/pdf/7E92B3D05A6C14F8E93D.pdf"),
    ),
    (
        "2A6F8C1E9D04B7735C18",
        include_bytes!("../../../../../fixtures/ameli/pdf/2A6F8C1E9D04B7735C18.pdf"),
    ),
    (
        "E5C13B7F20A98D46B2F1",
        include_bytes!("../../../../../fixtures/ameli/pdf/E5C13B7F20A98D46B2F1.pdf"),
    ),
];

/// The statement PDF of payment `id`.
pub fn pdf(id: &str) -> Option<&'static [u8]> {
    PDFS.iter().find(|(p, _)| *p == id).map(|(_, bytes)| *bytes)
}

/// The whole fixture.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// The insured.
    pub insured: Insured,
    /// Payments per list page.
    pub page_size: usize,
    /// Every payment, newest first.
    pub payments: Vec<Payment>,
}

/// The insured person.
#[derive(Debug, Clone, Deserialize)]
pub struct Insured {
    /// Name as the site writes it.
    pub name: String,
    /// The 15-digit NIR.
    pub nir: String,
    /// Where security codes go.
    pub email: String,
    /// The address as the code form shows it.
    pub email_hint: String,
}

/// One payment.
#[derive(Debug, Clone, Deserialize)]
pub struct Payment {
    /// `idPaiement`.
    pub id: String,
    /// The payment date.
    pub date: NaiveDate,
    /// `naturePaiement`.
    pub nature: String,
    /// The list's label.
    pub label: String,
    /// The amount, `12.34`.
    pub amount: String,
    /// Its acts.
    pub acts: Vec<Act>,
}

/// One act of a payment.
#[derive(Debug, Clone, Deserialize)]
pub struct Act {
    /// Who received the care.
    pub beneficiary: String,
    /// When.
    pub care_date: NaiveDate,
    /// What.
    pub act: String,
    /// Paid to the professional.
    pub paid: String,
    /// Reimbursement base.
    pub base: String,
    /// Rate in percent.
    pub rate: u32,
    /// Refund before the participation.
    pub gross: String,
    /// Participation forfaitaire withheld (`0.00`: none).
    pub participation: String,
}

impl Fixture {
    /// Reads the embedded fixture.
    pub fn load() -> std::io::Result<Fixture> {
        serde_json::from_str(PAYMENTS_JSON).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("fixtures/ameli/payments.json: {e}"),
            )
        })
    }

    /// The first 13 characters of the NIR: what the login form takes.
    pub fn nir13(&self) -> String {
        self.insured.nir.chars().take(13).collect()
    }
}

/// `12.34` as the site writes it: `12,34 €`.
pub fn euros(amount: &str) -> String {
    format!("{} €", amount.replace('.', ","))
}

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

fn month_name(d: NaiveDate) -> &'static str {
    MONTHS
        .get(d.month0() as usize)
        .copied()
        .unwrap_or("janvier")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The statement's URL, as the list and the detail link it.
pub fn pdf_href(id: &str) -> String {
    format!("/PortailAS/paiements.do?actionEvt=telechargerDecompte&amp;idPaiement={id}")
}

/// How the list is drawn: as the site, or redesigned (`changed-markup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// The site's markup.
    Real,
    /// The list's `ul#unordered_list` became `ol#listePaiements`.
    Redesigned,
}

/// The HTML of one list page: `payments` (already windowed) from `offset`,
/// with the next-page button when more follow.
pub fn list_html(payments: &[&Payment], offset: usize, page_size: usize, markup: Markup) -> String {
    let mut html = String::from("<div id=\"tableauPaiement\">\n");
    let end = (offset + page_size.max(1)).min(payments.len());
    let slice = payments.get(offset..end).unwrap_or_default();
    if slice.is_empty() {
        html.push_str("<ul id=\"unordered_list\"></ul>\n<p class=\"aucunPaiement\">Aucun paiement sur la période.</p>\n");
        html.push_str("</div>\n");
        return html;
    }
    let (open, close) = match markup {
        Markup::Real => ("<ul id=\"unordered_list\">", "</ul>"),
        Markup::Redesigned => ("<ol id=\"listePaiements\" class=\"paiements\">", "</ol>"),
    };
    html.push_str(open);
    html.push('\n');
    let mut month: Option<(i32, u32)> = None;
    let mut group: usize = 0;
    for (i, p) in slice.iter().enumerate() {
        let index = offset + i;
        let key = (p.date.year(), p.date.month());
        if month != Some(key) {
            if month.is_some() {
                group += 1;
            }
            month = Some(key);
            let _ = writeln!(
                html,
                "  <li class=\"rowdate\"><span class=\"mois\">{} {}</span></li>",
                month_name(p.date),
                p.date.year()
            );
        }
        let _ = writeln!(
            html,
            "  <li class=\"rowitem\" id=\"lignePaiement{group}_{index}\" onclick=\"chargerDetailPaiement('{id}','{nature}','{group}','{index}')\">\n    <div class=\"col-date\"><span class=\"jour\">{day:02}</span> <span class=\"mois\">{month}</span></div>\n    <div class=\"col-label\">{label}</div>\n    <div class=\"col-montant\"><span>{amount}</span></div>\n    <div class=\"col-download\"><a class=\"downdetail\" id=\"liendowndecompte{group}_{index}\" href=\"{href}\">Télécharger le décompte</a></div>\n  </li>",
            id = p.id,
            nature = p.nature,
            day = p.date.day(),
            month = month_name(p.date),
            label = escape(&p.label),
            amount = euros(&p.amount),
            href = pdf_href(&p.id),
        );
    }
    html.push_str(close);
    html.push('\n');
    if end < payments.len() {
        let _ = writeln!(
            html,
            "<button type=\"button\" class=\"boutonPaiementsSuivants\" data-index-paiement=\"{end}\">Afficher les paiements suivants</button>"
        );
    }
    html.push_str("</div>\n");
    html
}

fn fr_date(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// A payment's detail page: the header with the statement link, then per
/// beneficiary (in the order of the acts) a name container, the table of
/// acts and, when some were withheld, the participations.
pub fn detail_html(p: &Payment, group: &str, index: &str) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Détail du paiement</title></head><body>\n<div class=\"detailpaiement\">\n",
    );
    let to = if p.nature == "PAIEMENT_A_UN_TIERS" {
        "versé à un professionnel de santé"
    } else {
        "versé sur votre compte"
    };
    let _ = writeln!(
        html,
        "<div class=\"container entete\"><h2>Paiement effectué le {} pour un montant de {} ({to})</h2>\n  <a id=\"liendowndecompte{group}_{index}\" href=\"{}\">Télécharger le décompte</a></div>",
        fr_date(p.date),
        euros(&p.amount),
        pdf_href(&p.id)
    );
    let mut beneficiaries: Vec<&str> = Vec::new();
    for act in &p.acts {
        if !beneficiaries.contains(&act.beneficiary.as_str()) {
            beneficiaries.push(&act.beneficiary);
        }
    }
    for (b, name) in beneficiaries.iter().enumerate() {
        let _ = writeln!(
            html,
            "<div class=\"container\"><span class=\"beneficiaire\">Bénéficiaire : </span><span id=\"nomBeneficiaire{b}\">{}</span></div>",
            escape(name)
        );
        html.push_str("<div class=\"container\"><table class=\"tableauPrestations\">\n  <tr><th>Nature et date des soins</th><th>Montant payé</th><th>Base de remboursement</th><th>Taux</th><th>Montant versé</th></tr>\n");
        let acts: Vec<&Act> = p.acts.iter().filter(|a| a.beneficiary == *name).collect();
        for (i, a) in acts.iter().enumerate() {
            let _ = writeln!(
                html,
                "  <tr><td id=\"Nature{b}_{i}\"><span class=\"naturePrestation\">{}</span><br>{}</td><td id=\"montantPaye{b}_{i}\">{}</td><td id=\"baseRemboursement{b}_{i}\">{}</td><td id=\"taux{b}_{i}\">{} %</td><td id=\"montantVerse{b}_{i}\">{}</td></tr>",
                escape(&a.act),
                fr_date(a.care_date),
                euros(&a.paid),
                euros(&a.base),
                a.rate,
                euros(&a.gross)
            );
        }
        html.push_str("</table></div>\n");
        let withheld: Vec<&&Act> = acts.iter().filter(|a| a.participation != "0.00").collect();
        if !withheld.is_empty() {
            html.push_str("<div class=\"container\"><table class=\"tableauPFF\">\n  <tr><th>Participation forfaitaire</th><th>Date des soins</th><th>Montant</th></tr>\n");
            for (i, a) in withheld.iter().enumerate() {
                let _ = writeln!(
                    html,
                    "  <tr><td id=\"naturePFF{b}_{i}\">Participation forfaitaire</td><td id=\"dateActePFF{b}_{i}\">{}</td><td id=\"montantVersePFF{b}_{i}\">-{}</td></tr>",
                    fr_date(a.care_date),
                    euros(&a.participation)
                );
            }
            html.push_str("</table></div>\n");
        }
    }
    html.push_str("</div>\n</body></html>\n");
    html
}
