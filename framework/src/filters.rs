//! Pure text filters for the values scraped off a provider's pages.
//!
//! These are Gleaner's counterparts of Woob's `CleanText`,
//! `CleanDecimal.French` and `Date` filters: small functions that turn the
//! text of a page (`"1 234,56 €"`, `"2 janvier 2025"`) into typed values
//! ([`Amount`], [`rust_decimal::Decimal`], [`chrono::NaiveDate`]).
//!
//! Every parser is strict: text it cannot read is an error with the code
//! [`ErrorCode::InvalidData`] whose message quotes the input, never a guess
//! or a silent zero. Amounts are exact decimals; no value ever goes through
//! a binary floating-point number.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ErrorCode, KonnectorError, Result};

/// Collapses every run of Unicode whitespace (spaces, tabs, newlines,
/// no-break spaces U+00A0 and U+202F, thin spaces…) into one ASCII space and
/// trims both ends.
///
/// ```
/// use gleaner_framework::filters::clean_text;
/// assert_eq!(clean_text("  1\u{a0}234,56\n\t€ "), "1 234,56 €");
/// ```
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn invalid(message: String) -> KonnectorError {
    KonnectorError::new(ErrorCode::InvalidData, message)
}

// ---------------------------------------------------------------------------
// Currencies
// ---------------------------------------------------------------------------

/// The active alphabetic codes of ISO 4217 (list one), sorted.
///
/// Withdrawn codes (such as `FRF`, `HRK` or `ZWL`) are not listed: a page
/// that shows one is not a page Gleaner knows how to read.
const ISO_4217_ACTIVE: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD",
    "XPF", "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG",
];

/// A currency, as an active ISO 4217 alphabetic code (`EUR`, `USD`…).
///
/// Only codes of the active ISO 4217 list can be built, so holding a
/// `Currency` means holding a valid code. It serializes as its three-letter
/// code, and deserializing checks the code the same way [`FromStr`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(&'static str);

impl Currency {
    /// The euro.
    pub const EUR: Currency = Currency("EUR");
    /// The United States dollar.
    pub const USD: Currency = Currency("USD");
    /// The pound sterling.
    pub const GBP: Currency = Currency("GBP");
    /// The Swiss franc.
    pub const CHF: Currency = Currency("CHF");
    /// The Japanese yen.
    pub const JPY: Currency = Currency("JPY");

    /// The three-letter upper-case code, such as `"EUR"`.
    pub fn code(&self) -> &'static str {
        self.0
    }
}

impl FromStr for Currency {
    type Err = KonnectorError;

    /// Reads an ISO 4217 code in any case (`"EUR"`, `"eur"`); surrounding
    /// whitespace is ignored. Codes outside the active list are refused.
    fn from_str(s: &str) -> Result<Self> {
        let upper = s.trim().to_ascii_uppercase();
        ISO_4217_ACTIVE
            .binary_search(&upper.as_str())
            .map(|i| Currency(ISO_4217_ACTIVE[i]))
            .map_err(|_| invalid(format!("\"{s}\" is not an active ISO 4217 currency code")))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        if code.len() != 3 || code.bytes().any(|b| !b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom(format!(
                "\"{code}\" is not a three-letter upper-case currency code"
            )));
        }
        code.parse()
            .map_err(|e: KonnectorError| serde::de::Error::custom(e.message))
    }
}

