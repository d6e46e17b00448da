//! Errors: domain rejections (deterministic results of applying a command) and storage failures.
//!
//! A [`Rejection`] is an outcome like any other: every replica computes the same one, it is
//! recorded for idempotent retries and it counts as applied. A [`StoreError`] is not
//! deterministic, so it never becomes a recorded outcome; the storage layer stops rather than
//! let replicas diverge. [`Rejection::code`] is the stable wire code of RULES.md and
//! `api/API.md`; the HTTP status belongs to the API layer.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kv::StoreError;
use crate::money::Money;

/// The crate's one error type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A deterministic refusal of a command, with the details a client needs.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Rejection {
    #[error("auction not found")]
    AuctionNotFound,
    #[error("the auction has ended")]
    AuctionEnded,
    #[error("the auction has not started yet")]
    AuctionNotStarted,
    #[error("the auction was cancelled")]
    AuctionCancelled,
    #[error("the seller cannot bid on their own auction")]
    SellerCannotBid,
    #[error("this user is banned")]
    UserBanned,
    #[error("invalid amount: {reason}")]
    InvalidAmount { reason: String },
    #[error("bid is below the minimum bid of {minimum_bid}")]
    BidTooLow {
        current_bid: Option<Money>,
        minimum_bid: Money,
    },
    #[error("a new maximum must exceed your current maximum of {current_max}")]
    MaximumNotRaised { current_max: Money },
    #[error("you are already the high bidder")]
    AlreadyHighBidder,
    #[error("buy now is not available: {reason}")]
    BuyNowUnavailable { reason: String },
    #[error("the auction already has bids and can no longer be changed by its seller")]
    AuctionHasBids,
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("email address is already registered")]
    EmailTaken,
    #[error("user not found")]
    UserNotFound,
    #[error("notification not found")]
    NotificationNotFound,
    #[error("image not found")]
    ImageNotFound,
    #[error("this idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("this command does not belong to this group")]
    WrongGroup,
}

impl Rejection {
    /// The stable wire code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::AuctionNotFound => "AUCTION_NOT_FOUND",
            Rejection::AuctionEnded => "AUCTION_ENDED",
            Rejection::AuctionNotStarted => "AUCTION_NOT_STARTED",
            Rejection::AuctionCancelled => "AUCTION_CANCELLED",
            Rejection::SellerCannotBid => "SELLER_CANNOT_BID",
            Rejection::UserBanned => "USER_BANNED",
            Rejection::InvalidAmount { .. } => "INVALID_AMOUNT",
            Rejection::BidTooLow { .. } | Rejection::MaximumNotRaised { .. } => "BID_TOO_LOW",
            Rejection::AlreadyHighBidder => "ALREADY_HIGH_BIDDER",
            Rejection::BuyNowUnavailable { .. } => "BUY_NOW_UNAVAILABLE",
            Rejection::AuctionHasBids => "AUCTION_HAS_BIDS",
            Rejection::Validation { .. } => "VALIDATION_FAILED",
            Rejection::Forbidden { .. } => "FORBIDDEN",
            Rejection::EmailTaken => "EMAIL_TAKEN",
            Rejection::UserNotFound => "USER_NOT_FOUND",
            Rejection::NotificationNotFound => "NOTIFICATION_NOT_FOUND",
            Rejection::ImageNotFound => "IMAGE_NOT_FOUND",
            Rejection::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Rejection::WrongGroup => "WRONG_GROUP",
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Rejection {
        Rejection::Validation {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Rejection {
        Rejection::Forbidden {
            message: message.into(),
        }
    }
}
