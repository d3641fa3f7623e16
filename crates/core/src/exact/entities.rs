//! Typed Exact entities, converted from the wire shapes (`/Date(ms)/`,
//! JSON numbers for amounts, lower-case GUID strings).

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Deserializer};

use super::dates::parse_odata_date;

fn odata_date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
    let s = String::deserialize(d)?;
    parse_odata_date(&s).map_err(serde::de::Error::custom)
}

fn odata_day_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| parse_odata_date(&s).map(|dt| dt.date()))
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// `current/Me`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Me {
    #[serde(rename = "UserID")]
    pub user_id: String,
    pub current_division: i64,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub user_name: Option<String>,
}

/// `system/Divisions`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemDivision {
    pub code: i64,
    pub description: Option<String>,
    pub customer_name: Option<String>,
    pub status: Option<i64>,
}

/// `financialtransaction/TransactionLines`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactionLine {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "EntryID")]
    pub entry_id: String,
    #[serde(deserialize_with = "odata_date")]
    pub date: NaiveDateTime,
    pub financial_year: i32,
    pub financial_period: u32,
    #[serde(rename = "GLAccountCode")]
    pub gl_account_code: Option<String>,
    #[serde(rename = "AmountDC")]
    pub amount_dc: f64,
    pub account: Option<String>,
    pub invoice_number: Option<i64>,
    pub journal_code: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "odata_day_opt")]
    pub due_date: Option<NaiveDate>,
    pub status: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wire_rows() {
        let me: Me = serde_json::from_str(
            r#"{"UserID":"a","CurrentDivision":1000001,"FullName":"Jan","Email":null,"UserName":"demo"}"#,
        )
        .unwrap();
        assert_eq!(me.current_division, 1000001);
        let line: TransactionLine = serde_json::from_str(
            r#"{"ID":"x","EntryID":"e","Date":"/Date(1735689600000)/","FinancialYear":2025,"FinancialPeriod":1,
                "GLAccountCode":"8000","AmountDC":-121.0,"Account":null,"InvoiceNumber":null,"JournalCode":"70",
                "Description":"x","DueDate":null,"Status":50}"#,
        )
        .unwrap();
        assert_eq!(line.date.date().to_string(), "2025-01-01");
        assert_eq!(line.amount_dc, -121.0);
    }
}
