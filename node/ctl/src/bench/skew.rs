//! Which auction an operation targets: a hot set of the first `K` auctions gets a share `P` of
//! the operations (uniformly among them), the other auctions share the rest uniformly. With no
//! hot set (`K = 0`, or `K` at least the number of auctions) every auction is equally likely.
//! "One hot auction" is `--auctions 1`, or `--hot-auctions 1 --hot-share 1`.
//!
//! Pure: the pick takes the caller's seeded random number generator.

use anyhow::bail;
use rand::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct Skew {
    auctions: usize,
    hot: usize,
    hot_share: f64,
}

impl Skew {
    pub fn new(auctions: usize, hot: usize, hot_share: f64) -> anyhow::Result<Skew> {
        if auctions == 0 {
            bail!("there must be at least one auction");
        }
        if hot > auctions {
            bail!("--hot-auctions ({hot}) is more than --auctions ({auctions})");
        }
        if !(0.0..=1.0).contains(&hot_share) {
            bail!("--hot-share must be between 0 and 1, not {hot_share}");
        }
        Ok(Skew {
            auctions,
            hot,
            hot_share,
        })
    }

    /// The index of the next auction, in `0..auctions`.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        if self.hot == 0 || self.hot == self.auctions {
            return rng.random_range(0..self.auctions);
        }
        if rng.random_bool(self.hot_share) {
            rng.random_range(0..self.hot)
        } else {
            rng.random_range(self.hot..self.auctions)
        }
    }
}

/// A user drawn uniformly from `0..users` without those in `avoid` (the seller, the known
/// high bidder); any user when `avoid` covers everyone.
pub fn pick_user(rng: &mut impl Rng, users: usize, avoid: &[usize]) -> usize {
    let mut avoided: Vec<usize> = avoid.iter().copied().filter(|user| *user < users).collect();
    avoided.sort_unstable();
    avoided.dedup();
    let Some(candidates) = users.checked_sub(avoided.len()).filter(|count| *count > 0) else {
        return rng.random_range(0..users.max(1));
    };
    // The n-th candidate: skip over every avoided user at or below it, in increasing order.
    let mut user = rng.random_range(0..candidates);
    for skipped in avoided {
        if user >= skipped {
            user += 1;
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn hot_fraction(skew: &Skew, hot: usize, picks: u32) -> f64 {
        let mut rng = StdRng::seed_from_u64(11);
        let hits = (0..picks).filter(|_| skew.pick(&mut rng) < hot).count();
        hits as f64 / f64::from(picks)
    }

    #[test]
    fn the_hot_set_gets_its_share() {
        let skew = Skew::new(1_000, 10, 0.9).expect("valid");
        let share = hot_fraction(&skew, 10, 100_000);
        assert!((share - 0.9).abs() < 0.01, "hot share {share}");
    }

    #[test]
    fn without_a_hot_set_picks_are_uniform_and_in_range() {
        let skew = Skew::new(100, 0, 0.9).expect("valid");
        let mut rng = StdRng::seed_from_u64(5);
        let mut counts = vec![0u32; 100];
        for _ in 0..100_000 {
            counts[skew.pick(&mut rng)] += 1;
        }
        let (least, most) = (counts.iter().min(), counts.iter().max());
        assert!(
            least >= Some(&850) && most <= Some(&1_150),
            "{least:?}..{most:?}"
        );
        let share = hot_fraction(&skew, 10, 100_000);
        assert!(
            (share - 0.1).abs() < 0.01,
            "no hot set: the first 10 get 10%, not {share}"
        );
    }

    #[test]
    fn one_auction_is_always_picked_and_cold_picks_skip_the_hot_set() {
        let mut rng = StdRng::seed_from_u64(1);
        let single = Skew::new(1, 0, 0.0).expect("valid");
        assert!((0..1_000).all(|_| single.pick(&mut rng) == 0));
        let all_hot = Skew::new(50, 1, 1.0).expect("valid");
        assert!((0..1_000).all(|_| all_hot.pick(&mut rng) == 0));
        let all_cold = Skew::new(50, 5, 0.0).expect("valid");
        assert!((0..1_000).all(|_| (5..50).contains(&all_cold.pick(&mut rng))));
    }

    #[test]
    fn bad_skews_are_refused() {
        assert!(Skew::new(0, 0, 0.5).is_err());
        assert!(Skew::new(10, 11, 0.5).is_err());
        assert!(Skew::new(10, 1, 1.5).is_err());
        assert!(Skew::new(10, 1, f64::NAN).is_err());
    }

    #[test]
    fn a_picked_user_avoids_the_seller_and_the_high_bidder() {
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..1_000 {
            assert_eq!(pick_user(&mut rng, 3, &[2, 0]), 1);
            assert!([0, 2].contains(&pick_user(&mut rng, 3, &[1, 1])));
        }
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[pick_user(&mut rng, 5, &[3, 1])] += 1;
        }
        assert_eq!((counts[1], counts[3]), (0, 0), "{counts:?}");
        for user in [0, 2, 4] {
            assert!(counts[user].abs_diff(50_000 / 3) < 700, "{counts:?}");
        }
        // Nobody left to pick: any user rather than none.
        assert_eq!(pick_user(&mut rng, 1, &[0]), 0);
    }
}
