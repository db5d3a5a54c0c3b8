//! The customer area's JSON services: their answers' types (field names as
//! EDF spells them, from Woob's `edf` module and Cozy's EDF konnector) and
//! one helper that GETs and decodes with the site's failures typed.
//!
//! Dates are JavaScript timestamps (milliseconds since 1970, the Paris
//! midnight of the day); amounts are strings or numbers depending on the
//! service, both accepted here ([`de_amount`]).

use gleaner_framework::http::{Response, display_url};
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext};
use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// `initPage`: the CSRF token the document downloads carry.
#[derive(Debug, Clone, Deserialize)]
pub struct InitPage {
    /// The token.
    pub data: String,
}

/// `getListContracts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractList {
    /// `0` when the session is accepted (Woob's `ProfilPage.logged`).
    pub error_code: serde_json::Value,
    /// Why the session was refused, when it was.
    #[serde(default)]
    pub error_message: Option<String>,
    /// The customer's contracts, one per customer account (`null` when
    /// the session is refused).
    #[serde(default)]
    pub customer_accord_contracts: Option<Vec<AccordContract>>,
}

impl ContractList {
    /// The customer accounts (none when the session was refused).
    pub fn accords(&self) -> &[AccordContract] {
        self.customer_accord_contracts
            .as_deref()
            .unwrap_or_default()
    }

    /// Whether the customer area accepted the session.
    pub fn logged(&self) -> bool {
        match &self.error_code {
            serde_json::Value::Number(n) => n.as_i64() == Some(0),
            serde_json::Value::String(s) => s.trim() == "0",
            _ => false,
        }
    }
}

/// A customer account ("accord") and its energy contracts.
#[derive(Debug, Clone, Deserialize)]
pub struct AccordContract {
    /// The customer account number (`004012345678`).
    pub number: String,
    /// Its address (EDF spells the key `adress`).
    #[serde(default)]
    pub adress: Option<Address>,
    /// The energy contracts of the account.
    #[serde(default)]
    pub contracts: Vec<Contract>,
    /// The business partner (the customer).
    #[serde(default)]
    pub bp: Option<BusinessPartner>,
}

/// An address.
#[derive(Debug, Clone, Deserialize)]
pub struct Address {
    /// The city.
    #[serde(default)]
    pub city: Option<String>,
}

/// One energy contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// The delivery point: PDL (electricity) or PCE (gas).
    pub pdlnumber: String,
    /// The offer.
    #[serde(default)]
    pub subscribe_offer: Option<Offer>,
}

/// A contract's offer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// `ELECTRICITE` or `GAZ`.
    #[serde(default)]
    pub energy: Option<String>,
    /// `Tarif Bleu`, ...
    #[serde(default)]
    pub offer_name: Option<String>,
}

/// The customer.
#[derive(Debug, Clone, Deserialize)]
pub struct BusinessPartner {
    /// Names.
    #[serde(default)]
    pub identity: Option<Identity>,
}

/// The customer's names.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
}

/// A business partner's numbers, as the document services give them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BpDto {
    /// The business partner number.
    pub bp_number: String,
    /// The same, encrypted: the `bn` of downloads.
    pub bp_number_crypt: String,
}

/// A customer account's numbers, as the document services give them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccDto {
    /// The customer account number.
    pub num_acc: String,
    /// The same, encrypted: the `an` of downloads.
    pub num_acc_crypt: String,
}

/// `getBillsDocuments`: one entry per business partner.
pub type BillsDocuments = Vec<BpBills>;

/// A business partner's invoices, per customer account.
#[derive(Debug, Clone, Deserialize)]
#[allow(non_snake_case)]
pub struct BpBills {
    /// The partner (absent: no bills, Cozy skips the entry).
    #[serde(default)]
    pub bpDto: Option<BpDto>,
    /// Per customer account.
    #[serde(default)]
    pub listOfBillsByAccDTO: Vec<AccBills>,
}

/// A customer account's invoices.
#[derive(Debug, Clone, Deserialize)]
#[allow(non_snake_case)]
pub struct AccBills {
    /// The account.
    pub accDTO: AccDto,
    /// Its invoices (EDF spells it `listOfbills`).
    pub listOfbills: Vec<BillDoc>,
}

/// One invoice.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillDoc {
    /// The invoice number (`di` of the download).
    pub document_number: String,
    /// `pn` of the download.
    pub par_number: String,
    /// The amount to pay; negative for a credit (a refund).
    #[serde(deserialize_with = "de_amount")]
    pub bill_amount: Decimal,
    /// Issue date, JavaScript timestamp.
    pub creation_date: i64,
}

/// `bill/consult`: the payment schedule of the contract on show.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillConsult {
    /// Names the contract (`tradeNumber`, the customer account).
    #[serde(default)]
    pub fe_souscription_response: Option<Souscription>,
    /// `MENS` when the customer pays monthly instalments.
    #[serde(default)]
    pub monthly_payment_allowed_status: Option<String>,
    /// The schedule, when there is one.
    #[serde(default)]
    pub payment_schedule: Option<PaymentSchedule>,
}

/// The contract a schedule is for.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Souscription {
    /// The customer account number.
    pub trade_number: String,
}

/// A payment schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSchedule {
    /// First deadline's day, JavaScript timestamp.
    pub start_date: i64,
    /// The instalments.
    pub deadlines: Vec<Deadline>,
}