/// Reads a currency from a code or a symbol as pages show it.
///
/// Accepts ISO 4217 codes in any case (`"EUR"`, `"eur"`, `"CHF"`), and the
/// symbols and words `€`, `euro`, `euros` (EUR), `$`, `US$` (USD), `£`
/// (GBP), `¥` (JPY), `CA$`/`C$` (CAD), `A$`/`AU$` (AUD), `Fr.` (CHF).
///
/// # Errors
///
/// [`ErrorCode::InvalidData`], naming the input, for anything else.
pub fn parse_currency(s: &str) -> Result<Currency> {
    let cleaned = clean_text(s);
    let lower = cleaned.to_lowercase();
    let known = match lower.as_str() {
        "€" | "euro" | "euros" => Some(Currency::EUR),
        "$" | "us$" | "us $" => Some(Currency::USD),
        "£" => Some(Currency::GBP),
        "¥" | "円" => Some(Currency::JPY),
        "fr." | "sfr" | "sfr." => Some(Currency::CHF),
        "ca$" | "c$" => Some(Currency("CAD")),
        "a$" | "au$" => Some(Currency("AUD")),
        _ => None,
    };
    if let Some(currency) = known {
        return Ok(currency);
    }
    if cleaned.len() == 3
        && cleaned.chars().all(|c| c.is_ascii_alphabetic())
        && let Ok(currency) = cleaned.parse()
    {
        return Ok(currency);
    }
    Err(invalid(format!("unknown currency \"{s}\"")))
}

// ---------------------------------------------------------------------------
// Amounts and decimals
// ---------------------------------------------------------------------------

/// A sum of money as a page shows it: an exact decimal and, when the page
/// says it, its currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Amount {
    /// The exact value, negative for a debit or a refund.
    pub value: Decimal,
    /// The currency written next to the number, if any.
    pub currency: Option<Currency>,
}

/// Reads a number whose decimal separator is known.
///
/// `digits` holds no sign. Every character of the integer part that is not
/// a digit must be one of `thousands`; when thousands separators are used,
/// the first group has 1 to 3 digits and each other group exactly 3.
/// Returns the reason on failure, for the caller to wrap.
fn parse_number(
    digits: &str,
    negative: bool,
    decimal: char,
    thousands: &[char],
) -> std::result::Result<Decimal, String> {
    if !digits.chars().any(|c| c.is_ascii_digit()) {
        return Err("no digits".to_owned());
    }
    let mut parts = digits.split(decimal);
    let int_part = parts.next().unwrap_or_default();
    let frac_part = parts.next();
    if parts.next().is_some() {
        return Err("more than one decimal separator".to_owned());
    }

    let groups: Vec<&str> = int_part.split(|c| thousands.contains(&c)).collect();
    for group in &groups {
        if let Some(bad) = group.chars().find(|c| !c.is_ascii_digit()) {
            return Err(format!("unexpected character '{bad}' in the number"));
        }
    }
    if groups.len() > 1 {
        let first_ok = (1..=3).contains(&groups[0].len());
        if !first_ok || groups[1..].iter().any(|g| g.len() != 3) {
            return Err("misplaced thousands separator".to_owned());
        }
    }
    let int_digits: String = groups.concat();
    if int_digits.is_empty() {
        return Err("no digits before the decimal separator".to_owned());
    }

    let mut text = String::with_capacity(digits.len() + 1);
    if negative {
        text.push('-');
    }
    text.push_str(&int_digits);
    if let Some(frac) = frac_part {
        if frac.is_empty() {
            return Err("no digits after the decimal separator".to_owned());
        }
        if let Some(bad) = frac.chars().find(|c| !c.is_ascii_digit()) {
            return Err(format!(
                "unexpected character '{bad}' after the decimal separator"
            ));
        }
        text.push('.');
        text.push_str(frac);
    }
    Decimal::from_str_exact(&text).map_err(|e| format!("out of range ({e})"))
}

/// Splits an optional leading sign (`+`, `-`, U+2212) off a cleaned number.
fn split_sign(s: &str) -> (bool, &str) {
    if let Some(rest) = s.strip_prefix(['-', '\u{2212}']) {
        (true, rest.trim_start())
    } else if let Some(rest) = s.strip_prefix('+') {
        (false, rest.trim_start())
    } else {
        (false, s)
    }
}

/// Reads a French-formatted number: `,` is the decimal separator, spaces
/// (including no-break spaces) and `.` separate thousands.
///
/// `"1 234,56"`, `"-1.234,5"`, `"12"` are accepted.
///
/// # Errors
///
/// [`ErrorCode::InvalidData`], quoting the input, for anything that is not
/// such a number.
pub fn parse_decimal_fr(s: &str) -> Result<Decimal> {
    let cleaned = clean_text(s);
    let (negative, digits) = split_sign(&cleaned);
    parse_number(digits, negative, ',', &[' ', '.'])
        .map_err(|why| invalid(format!("cannot read a French number from \"{s}\": {why}")))
}

