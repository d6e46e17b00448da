//! Validation of a listing: a seller's description of a new auction, or an edit of one, turned
//! into the checked, seller-controlled part of an [`Auction`] ([`Listing`]).
//!
//! Every refusal is `VALIDATION_FAILED` naming the field as the HTTP API spells it (camelCase),
//! so a client can point at the input that is wrong. Bids are not validated here (see
//! [`crate::pricing`] and [`super::bid`]).
//!
//! The API runs the same rules before it proposes ([`crate::shape`]): [`new_listing`] whole (it
//! reads no state, only the time), and [`check_edit`], the part of an edit that needs no auction.

use crate::command::{AntiSnipeSpec, AuctionChanges, NewAuction};
use crate::error::Rejection;
use crate::ids::{TimestampMs, MILLIS_PER_SECOND};
use crate::model::{AntiSnipe, Auction};
use crate::money::{Increment, Money};
use crate::pricing::PriceRules;

pub const TITLE_CHARS_MAX: usize = 200;
pub const DESCRIPTION_CHARS_MAX: usize = 10_000;
pub const CATEGORY_CHARS_MAX: usize = 64;
/// Longest an auction may run, start to (original) end.
pub const AUCTION_DURATION_MS_MAX: i64 = 90 * 24 * 60 * 60 * 1_000;
/// Furthest in the future an auction may be scheduled to start.
pub const START_DELAY_MS_MAX: i64 = 365 * 24 * 60 * 60 * 1_000;
/// Largest anti-sniping window or extension.
pub const ANTI_SNIPE_SECONDS_MAX: i64 = 24 * 60 * 60;

/// The validated, seller-controlled part of an auction.
pub struct Listing {
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub rules: PriceRules,
    pub buy_now_price: Option<Money>,
    pub start_time: TimestampMs,
    pub end_time: TimestampMs,
    pub anti_snipe: AntiSnipe,
}

pub fn money(field: &str, text: &str) -> Result<Money, Rejection> {
    Money::parse(text.trim()).map_err(|error| Rejection::validation(field, error.to_string()))
}

pub fn increment(text: &str) -> Result<Increment, Rejection> {
    if text.trim().eq_ignore_ascii_case("ebay") {
        return Ok(Increment::Ebay);
    }
    money("bidIncrement", text).map(Increment::Fixed)
}