/// One monthly instalment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deadline {
    /// The day it is (was) debited, JavaScript timestamp.
    pub encashment_date: i64,
    /// The electricity part.
    #[serde(deserialize_with = "de_amount")]
    pub electricity_amount: Decimal,
    /// The gas part.
    #[serde(deserialize_with = "de_amount")]
    pub gaz_amount: Decimal,
    /// `EFFECTUE` once paid (Cozy keeps only those), `A_VENIR` before.
    pub payment: String,
}

/// `getPaymentsDocuments`: one entry per business partner.
pub type PaymentsDocuments = Vec<BpPayments>;

/// A business partner's schedule documents.
#[derive(Debug, Clone, Deserialize)]
#[allow(non_snake_case)]
pub struct BpPayments {
    /// The partner.
    #[serde(default)]
    pub bpDto: Option<BpDto>,
    /// Per customer account.
    #[serde(default)]
    pub listOfPaymentsByAccDTO: Vec<AccPayments>,
}

/// A customer account's last schedule document.
#[derive(Debug, Clone, Deserialize)]
#[allow(non_snake_case)]
pub struct AccPayments {
    /// The account.
    pub accDTO: AccDto,
    /// The document (absent: none yet).
    #[serde(default)]
    pub lastPaymentDocument: Option<PaymentDocument>,
}

/// A payment-schedule document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDocument {
    /// `pn` of the download.
    pub par_number: String,
    /// `di` of the download.
    pub document_number: String,
    /// Issue date, JavaScript timestamp.
    pub creation_date: i64,
}

/// `monthly-elec-consumptions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyElec {
    /// One entry per month of the window that has data.
    pub monthly_elec_energies: Vec<MonthlyEnergy>,
}

/// One month's consumption.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyEnergy {
    /// `YYYY-MM`.
    pub month: String,
    /// The energy.
    pub consumption: Consumption,
}

/// Energy and cost.
#[derive(Debug, Clone, Deserialize)]
pub struct Consumption {
    /// kWh.
    #[serde(deserialize_with = "de_amount")]
    pub energy: Decimal,
}

/// An amount given as a JSON number or a string (`"64.30"`, `"-18,62"`),
/// read exactly (a number goes through its decimal text, never a float).
pub fn de_amount<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Decimal, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let text = match &v {
        serde_json::Value::String(s) => s.trim().replace(',', "."),
        serde_json::Value::Number(n) => n.to_string(),
        other => return Err(D::Error::custom(format!("expected an amount, got {other}"))),
    };
    text.parse::<Decimal>()
        .map_err(|e| D::Error::custom(format!("amount `{text}`: {e}")))
}

/// Whether a 2xx answer is EDF's maintenance page instead of the service.
pub fn is_maintenance(resp: &Response) -> bool {
    let html = resp.content_type().is_some_and(|t| t.contains("text/html"));
    html && resp.text().to_lowercase().contains("maintenance")
}

/// The error for EDF's maintenance page.
pub fn maintenance(resp: &Response) -> KonnectorError {
    KonnectorError::maintenance(format!(
        "{} shows EDF's maintenance page (\"{}\")",
        display_url(&resp.url),
        maintenance_message(&resp.text())
    ))
}

/// The maintenance page's headline, for the error message.
fn maintenance_message(html: &str) -> String {
    let start = html.find("<h1>").map(|i| i + 4);
    let end = html.find("</h1>");
    match (start, end) {
        (Some(s), Some(e)) if s < e => html[s..e].trim().to_owned(),
        _ => "maintenance".to_owned(),
    }
}

/// Turns an answer that is not the service's into a typed error:
/// maintenance page, refused session, other statuses.
pub fn check(resp: &Response) -> Result<()> {
    if is_maintenance(resp) {
        return Err(maintenance(resp));
    }
    let status = resp.status.as_u16();
    if resp.status.is_success() {
        return Ok(());
    }
    let url = display_url(&resp.url);
    Err(match status {
        401 | 403 => KonnectorError::vendor_down(format!(
            "{url} answered {status}: the customer area dropped the session"
        )),
        404 => KonnectorError::new(
            ErrorCode::PageChanged,
            format!("{url} answered 404: the service moved"),
        ),
        _ => KonnectorError::vendor_down(format!("{url} answered {status}")),
    })
}

/// GETs a service of the customer area and decodes its answer.
pub async fn get_json<T: DeserializeOwned>(ctx: &RunContext, url: &str) -> Result<T> {
    let resp = ctx
        .http()
        .get(url)
        .header("Accept", "application/json, text/plain, */*")
        .send()
        .await?;
    check(&resp)?;
    resp.json()
}

/// The monthly consumption of `pdl` from `begin` to `end` (`YYYY-MM`).
pub async fn monthly_elec(
    ctx: &RunContext,
    bp_number: &str,
    pdl: &str,
    begin: &str,
    end: &str,
) -> Result<MonthlyElec> {
    let url = ctx.url(super::routes::MONTHLY_ELEC)?;
    let resp = ctx
        .http()
        .get(&url)
        .query(&[
            ("begin-month", begin),
            ("end-month", end),
            ("ended", "false"),
        ])
        .header(super::routes::PERSON_HEADER, bp_number)
        .header(super::routes::SITE_HEADER, pdl)
        .header("Accept", "application/json")
        .send()
        .await?;
    check(&resp)?;
    resp.json()
}