/// Reads an English-formatted number: `.` is the decimal separator and `,`
/// separates thousands.
///
/// `"1,234.56"`, `"-0.5"`, `"12"` are accepted.
///
/// # Errors
///
/// [`ErrorCode::InvalidData`], quoting the input, for anything that is not
/// such a number.
pub fn parse_decimal_en(s: &str) -> Result<Decimal> {
    let cleaned = clean_text(s);
    let (negative, digits) = split_sign(&cleaned);
    parse_number(digits, negative, '.', &[','])
        .map_err(|why| invalid(format!("cannot read an English number from \"{s}\": {why}")))
}

/// Reads an amount of money, guessing the number format.
///
/// The currency (a code, a symbol or a word, see [`parse_currency`]) may
/// stand before or after the number, with or without a space. A sign (`-`,
/// U+2212 `−` or `+`) may stand before the currency (`-€12.30`) or between it
/// and the number (`€-12.30`).
///
/// Separators are decided as follows: when both `.` and `,` appear, the
/// rightmost kind is the decimal separator and the other separates
/// thousands; when only one kind appears, once, it is the decimal separator
/// (so `"1.234"` is 1.234); when it appears several times it separates
/// thousands. Spaces (including U+00A0 and U+202F) always separate thousands.
///
/// `"1 234,56 €"`, `"-12.30 EUR"`, `"€1,234.56"`, `"19.99€"`,
/// `"-1.234,56 €"`, `"+ 5,00 €"` and `"12 €"` are all accepted.
///
/// # Errors
///
/// [`ErrorCode::InvalidData`], quoting the input, when the text is empty,
/// has no digits, has two decimal separators, misplaced thousands
/// separators, letters inside the number, or an unknown currency.
pub fn parse_amount(s: &str) -> Result<Amount> {
    let fail = |why: &str| invalid(format!("cannot read an amount from \"{s}\": {why}"));

    let cleaned = clean_text(s).replace('\u{2212}', "-");
    if cleaned.is_empty() {
        return Err(fail("the text is empty"));
    }
    let chars: Vec<char> = cleaned.chars().collect();
    let is_sep = |c: char| c == '.' || c == ',';
    let is_sign = |c: char| c == '-' || c == '+';

    // Prefix: sign and currency, in either order.
    let mut i = 0;
    let mut negative: Option<bool> = None;
    let mut prefix_currency: Option<String> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' {
            i += 1;
        } else if is_sign(c) {
            if negative.is_some() {
                return Err(fail("more than one sign"));
            }
            negative = Some(c == '-');
            i += 1;
        } else if c.is_ascii_digit() || is_sep(c) {
            break;
        } else {
            if prefix_currency.is_some() {
                return Err(fail("unexpected text before the number"));
            }
            let start = i;
            while i < chars.len()
                && !(chars[i] == ' '
                    || chars[i].is_ascii_digit()
                    || is_sign(chars[i])
                    || is_sep(chars[i]))
            {
                i += 1;
            }
            prefix_currency = Some(chars[start..i].iter().collect());
        }
    }

    // The number: digits, separators and spaces.
    let start = i;
    while i < chars.len() && (chars[i].is_ascii_digit() || is_sep(chars[i]) || chars[i] == ' ') {
        i += 1;
    }
    let number: String = chars[start..i].iter().collect();
    let number = number.trim_end();
    if !number.chars().any(|c| c.is_ascii_digit()) {
        return Err(fail("no digits"));
    }

    // Suffix: a currency, nothing else.
    let suffix: String = chars[i..].iter().collect();
    let suffix = suffix.trim();
    let suffix_currency = if suffix.is_empty() {
        None
    } else if suffix.chars().any(|c| c.is_ascii_digit() || is_sign(c)) {
        return Err(fail("unexpected characters in the number"));
    } else {
        Some(suffix)
    };

    let currency = match (prefix_currency.as_deref(), suffix_currency) {
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            Some(parse_currency(one).map_err(|_| fail(&format!("unknown currency \"{one}\"")))?)
        }
        (Some(before), Some(after)) => {
            let a = parse_currency(before).ok();
            let b = parse_currency(after).ok();
            match (a, b) {
                (Some(a), Some(b)) if a == b => Some(a),
                _ => return Err(fail("text both before and after the number")),
            }
        }
    };

    let dots = number.matches('.').count();
    let commas = number.matches(',').count();
    let (decimal, thousands): (char, &[char]) = match (dots, commas) {
        (0, 0) | (1, 0) => ('.', &[' ']),
        (0, 1) => (',', &[' ']),
        (_, 0) => (',', &[' ', '.']),
        (0, _) => ('.', &[' ', ',']),
        _ => {
            let last_dot = number.rfind('.');
            let last_comma = number.rfind(',');
            if last_comma > last_dot {
                (',', &[' ', '.'])
            } else {
                ('.', &[' ', ','])
            }
        }
    };
    let value = parse_number(number, negative.unwrap_or(false), decimal, thousands)
        .map_err(|why| fail(&why))?;
    Ok(Amount { value, currency })
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

