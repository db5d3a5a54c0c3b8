//! Amounts and decimals as pages show them (`framework::filters`).
//!
//! Properties: no panic; an amount that parses, written back plainly
//! (`-1234.5 EUR`) and the French way (`-1234,5 €`), parses to the same
//! value and currency; a number read by `parse_decimal_fr` or
//! `parse_decimal_en` reads the same once written back; a currency that
//! parses is an active code that parses to itself.

use gleaner_framework::filters::{
    Currency, parse_amount, parse_currency, parse_decimal_en, parse_decimal_fr,
};

/// Checks one input of the `amount` fuzz target: returns when the module's
/// properties hold (or the input is not one the target reads), panics
/// naming the broken one otherwise.
pub fn check_amount(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = parse_amount(s) {
        let plain = match a.currency {
            Some(c) => format!("{} {}", a.value, c.code()),
            None => a.value.to_string(),
        };
        let again = parse_amount(&plain).unwrap_or_else(|e| panic!("{s:?} -> {plain:?}: {e}"));
        assert_eq!(again, a, "{s:?} -> {plain:?}");
        let french = format!("{} €", a.value.to_string().replace('.', ","));
        let again = parse_amount(&french).unwrap_or_else(|e| panic!("{s:?} -> {french:?}: {e}"));
        assert_eq!(again.value, a.value, "{s:?} -> {french:?}");
    }
    for (name, parsed) in [("fr", parse_decimal_fr(s)), ("en", parse_decimal_en(s))] {
        if let Ok(d) = parsed {
            let text = d.to_string();
            let en =
                parse_decimal_en(&text).unwrap_or_else(|e| panic!("{name} {s:?} -> {text:?}: {e}"));
            assert_eq!(en, d, "{name} {s:?} -> {text:?}");
            let fr_text = text.replace('.', ",");
            let fr = parse_decimal_fr(&fr_text)
                .unwrap_or_else(|e| panic!("{name} {s:?} -> {fr_text:?}: {e}"));
            assert_eq!(fr, d, "{name} {s:?} -> {fr_text:?}");
        }
    }
    if let Ok(c) = parse_currency(s) {
        assert_eq!(c.code().parse::<Currency>().ok(), Some(c), "{s:?}");
    }
    if let Ok(c) = s.parse::<Currency>() {
        assert_eq!(parse_currency(c.code()).ok(), Some(c), "{s:?}");
    }
}
