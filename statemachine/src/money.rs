//! Money: exact amounts in whole cents, parsed and printed through `rust_decimal`.
//!
//! An amount a client sends is at most 2 decimal places, greater than zero and at most
//! 1,000,000,000.00. Inside the state machine money is an `i64` count of cents, which makes
//! arithmetic exact, cheap and trivially deterministic; `rust_decimal::Decimal` is the type at the
//! edges (parsing and display). Sums such as `price + increment` may exceed the client maximum
//! (a minimum bid above the cap simply cannot be met), so the bound applies to parsed input only.
//!
//! This module also holds the bid increment rules: a fixed increment or the named `ebay` ladder.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Largest amount a client may send, in cents (1,000,000,000.00).
pub const AMOUNT_CENTS_MAX: i64 = 100_000_000_000;
/// Longest amount text we try to parse; anything longer is malformed by definition.
pub const AMOUNT_TEXT_BYTES_MAX: usize = 32;

/// An exact amount of money in cents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Money(i64);

/// Why a text is not a valid amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountError {
    /// Not a plain decimal number.
    Malformed,
    /// More than two decimal places.
    TooPrecise,
    /// Zero or negative.
    NotPositive,
    /// Above [`AMOUNT_CENTS_MAX`].
    TooLarge,
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            AmountError::Malformed => "amount must be a decimal number such as \"55.00\"",
            AmountError::TooPrecise => "amount must have at most 2 decimal places",
            AmountError::NotPositive => "amount must be greater than zero",
            AmountError::TooLarge => "amount must be at most 1000000000.00",
        };
        f.write_str(text)
    }
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    /// Parses a client amount: plain digits with an optional fraction, no sign, no exponent,
    /// no separators. `"55"`, `"55.5"`, `"55.50"` and `"55.500"` are accepted; `"55.555"` is not.
    pub fn parse(text: &str) -> Result<Money, AmountError> {
        if text.is_empty() || text.len() > AMOUNT_TEXT_BYTES_MAX {
            return Err(AmountError::Malformed);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits_only = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits_only(whole) || !fraction.is_none_or(digits_only) {
            return Err(AmountError::Malformed);
        }
        let value = Decimal::from_str(text).map_err(|_| AmountError::Malformed)?;
        Money::from_decimal(value)
    }

    /// Converts a decimal that a client sent; enforces the bounds of a client amount.
    pub fn from_decimal(value: Decimal) -> Result<Money, AmountError> {
        let value = value.normalize();
        if value.scale() > 2 {
            return Err(AmountError::TooPrecise);
        }
        if value <= Decimal::ZERO {
            return Err(AmountError::NotPositive);
        }
        let cents = (value * Decimal::ONE_HUNDRED).trunc();
        let cents = i64::try_from(cents).map_err(|_| AmountError::TooLarge)?;
        if cents > AMOUNT_CENTS_MAX {
            return Err(AmountError::TooLarge);
        }
        Ok(Money(cents))
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    /// Saturating addition: sums never wrap; amounts stay far below `i64::MAX` anyway.
    pub fn plus(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Money {
    /// Always two decimals: `55.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

/// How much the next bid must exceed the current price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Increment {
    /// The same increment at every price.
    Fixed(Money),
    /// The named `ebay` ladder of price bands.
    Ebay,
}

impl Default for Increment {
    fn default() -> Self {
        Increment::Fixed(Money::from_cents(100))
    }
}

/// The `ebay` ladder: (band upper bound exclusive, increment), both in cents.
const EBAY_LADDER_CENTS: [(i64, i64); 9] = [
    (100, 5),
    (500, 25),
    (2_500, 50),
    (10_000, 100),
    (25_000, 250),
    (50_000, 500),
    (100_000, 1_000),
    (250_000, 2_500),
    (500_000, 5_000),
];
const EBAY_TOP_INCREMENT_CENTS: i64 = 10_000;

impl Increment {
    /// The increment that applies at `price`.
    pub fn at(self, price: Money) -> Money {
        match self {
            Increment::Fixed(step) => step,
            Increment::Ebay => {
                let band = EBAY_LADDER_CENTS
                    .iter()
                    .find(|(upper, _)| price.cents() < *upper);
                Money::from_cents(band.map_or(EBAY_TOP_INCREMENT_CENTS, |(_, step)| *step))
            }
        }
    }

    /// `"ebay"` or the fixed amount with two decimals.
    pub fn describe(self) -> String {
        match self {
            Increment::Fixed(step) => step.to_string(),
            Increment::Ebay => "ebay".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        Money::parse(text).expect("valid amount in test")
    }

    #[test]
    fn parse_accepts_plain_decimals_and_prints_two_places() {
        assert_eq!(m("55").to_string(), "55.00");
        assert_eq!(m("55.5").to_string(), "55.50");
        assert_eq!(m("55.500").to_string(), "55.50");
        assert_eq!(m("0.01").cents(), 1);
        assert_eq!(m("1000000000.00").cents(), AMOUNT_CENTS_MAX);
    }

    #[test]
    fn parse_rejects_everything_else() {
        for bad in [
            "", "abc", "-1", "+1", "1e3", "1_000", " 1", "1.", ".5", "1.2.3", "NaN",
        ] {
            assert_eq!(Money::parse(bad), Err(AmountError::Malformed), "{bad:?}");
        }
        assert_eq!(Money::parse("55.555"), Err(AmountError::TooPrecise));
        assert_eq!(Money::parse("0"), Err(AmountError::NotPositive));
        assert_eq!(Money::parse("0.00"), Err(AmountError::NotPositive));
        assert_eq!(Money::parse("1000000000.01"), Err(AmountError::TooLarge));
        assert_eq!(Money::parse(&"9".repeat(40)), Err(AmountError::Malformed));
    }
}