/// Month names and abbreviations, French and English, lower case and
/// without accents.
const MONTHS: &[(&str, u32)] = &[
    ("janvier", 1),
    ("janv", 1),
    ("jan", 1),
    ("january", 1),
    ("fevrier", 2),
    ("fevr", 2),
    ("fev", 2),
    ("february", 2),
    ("feb", 2),
    ("mars", 3),
    ("march", 3),
    ("mar", 3),
    ("avril", 4),
    ("avr", 4),
    ("april", 4),
    ("apr", 4),
    ("mai", 5),
    ("may", 5),
    ("juin", 6),
    ("june", 6),
    ("jun", 6),
    ("juillet", 7),
    ("juil", 7),
    ("july", 7),
    ("jul", 7),
    ("aout", 8),
    ("august", 8),
    ("aug", 8),
    ("septembre", 9),
    ("sept", 9),
    ("september", 9),
    ("sep", 9),
    ("octobre", 10),
    ("october", 10),
    ("oct", 10),
    ("novembre", 11),
    ("november", 11),
    ("nov", 11),
    ("decembre", 12),
    ("december", 12),
    ("dec", 12),
];

/// Weekday names, French and English, that may open a long-form date.
const WEEKDAYS: &[&str] = &[
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "lun",
    "mar",
    "mer",
    "jeu",
    "ven",
    "sam",
    "dim",
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
];

/// Lower-cases a word and drops French accents and a trailing dot.
fn fold_word(word: &str) -> String {
    word.trim_end_matches('.')
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

fn month_number(word: &str) -> Option<u32> {
    let folded = fold_word(word);
    MONTHS
        .iter()
        .find(|(name, _)| *name == folded)
        .map(|&(_, month)| month)
}

/// Reads a day of the month, with an optional ordinal suffix (`1er`, `2nd`).
fn day_number(word: &str) -> Option<u32> {
    let folded = fold_word(word);
    let digits = ["er", "st", "nd", "rd", "th"]
        .iter()
        .find_map(|suffix| folded.strip_suffix(suffix))
        .unwrap_or(&folded);
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn year_number(word: &str) -> Option<i32> {
    if word.len() == 4 && word.bytes().all(|b| b.is_ascii_digit()) {
        word.parse().ok()
    } else {
        None
    }
}

/// Reads `dd/mm/yyyy`-like and `yyyy-mm-dd`-like dates. `None` when the text
/// does not have that shape; `Some(None)` when it does but names no real day.
fn numeric_date(s: &str) -> Option<Option<NaiveDate>> {
    let sep = s.chars().find(|c| matches!(c, '/' | '-' | '.'))?;
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let num = |p: &str| p.parse::<u32>().ok();
    let (year, month, day) = match (parts[0].len(), parts[1].len(), parts[2].len()) {
        (4, 1..=2, 1..=2) => (
            parts[0].parse::<i32>().ok()?,
            num(parts[1])?,
            num(parts[2])?,
        ),
        (1..=2, 1..=2, 4) => (
            parts[2].parse::<i32>().ok()?,
            num(parts[1])?,
            num(parts[0])?,
        ),
        _ => return None,
    };
    Some(NaiveDate::from_ymd_opt(year, month, day))
}

/// Reads an ISO 8601 date-time and keeps its date, as written (in the
/// offset the text gives, not converted to UTC).
fn iso_datetime(s: &str) -> Option<NaiveDate> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.date_naive());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Some(dt.date());
        }
    }
    None
}