fn text(field: &str, value: &str, chars_max: usize, required: bool) -> Result<String, Rejection> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(Rejection::validation(field, "must not be empty"));
    }
    if value.chars().count() > chars_max {
        return Err(Rejection::validation(
            field,
            format!("must be at most {chars_max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Rejection::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

fn category(value: Option<&str>) -> Result<Option<String>, Rejection> {
    let value = value
        .map(|value| text("category", value, CATEGORY_CHARS_MAX, false))
        .transpose()?;
    Ok(value.filter(|value| !value.is_empty()))
}

fn anti_snipe(spec: Option<AntiSnipeSpec>) -> Result<AntiSnipe, Rejection> {
    let Some(spec) = spec else {
        return Ok(AntiSnipe::default());
    };
    for (field, seconds) in [
        ("antiSnipe.windowSeconds", spec.window_seconds),
        ("antiSnipe.extensionSeconds", spec.extension_seconds),
    ] {
        if !(0..=ANTI_SNIPE_SECONDS_MAX).contains(&seconds) {
            return Err(Rejection::validation(
                field,
                format!("must be between 0 and {ANTI_SNIPE_SECONDS_MAX}"),
            ));
        }
    }
    Ok(AntiSnipe {
        window_ms: spec.window_seconds * MILLIS_PER_SECOND,
        extension_ms: spec.extension_seconds * MILLIS_PER_SECOND,
    })
}

/// Reserve at or above the start; buy-now above the start and not below the reserve.
fn check_prices(rules: &PriceRules, buy_now: Option<Money>) -> Result<(), Rejection> {
    if rules
        .reserve
        .is_some_and(|reserve| reserve < rules.starting)
    {
        return Err(Rejection::validation(
            "reservePrice",
            "must be at least the starting price",
        ));
    }
    if let Some(buy_now) = buy_now {
        if buy_now <= rules.starting {
            return Err(Rejection::validation(
                "buyNowPrice",
                "must be above the starting price",
            ));
        }
        if rules.reserve.is_some_and(|reserve| buy_now < reserve) {
            return Err(Rejection::validation(
                "buyNowPrice",
                "must be at least the reserve price",
            ));
        }
    }
    Ok(())
}

fn end_not_ahead() -> Rejection {
    Rejection::validation("endTime", "must be after the start time and in the future")
}

/// The end must be after the start and after now, and the auction not longer than the maximum.
fn check_times(start: TimestampMs, end: TimestampMs, now: TimestampMs) -> Result<(), Rejection> {
    if end <= start || end <= now {
        return Err(end_not_ahead());
    }
    if end - start > AUCTION_DURATION_MS_MAX {
        return Err(Rejection::validation(
            "endTime",
            "the auction may run at most 90 days",
        ));
    }
    Ok(())
}

fn start_time(requested: Option<TimestampMs>, now: TimestampMs) -> Result<TimestampMs, Rejection> {
    let start = requested.map_or(now, |start| start.max(now));
    if start - now > START_DELAY_MS_MAX {
        return Err(Rejection::validation("startTime", "must be within a year"));
    }
    Ok(start)
}

fn end_time(new: &NewAuction, start: TimestampMs) -> Result<TimestampMs, Rejection> {
    match (new.end_time, new.duration_seconds) {
        (Some(_), Some(_)) => Err(Rejection::validation(
            "endTime",
            "give endTime or durationSeconds, not both",
        )),
        (Some(end), None) => Ok(end),
        (None, Some(seconds))
            if seconds > 0 && seconds <= AUCTION_DURATION_MS_MAX / MILLIS_PER_SECOND =>
        {
            Ok(start + seconds * MILLIS_PER_SECOND)
        }
        (None, Some(_)) => Err(Rejection::validation(
            "durationSeconds",
            "must be between 1 and 7776000",
        )),
        (None, None) => Err(Rejection::validation(
            "endTime",
            "endTime or durationSeconds is required",
        )),
    }
}

/// Validates a new auction at `now`.
pub fn new_listing(new: &NewAuction, now: TimestampMs) -> Result<Listing, Rejection> {
    let title = text("title", &new.title, TITLE_CHARS_MAX, true)?;
    let description = text(
        "description",
        new.description.as_deref().unwrap_or(""),
        DESCRIPTION_CHARS_MAX,
        false,
    )?;
    let category = category(new.category.as_deref())?;
    let rules = PriceRules {
        starting: money("startingPrice", &new.starting_price)?,
        reserve: new
            .reserve_price
            .as_deref()
            .map(|text| money("reservePrice", text))
            .transpose()?,
        increment: new
            .bid_increment
            .as_deref()
            .map(increment)
            .transpose()?
            .unwrap_or_default(),
    };
    let buy_now_price = new
        .buy_now_price
        .as_deref()
        .map(|text| money("buyNowPrice", text))
        .transpose()?;
    check_prices(&rules, buy_now_price)?;
    let start_time = start_time(new.start_time, now)?;
    let end_time = end_time(new, start_time)?;
    check_times(start_time, end_time, now)?;
    let anti_snipe = anti_snipe(new.anti_snipe)?;
    Ok(Listing {
        title,
        description,
        category,
        rules,
        buy_now_price,
        start_time,
        end_time,
        anti_snipe,
    })
}

/// The fields of an edit, each checked on its own (the rules that need no auction).
struct CheckedChanges {
    title: Option<String>,
    description: Option<String>,
    category: Option<Option<String>>,
    starting: Option<Money>,
    reserve: Option<Option<Money>>,
    increment: Option<Increment>,
    buy_now: Option<Option<Money>>,
}

fn optional_money(field: &str, value: &Option<String>) -> Result<Option<Money>, Rejection> {
    value.as_deref().map(|text| money(field, text)).transpose()
}

/// Checks every field of an edit in the order [`edited`] reports them.
fn check_fields(changes: &AuctionChanges) -> Result<CheckedChanges, Rejection> {
    let title = changes.title.as_deref();
    let description = changes.description.as_deref();
    Ok(CheckedChanges {
        title: title
            .map(|title| text("title", title, TITLE_CHARS_MAX, true))
            .transpose()?,
        description: description
            .map(|description| text("description", description, DESCRIPTION_CHARS_MAX, false))
            .transpose()?,
        category: changes
            .category
            .as_ref()
            .map(|category| self::category(category.as_deref()))
            .transpose()?,
        starting: changes
            .starting_price
            .as_deref()
            .map(|text| money("startingPrice", text))
            .transpose()?,
        reserve: changes
            .reserve_price
            .as_ref()
            .map(|reserve| optional_money("reservePrice", reserve))
            .transpose()?,
        increment: changes
            .bid_increment
            .as_deref()
            .map(increment)
            .transpose()?,
        buy_now: changes
            .buy_now_price
            .as_ref()
            .map(|buy_now| optional_money("buyNowPrice", buy_now))
            .transpose()?,
    })
}

/// The shape of an edit at `now`: every rule [`edited`] applies that needs no auction (each
/// field on its own, and a new end in the future). An edit refused here is refused by
/// [`edited`] for every auction, with the same field (see the property tests).
pub fn check_edit(changes: &AuctionChanges, now: TimestampMs) -> Result<(), Rejection> {
    check_fields(changes)?;
    match changes.end_time {
        Some(end) if end <= now => Err(end_not_ahead()),
        _ => Ok(()),
    }
}

/// Applies a seller's edit to a copy of `auction` and validates the result as a whole.
pub fn edited(
    auction: &Auction,
    changes: &AuctionChanges,
    now: TimestampMs,
) -> Result<Auction, Rejection> {
    let checked = check_fields(changes)?;
    let mut edited = auction.clone();
    if let Some(title) = checked.title {
        edited.title = title;
    }
    if let Some(description) = checked.description {
        edited.description = description;
    }
    if let Some(category) = checked.category {
        edited.category = category;
    }
    if let Some(starting) = checked.starting {
        edited.rules.starting = starting;
    }
    if let Some(reserve) = checked.reserve {
        edited.rules.reserve = reserve;
    }
    if let Some(step) = checked.increment {
        edited.rules.increment = step;
    }
    if let Some(buy_now) = checked.buy_now {
        edited.buy_now_price = buy_now;
    }
    if let Some(end) = changes.end_time {
        check_times(edited.start_time, end, now)?;
        edited.end_time = end;
        edited.original_end_time = end;
    }
    check_prices(&edited.rules, edited.buy_now_price)?;
    Ok(edited)
}
