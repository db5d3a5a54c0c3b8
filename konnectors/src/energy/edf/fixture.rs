//! The sandbox account, read from `fixtures/edf/account.json` (the one file
//! the sandbox, the tests and the bank fixtures share; its shape is
//! documented in `fixtures/edf/README.md`), and rendered as EDF's services
//! answer: the JSON shapes of [`super::api`], dates as Paris-midnight
//! JavaScript timestamps.

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};

use super::map::paris_midnight_ms;

/// The fixture file's text, embedded.
pub const ACCOUNT_JSON: &str = include_str!("../../../../fixtures/edf/account.json");

/// The whole fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The login (e-mail) the sandbox accepts.
    pub login: String,
    /// The customer.
    pub customer: Customer,
    /// The one electricity contract.
    pub contract: ContractData,
    /// The monthly payment schedule of 2025.
    pub schedule: Schedule,
    /// The invoices.
    pub invoices: Vec<Invoice>,
    /// Monthly consumption, kWh.
    pub consumption: Vec<Month>,
}

/// The customer (business partner).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Business partner number.
    pub bp_number: String,
    /// Its encrypted form.
    pub bp_number_crypt: String,
}

/// The contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractData {
    /// Customer account number.
    pub account_number: String,
    /// Its encrypted form.
    pub num_acc_crypt: String,
    /// Delivery point.
    pub pdl: String,
    /// Offer.
    pub offer_name: String,
    /// `ELECTRICITE`.
    pub energy: String,
    /// City.
    pub city: String,
    /// Postcode.
    pub post_code: String,
    /// Street.
    pub street: String,
}

/// The payment schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Its document number.
    pub document_number: String,
    /// `pn` of its PDF.
    pub par_number: String,
    /// Issue day.
    pub creation_date: NaiveDate,
    /// First instalment's day.
    pub start_date: NaiveDate,
    /// The instalments.
    pub deadlines: Vec<FixtureDeadline>,
}

/// One instalment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixtureDeadline {
    /// Debit day.
    pub encashment_date: NaiveDate,
    /// Electricity part, EUR.
    pub electricity_amount: String,
    /// Gas part, EUR.
    pub gaz_amount: String,
    /// `EFFECTUE` or `A_VENIR`.
    pub payment: String,
    /// The bank statement's label of its debit.
    pub bank_label: String,
}

/// One invoice.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// Invoice number.
    pub document_number: String,
    /// `pn` of its PDF.
    pub par_number: String,
    /// Amount; negative for a credit.
    pub bill_amount: String,
    /// Issue day.
    pub creation_date: NaiveDate,
    /// What it is, for the PDF.
    pub label: String,
    /// The bank operation that settles it.
    pub bank: BankOp,
}

/// A bank operation the bank fixtures generate.
#[derive(Debug, Clone, Deserialize)]
pub struct BankOp {
    /// Booking day.
    pub date: NaiveDate,
    /// Signed amount (negative: debit).
    pub amount: String,
    /// Label.
    pub label: String,
}

/// One month of consumption.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Month {
    /// `YYYY-MM`.
    pub month: String,
    /// First day.
    pub begin_day: NaiveDate,
    /// Last day.
    pub end_day: NaiveDate,
    /// kWh.
    #[serde(rename = "kWh")]
    pub kwh: u32,
    /// Cost, EUR.
    pub total_cost: String,
}

fn number(text: &str) -> Value {
    text.parse::<f64>().map(|f| json!(f)).unwrap_or(Value::Null)
}

impl Account {
    /// Parses the embedded fixture.
    pub fn load() -> serde_json::Result<Self> {
        serde_json::from_str(ACCOUNT_JSON)
    }

    fn bp_dto(&self) -> Value {
        json!({
            "bpNumber": self.customer.bp_number,
            "bpNumberCrypt": self.customer.bp_number_crypt,
        })
    }

    fn acc_dto(&self) -> Value {
        json!({
            "numAcc": self.contract.account_number,
            "numAccCrypt": self.contract.num_acc_crypt,
        })
    }

    /// `getListContracts`, logged in.
    pub fn contract_list(&self) -> Value {
        let c = &self.contract;
        json!({
            "errorCode": 0,
            "customerAccordContracts": [{
                "number": c.account_number,
                "adress": {"city": c.city, "postCode": c.post_code, "street": c.street},
                "bp": {"identity": {
                    "firstName": self.customer.first_name,
                    "lastName": self.customer.last_name,
                }},
                "contracts": [{
                    "number": format!("{}-E", c.account_number),
                    "pdlnumber": c.pdl,
                    "subscribeOffer": {"energy": c.energy, "offerName": c.offer_name},
                    "lifeContract": {"startDate": paris_midnight_ms(self.schedule.start_date)},
                }],
            }],
        })
    }

    /// `getBillsDocuments`.
    pub fn bills_documents(&self) -> Value {
        let bills: Vec<Value> = self
            .invoices
            .iter()
            .map(|i| {
                json!({
                    "documentNumber": i.document_number,
                    "parNumber": i.par_number,
                    "billAmount": i.bill_amount,
                    "creationDate": paris_midnight_ms(i.creation_date),
                })
            })
            .collect();
        json!([{
            "bpDto": self.bp_dto(),
            "listOfBillsByAccDTO": [{"accDTO": self.acc_dto(), "listOfbills": bills}],
        }])
    }

    /// `bill/consult`: amounts are numbers here, as Cozy adds them.
    pub fn bill_consult(&self) -> Value {
        let deadlines: Vec<Value> = self
            .schedule
            .deadlines
            .iter()
            .map(|d| {
                json!({
                    "encashmentDate": paris_midnight_ms(d.encashment_date),
                    "electricityAmount": number(&d.electricity_amount),
                    "gazAmount": number(&d.gaz_amount),
                    "payment": d.payment,
                })
            })
            .collect();
        json!({
            "feSouscriptionResponse": {"tradeNumber": self.contract.account_number},
            "monthlyPaymentAllowedStatus": "MENS",
            "paymentSchedule": {
                "startDate": paris_midnight_ms(self.schedule.start_date),
                "deadlines": deadlines,
            },
        })
    }

    /// `getPaymentsDocuments`.
    pub fn payments_documents(&self) -> Value {
        json!([{
            "bpDto": self.bp_dto(),
            "listOfPaymentsByAccDTO": [{
                "accDTO": self.acc_dto(),
                "lastPaymentDocument": {
                    "parNumber": self.schedule.par_number,
                    "documentNumber": self.schedule.document_number,
                    "creationDate": paris_midnight_ms(self.schedule.creation_date),
                },
            }],
        }])
    }

    /// `monthly-elec-consumptions` for the months `begin..=end` (`YYYY-MM`).
    pub fn monthly_elec(&self, begin: &str, end: &str) -> Value {
        let months: Vec<&Month> = self
            .consumption
            .iter()
            .filter(|m| m.month.as_str() >= begin && m.month.as_str() <= end)
            .collect();
        let monthly: Vec<Value> = months
            .iter()
            .map(|m| {
                json!({
                    "month": m.month,
                    "beginDay": m.begin_day,
                    "endDay": m.end_day,
                    "consumption": {"energy": m.kwh, "cost": number(&m.total_cost)},
                    "totalCost": number(&m.total_cost),
                })
            })
            .collect();
        json!({"monthlyElecEnergies": monthly, "yearlyElecEnergies": []})
    }
}