/// Reads `2 janvier 2025`, `1er février 2025`, `January 2, 2025`,
/// `Jan 2nd 2025`, optionally opened by a weekday.
fn long_date(s: &str) -> Option<Option<NaiveDate>> {
    let mut words: Vec<&str> = s.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    if words.len() == 4 && WEEKDAYS.contains(&fold_word(words[0]).as_str()) {
        words.remove(0);
    }
    let [a, b, c] = words.as_slice() else {
        return None;
    };
    let year = year_number(c)?;
    let (day, month) = if let (Some(d), Some(m)) = (day_number(a), month_number(b)) {
        (d, m)
    } else if let (Some(m), Some(d)) = (month_number(a), day_number(b)) {
        (d, m)
    } else {
        return None;
    };
    Some(NaiveDate::from_ymd_opt(year, month, day))
}

/// Reads a date in the forms providers' pages show.
///
/// Accepted: `dd/mm/yyyy`, `d/m/yyyy`, `dd-mm-yyyy`, `dd.mm.yyyy`, ISO
/// `yyyy-mm-dd`, ISO date-times such as `2025-01-02T10:00:00+01:00` or
/// `…Z` (their date part, as written), French long forms (`2 janvier 2025`,
/// `1er février 2025`, `02 Févr. 2025`) and English ones (`January 2, 2025`,
/// `2 January 2025`, `Jan 2, 2025`). Month names may be full or abbreviated
/// (`janv`, `févr`, `avr`, `juil`, `sept`, `déc`…), in any case, with or
/// without accents and a trailing dot. A leading weekday is ignored.
///
/// # Errors
///
/// [`ErrorCode::InvalidData`], quoting the input, for any other text or for
/// a day that does not exist (`31/02/2025`).
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    let cleaned = clean_text(s);
    let no_such_day = || invalid(format!("\"{s}\" is not a real calendar day"));
    if let Some(date) = numeric_date(&cleaned) {
        return date.ok_or_else(no_such_day);
    }
    if let Some(date) = iso_datetime(&cleaned) {
        return Ok(date);
    }
    if let Some(date) = long_date(&cleaned) {
        return date.ok_or_else(no_such_day);
    }
    Err(invalid(format!("cannot read a date from \"{s}\"")))
}

