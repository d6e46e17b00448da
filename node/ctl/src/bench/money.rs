//! Money as the load generator handles it: whole cents in a `u64`, read from and written as
//! the API's strings (`"55.00"`). Amounts above the API's maximum are never produced by a
//! short run; parsing refuses anything that is not a plain non-negative amount.

/// Cents in one unit.
const CENTS_PER_UNIT: u64 = 100;

/// `"55.5"` or `"55.50"` → 5550; `None` for anything else.
pub fn parse_cents(text: &str) -> Option<u64> {
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    if units.is_empty() || fraction.len() > 2 || !units.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let units: u64 = units.parse().ok()?;
    let fraction_cents: u64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<u64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    units
        .checked_mul(CENTS_PER_UNIT)?
        .checked_add(fraction_cents)
}

/// 5550 → `"55.50"`.
pub fn format_cents(cents: u64) -> String {
    format!("{}.{:02}", cents / CENTS_PER_UNIT, cents % CENTS_PER_UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_through_their_text() {
        for (text, cents) in [("55.00", 5_500), ("0.05", 5), ("12.5", 1_250), ("7", 700)] {
            assert_eq!(parse_cents(text), Some(cents), "{text}");
        }
        assert_eq!(format_cents(5_550), "55.50");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(parse_cents(&format_cents(123_456_789)), Some(123_456_789));
    }

    #[test]
    fn anything_else_is_not_an_amount() {
        for text in [
            "",
            ".5",
            "1.234",
            "-1.00",
            "1e3",
            "1.0x",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(parse_cents(text), None, "{text}");
        }
    }
}
