//! The customer area's JSON answers, as the konnector reads them.
//!
//! Field names are Orange's (Woob's `ContractsApiPage` and
//! `BillsApiParPage`, Cozy's orange konnector): amounts are in cents,
//! dates ISO `YYYY-MM-DD`. JSON that no longer fits these types is
//! `UNKNOWN_ERROR.SCHEMA_CHANGED` naming the JSON path (the framework's
//! `Response::json`).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::routes;

/// `GET /ecd_wp/portfoliomanager/contracts/users/current`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Contracts {
    /// The customer's contracts, active or not.
    pub contracts: Vec<Contract>,
}

/// One contract: a mobile line or an internet access.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// The contract id the bill APIs take.
    pub cid: String,
    /// The offer, such as "Livebox Fibre".
    pub offer_name: String,
    /// `Actif` for a live contract (Woob keeps only those).
    pub status: String,
    /// Its holder.
    #[serde(default)]
    pub holder: Option<Holder>,
    /// The line.
    #[serde(default)]
    pub telco: Option<Telco>,
}

impl Contract {
    /// Whether the contract is live (`status` is `actif`, any case).
    pub fn is_active(&self) -> bool {
        self.status.eq_ignore_ascii_case("actif")
    }

    /// The line's number, or the contract id when the API gives none.
    pub fn line(&self) -> &str {
        self.telco
            .as_ref()
            .and_then(|t| t.public_number.as_deref())
            .unwrap_or(&self.cid)
    }
}

/// A contract's holder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
}

/// A contract's telecom part.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Telco {
    /// The line's number (`0612345678`, `0145678912`).
    #[serde(default)]
    pub public_number: Option<String>,
}

/// `GET /ecd_wp/facture/v2.0/billsAndPaymentInfos/users/current/contracts/{cid}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillsAndPaymentInfos {
    /// The bills.
    pub bills_history: BillsHistory,
}

/// The recent bills and the link to the older ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillsHistory {
    /// The recent bills, newest first.
    pub bill_list: Vec<RecentBill>,
    /// Where the older bills are listed (absent when there are none).
    #[serde(default)]
    pub old_bills_href: Option<String>,
}

/// One recent bill.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentBill {
    /// The bill's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The bill's technical id (Cozy's fallback for `id`).
    #[serde(default)]
    pub tec_id: Option<String>,
    /// The bill's date.
    pub date: NaiveDate,
    /// The amount, in cents.
    pub amount: i64,
    /// The PDF's query string, to append to [`routes::PDF`].
    pub href_pdf: String,
}

/// The answer of `oldBillsHref`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OldBills {
    /// The older bills, newest first.
    pub old_bills: Vec<OldBill>,
}

/// One old bill: its PDF is addressed by its storage keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OldBill {
    /// Storage key.
    pub entity_name: String,
    /// Storage key.
    pub partition_key_name: String,
    /// Storage key.
    pub partition_key_value: String,
    /// The bill's technical id.
    pub tec_id: String,
    /// The bill's date.
    pub date: NaiveDate,
    /// The amount, in cents.
    pub amount: i64,
}

/// A bill from either list, with its PDF's path (relative to the
/// customer area).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The bill's id (`vendorRef`).
    pub id: String,
    /// The bill's date.
    pub date: NaiveDate,
    /// The amount, in euros.
    pub amount: Decimal,
    /// The PDF's path and query on the customer area.
    pub pdf_path: String,
}

impl RecentBill {
    /// As an [`Invoice`]; `None` without any id.
    pub fn invoice(&self) -> Option<Invoice> {
        let id = self.id.clone().or_else(|| self.tec_id.clone())?;
        Some(Invoice {
            id,
            date: self.date,
            amount: Decimal::new(self.amount, 2),
            pdf_path: format!("{}{}", routes::PDF, self.href_pdf),
        })
    }
}

impl OldBill {
    /// As an [`Invoice`] of the contract `cid`.
    pub fn invoice(&self, cid: &str) -> Invoice {
        Invoice {
            id: self.tec_id.clone(),
            date: self.date,
            amount: Decimal::new(self.amount, 2),
            pdf_path: routes::historic_pdf(
                &self.entity_name,
                &self.partition_key_name,
                &self.partition_key_value,
                &self.tec_id,
                cid,
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_bill_in_cents_links_its_pdf() {
        let page: BillsAndPaymentInfos = serde_json::from_str(
            r#"{"billsHistory":{"billList":[{"id":"FM202512","date":"2025-12-05","amount":2999,
            "hrefPdf":"?billId=FM202512&billDate=2025-12-05"}],"oldBillsHref":"/x?cid=1"}}"#,
        )
        .unwrap();
        let inv = page.bills_history.bill_list[0].invoice().unwrap();
        assert_eq!(inv.amount, Decimal::new(2999, 2));
        assert_eq!(
            inv.pdf_path,
            "/ecd_wp/facture/v1.0/pdf?billId=FM202512&billDate=2025-12-05"
        );
        assert_eq!(page.bills_history.old_bills_href.as_deref(), Some("/x?cid=1"));
    }
}
