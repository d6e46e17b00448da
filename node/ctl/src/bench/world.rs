//! What the clients share: the users (id, session token), the auctions (id, seller), and per
//! auction what the answers so far say about its price, so that bids are usually valid.
//!
//! The known price only moves up (prices never fall in an active auction), so an old answer
//! arriving after a newer one cannot make later bids too low. Knowledge is a hint, not the
//! truth: concurrent bids make some bids too low anyway, which the server refuses with the
//! current minimum, and that minimum is learned as well.
//!
//! On a hot auction many bids are in flight at once, all made from the same known price: a
//! bid is then accepted only if its amount beats every bid applied before it, which for a
//! batch of n bids in random order is about ln(n) of them. So the amounts of one auction come
//! from a ladder shared by the clients ([`BenchAuction::next_amount`]): each amount is above
//! every amount handed out before it, so bids are valid when the cluster applies them in the
//! order they were sent, and the `BID_TOO_LOW` that remain measure reordering (forwarding
//! between nodes, concurrent batches) and proxy maxima that jumped ahead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: String,
    pub token: String,
}

/// What is known about an auction's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The smallest bid the last answer would accept, in cents.
    pub minimum_cents: u64,
    /// The index of the high bidder, when known.
    pub high_bidder: Option<usize>,
}

#[derive(Debug)]
pub struct BenchAuction {
    pub id: String,
    /// Index of the seller among the users.
    pub seller: usize,
    known: Mutex<Known>,
    /// The highest amount handed out for this auction, in cents.
    ladder_cents: AtomicU64,
}

/// The API's largest amount, 1,000,000,000.00: a bid never asks for more. (A run would need
/// hours of thousands of bids a second on one auction to get there.)
pub const AMOUNT_CENTS_MAX: u64 = 100_000_000_000;

impl BenchAuction {
    pub fn new(id: String, seller: usize, starting_cents: u64) -> BenchAuction {
        BenchAuction {
            id,
            seller,
            known: Mutex::new(Known {
                minimum_cents: starting_cents,
                high_bidder: None,
            }),
            ladder_cents: AtomicU64::new(0),
        }
    }

    /// The amount of the next bid: at least one increment above every amount handed out
    /// before for this auction, at least `minimum_cents`, plus `extra_cents`; at most
    /// [`AMOUNT_CENTS_MAX`].
    pub fn next_amount(&self, minimum_cents: u64, increment_cents: u64, extra_cents: u64) -> u64 {
        let step = |last: u64| {
            last.saturating_add(increment_cents)
                .max(minimum_cents)
                .saturating_add(extra_cents)
                .min(AMOUNT_CENTS_MAX)
        };
        let last = self
            .ladder_cents
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(step(last))
            })
            .unwrap_or_else(|last| last);
        step(last)
    }

    pub fn known(&self) -> Known {
        // A std mutex: a copy in or out, never held across an await.
        *self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Learns a minimum bid and, if the answer said, the high bidder (`Some(None)`: unknown
    /// user). Ignored when an answer already seen had a higher minimum.
    pub fn learn(&self, minimum_cents: u64, high_bidder: Option<Option<usize>>) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *known = merge(*known, minimum_cents, high_bidder);
    }
}

/// The pure rule of [`BenchAuction::learn`].
fn merge(known: Known, minimum_cents: u64, high_bidder: Option<Option<usize>>) -> Known {
    if minimum_cents > known.minimum_cents {
        Known {
            minimum_cents,
            // A higher price from an answer that did not name the bidder: nobody is known.
            high_bidder: high_bidder.flatten(),
        }
    } else if minimum_cents == known.minimum_cents {
        Known {
            minimum_cents,
            high_bidder: high_bidder.unwrap_or(known.high_bidder),
        }
    } else {
        known
    }
}

/// Everything the setup phase made.
#[derive(Debug)]
pub struct World {
    pub users: Vec<BenchUser>,
    pub auctions: Vec<BenchAuction>,
    /// The fixed bid increment of every auction, in cents.
    pub increment_cents: u64,
    user_index: HashMap<String, usize>,
}

impl World {
    pub fn new(users: Vec<BenchUser>, auctions: Vec<BenchAuction>, increment_cents: u64) -> World {
        let user_index = users
            .iter()
            .enumerate()
            .map(|(index, user)| (user.id.clone(), index))
            .collect();
        World {
            users,
            auctions,
            increment_cents,
            user_index,
        }
    }

    /// The index of the user with this id, if it is one of ours.
    pub fn user(&self, id: &str) -> Option<usize> {
        self.user_index.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_hands_out_increasing_amounts_above_the_known_minimum() {
        let auction = BenchAuction::new("a".to_owned(), 0, 1_000);
        assert_eq!(
            auction.next_amount(1_000, 100, 0),
            1_000,
            "the first is the minimum"
        );
        assert_eq!(
            auction.next_amount(1_000, 100, 0),
            1_100,
            "then one increment up"
        );
        assert_eq!(
            auction.next_amount(1_000, 100, 300),
            1_500,
            "plus the extra"
        );
        assert_eq!(
            auction.next_amount(5_000, 100, 0),
            5_000,
            "a higher known minimum wins"
        );
        assert_eq!(
            auction.next_amount(AMOUNT_CENTS_MAX, 100, 100),
            AMOUNT_CENTS_MAX
        );
        assert_eq!(auction.next_amount(0, 100, 0), AMOUNT_CENTS_MAX, "capped");
    }

    #[test]
    fn concurrent_clients_never_get_the_same_amount() {
        let auction = std::sync::Arc::new(BenchAuction::new("a".to_owned(), 0, 1_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let auction = auction.clone();
                std::thread::spawn(move || {
                    (0..1_000)
                        .map(|_| auction.next_amount(1_000, 100, 0))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("no panic"))
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4_000);
    }

    #[test]
    fn known_prices_only_move_up() {
        let auction = BenchAuction::new("a".to_owned(), 0, 1_000);
        auction.learn(1_200, Some(Some(3)));
        assert_eq!(
            auction.known(),
            Known {
                minimum_cents: 1_200,
                high_bidder: Some(3)
            }
        );
        auction.learn(1_100, Some(Some(4)));
        assert_eq!(
            auction.known().high_bidder,
            Some(3),
            "an older answer is ignored"
        );
        auction.learn(1_200, None);
        assert_eq!(
            auction.known().high_bidder,
            Some(3),
            "same price, bidder not said"
        );
        auction.learn(1_200, Some(Some(5)));
        assert_eq!(auction.known().high_bidder, Some(5));
        auction.learn(1_500, None);
        assert_eq!(
            auction.known(),
            Known {
                minimum_cents: 1_500,
                high_bidder: None
            }
        );
    }
}