/// Reads a French month and year (`"janvier 2024"`, `"Décembre 2025"`,
/// `"févr. 2024"`) as the first day of that month.
///
/// # Errors
///
/// [`ErrorCode::InvalidData`], quoting the input, for any other text.
pub fn parse_month_year_fr(s: &str) -> Result<NaiveDate> {
    let cleaned = clean_text(s);
    let fail = || invalid(format!("cannot read a month and year from \"{s}\""));
    let words: Vec<&str> = cleaned.split(' ').collect();
    let [month, year] = words.as_slice() else {
        return Err(fail());
    };
    let month = month_number(month).ok_or_else(fail)?;
    let year = year_number(year).ok_or_else(fail)?;
    NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(fail)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn amount(s: &str) -> (Decimal, Option<Currency>) {
        let a = parse_amount(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        (a.value, a.currency)
    }

    fn assert_invalid<T: fmt::Debug>(result: Result<T>, input: &str) {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidData, "{input:?}");
        assert!(
            err.message.contains(&format!("\"{input}\"")),
            "message {:?} should quote {input:?}",
            err.message
        );
    }

    #[test]
    fn clean_text_collapses_all_whitespace() {
        assert_eq!(clean_text("  a \t b\n\nc  "), "a b c");
        assert_eq!(
            clean_text("1\u{a0}234\u{202f}567,8\u{2009}€"),
            "1 234 567,8 €"
        );
        assert_eq!(clean_text(""), "");
        assert_eq!(clean_text(" \n\u{a0} "), "");
    }

    #[test]
    fn currency_codes() {
        assert_eq!("EUR".parse::<Currency>().unwrap(), Currency::EUR);
        assert_eq!("eur".parse::<Currency>().unwrap(), Currency::EUR);
        assert_eq!("Usd".parse::<Currency>().unwrap().code(), "USD");
        assert_eq!(Currency::GBP.to_string(), "GBP");
        assert_eq!("CHF".parse::<Currency>().unwrap(), Currency::CHF);
        assert_invalid("FRF".parse::<Currency>(), "FRF");
        assert_invalid("EURO".parse::<Currency>(), "EURO");
        assert!("".parse::<Currency>().is_err());
    }

    #[test]
    fn iso_list_is_sorted_and_well_formed() {
        assert!(ISO_4217_ACTIVE.windows(2).all(|w| w[0] < w[1]));
        assert!(
            ISO_4217_ACTIVE
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
        for c in [
            Currency::EUR,
            Currency::USD,
            Currency::GBP,
            Currency::CHF,
            Currency::JPY,
        ] {
            assert!(ISO_4217_ACTIVE.contains(&c.code()));
        }
    }

    #[test]
    fn currency_serde_round_trip() {
        let json = serde_json::to_string(&Currency::EUR).unwrap();
        assert_eq!(json, "\"EUR\"");
        assert_eq!(
            serde_json::from_str::<Currency>(&json).unwrap(),
            Currency::EUR
        );
        assert!(serde_json::from_str::<Currency>("\"XYZ\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"eur\"").is_err());
        assert!(serde_json::from_str::<Currency>("42").is_err());
    }

    #[test]
    fn currency_symbols_and_words() {
        assert_eq!(parse_currency("€").unwrap(), Currency::EUR);
        assert_eq!(parse_currency("euros").unwrap(), Currency::EUR);
        assert_eq!(parse_currency("Euro").unwrap(), Currency::EUR);
        assert_eq!(parse_currency("eur").unwrap(), Currency::EUR);
        assert_eq!(parse_currency("$").unwrap(), Currency::USD);
        assert_eq!(parse_currency("US$").unwrap(), Currency::USD);
        assert_eq!(parse_currency("£").unwrap(), Currency::GBP);
        assert_eq!(parse_currency("CHF").unwrap(), Currency::CHF);
        assert_eq!(parse_currency("¥").unwrap(), Currency::JPY);
        assert_eq!(parse_currency(" € ").unwrap(), Currency::EUR);
        assert_invalid(parse_currency("dollars canadiens"), "dollars canadiens");
        assert_invalid(parse_currency("ZZZ"), "ZZZ");
        assert_invalid(parse_currency(""), "");
    }

    #[test]
    fn amounts_french() {
        assert_eq!(
            parse_amount("1 234,56 €").unwrap(),
            Amount {
                value: Decimal::new(123456, 2),
                currency: Some(Currency::EUR)
            }
        );
        let eur = Some(Currency::EUR);
        assert_eq!(
            amount("1\u{a0}234,56\u{a0}€"),
            (Decimal::new(123456, 2), eur)
        );
        assert_eq!(amount("1\u{202f}234,56 €"), (Decimal::new(123456, 2), eur));
        assert_eq!(amount("19,99 €"), (Decimal::new(1999, 2), eur));
        assert_eq!(amount("-1.234,56 €"), (Decimal::new(-123456, 2), eur));
        assert_eq!(amount("+ 5,00 €"), (Decimal::new(500, 2), eur));
        assert_eq!(amount("12 €"), (Decimal::new(12, 0), eur));
        assert_eq!(amount("1 234 567,8"), (Decimal::new(12345678, 1), None));
        assert_eq!(amount("1.234.567 €"), (Decimal::new(1234567, 0), eur));
        assert_eq!(amount("12,30 euros"), (Decimal::new(1230, 2), eur));
    }

    #[test]
    fn amounts_english_and_symbols() {
        let eur = Some(Currency::EUR);
        let usd = Some(Currency::USD);
        assert_eq!(amount("-12.30 EUR"), (Decimal::new(-1230, 2), eur));
        assert_eq!(amount("€1,234.56"), (Decimal::new(123456, 2), eur));
        assert_eq!(amount("1,234.56 USD"), (Decimal::new(123456, 2), usd));
        assert_eq!(amount("19.99€"), (Decimal::new(1999, 2), eur));
        assert_eq!(amount("-€12.30"), (Decimal::new(-1230, 2), eur));
        assert_eq!(amount("€-12.30"), (Decimal::new(-1230, 2), eur));
        assert_eq!(amount("\u{2212}12,30 €"), (Decimal::new(-1230, 2), eur));
        assert_eq!(amount("€\u{2212}12.30"), (Decimal::new(-1230, 2), eur));
        assert_eq!(amount("US$ 5"), (Decimal::new(5, 0), usd));
        assert_eq!(amount("£0.99"), (Decimal::new(99, 2), Some(Currency::GBP)));
        assert_eq!(
            amount("CHF 12.50"),
            (Decimal::new(1250, 2), Some(Currency::CHF))
        );
        assert_eq!(amount("EUR 12"), (Decimal::new(12, 0), eur));
        assert_eq!(amount("12EUR"), (Decimal::new(12, 0), eur));
        assert_eq!(amount("1.234"), (Decimal::new(1234, 3), None));
        assert_eq!(amount("1,234"), (Decimal::new(1234, 3), None));
        assert_eq!(amount("1,234,567"), (Decimal::new(1234567, 0), None));
        assert_eq!(amount("0.1"), (Decimal::new(1, 1), None));
    }

    #[test]
    fn amount_errors_quote_the_input() {
        for bad in [
            "",
            "   ",
            "€",
            "abc",
            "1.2,3.4 €",
            "12.30.45",
            "1,23.45",
            "12a34 €",
            "12 abc",
            "12,",
            "--12",
            "1 23,45 €",
            "12 € 34",
            "€12 $",
            ",50 €",
        ] {
            assert_invalid(parse_amount(bad), bad);
        }
    }

    #[test]
    fn known_format_decimals() {
        assert_eq!(
            parse_decimal_fr("1 234,56").unwrap(),
            Decimal::new(123456, 2)
        );
        assert_eq!(
            parse_decimal_fr("1.234,56").unwrap(),
            Decimal::new(123456, 2)
        );
        assert_eq!(parse_decimal_fr("-0,5").unwrap(), Decimal::new(-5, 1));
        assert_eq!(parse_decimal_fr("1.234").unwrap(), Decimal::new(1234, 0));
        assert_eq!(
            parse_decimal_fr("\u{2212}12").unwrap(),
            Decimal::new(-12, 0)
        );
        assert_eq!(
            parse_decimal_en("1,234.56").unwrap(),
            Decimal::new(123456, 2)
        );
        assert_eq!(parse_decimal_en("1,234").unwrap(), Decimal::new(1234, 0));
        assert_eq!(parse_decimal_en("+0.5").unwrap(), Decimal::new(5, 1));
        assert_invalid(parse_decimal_fr("12.5"), "12.5");
        assert_invalid(parse_decimal_fr("1,2,3"), "1,2,3");
        assert_invalid(parse_decimal_en("12,5"), "12,5");
        assert_invalid(parse_decimal_en("12 €"), "12 €");
        assert_invalid(parse_decimal_en(""), "");
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(parse_date("02/01/2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date("2/1/2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date("02-01-2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date("02.01.2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date(" 31/12/2024 ").unwrap(), d(2024, 12, 31));
        assert_eq!(parse_date("2025-01-02").unwrap(), d(2025, 1, 2));
        assert_eq!(
            parse_date("2025-01-02T10:00:00+01:00").unwrap(),
            d(2025, 1, 2)
        );
        assert_eq!(parse_date("2025-01-02T23:30:00Z").unwrap(), d(2025, 1, 2));
        assert_eq!(
            parse_date("2025-01-02T00:30:00.123-05:00").unwrap(),
            d(2025, 1, 2)
        );
        assert_eq!(parse_date("2025-01-02T10:00:00").unwrap(), d(2025, 1, 2));
    }

    #[test]
    fn long_dates() {
        assert_eq!(parse_date("2 janvier 2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date("1er février 2025").unwrap(), d(2025, 2, 1));
        assert_eq!(parse_date("02 Févr. 2025").unwrap(), d(2025, 2, 2));
        assert_eq!(parse_date("2 fevr 2025").unwrap(), d(2025, 2, 2));
        assert_eq!(parse_date("15 AOÛT 2024").unwrap(), d(2024, 8, 15));
        assert_eq!(parse_date("15 aout 2024").unwrap(), d(2024, 8, 15));
        assert_eq!(parse_date("3 déc. 2024").unwrap(), d(2024, 12, 3));
        assert_eq!(parse_date("3 dec 2024").unwrap(), d(2024, 12, 3));
        assert_eq!(parse_date("10 juil. 2024").unwrap(), d(2024, 7, 10));
        assert_eq!(parse_date("10 sept. 2024").unwrap(), d(2024, 9, 10));
        assert_eq!(parse_date("1 janv. 2024").unwrap(), d(2024, 1, 1));
        assert_eq!(parse_date("4 avr 2024").unwrap(), d(2024, 4, 4));
        assert_eq!(parse_date("4 mars 2024").unwrap(), d(2024, 3, 4));
        assert_eq!(parse_date("4 mai 2024").unwrap(), d(2024, 5, 4));
        assert_eq!(parse_date("4 juin 2024").unwrap(), d(2024, 6, 4));
        assert_eq!(parse_date("4 oct. 2024").unwrap(), d(2024, 10, 4));
        assert_eq!(parse_date("4 nov 2024").unwrap(), d(2024, 11, 4));
        assert_eq!(parse_date("jeudi 2 janvier 2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date("January 2, 2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date("2 January 2025").unwrap(), d(2025, 1, 2));
        assert_eq!(parse_date("Jan 2, 2025").unwrap(), d(2025, 1, 2));
        assert_eq!(
            parse_date("Thursday, January 2nd, 2025").unwrap(),
            d(2025, 1, 2)
        );
        assert_eq!(parse_date("Sept. 30, 2024").unwrap(), d(2024, 9, 30));
    }

    #[test]
    fn date_errors_quote_the_input() {
        for bad in [
            "",
            "hier",
            "31/02/2025",
            "2025-13-01",
            "02/01/25",
            "2/1",
            "2 janvember 2025",
            "32 janvier 2025",
            "2 janvier",
            "2025-01-02Tnope",
            "02/01-2025",
        ] {
            assert_invalid(parse_date(bad), bad);
        }
    }

    #[test]
    fn month_year() {
        assert_eq!(parse_month_year_fr("janvier 2024").unwrap(), d(2024, 1, 1));
        assert_eq!(
            parse_month_year_fr("Décembre 2025").unwrap(),
            d(2025, 12, 1)
        );
        assert_eq!(parse_month_year_fr("févr. 2024").unwrap(), d(2024, 2, 1));
        assert_eq!(
            parse_month_year_fr(" AOÛT\u{a0}2023 ").unwrap(),
            d(2023, 8, 1)
        );
        assert_invalid(parse_month_year_fr("2024"), "2024");
        assert_invalid(parse_month_year_fr("janvier 24"), "janvier 24");
        assert_invalid(parse_month_year_fr("brumaire 2024"), "brumaire 2024");
    }
}
