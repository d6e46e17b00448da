//! The operation mix of the load generator: which operations a client runs and how often,
//! parsed from `bid=60,proxy=20,read=15,history=5,search=10`, and the weighted pick of the next one.
//!
//! Pure: the pick takes the caller's seeded random number generator.

use std::fmt;

use anyhow::{bail, Context};
use rand::Rng;

/// The largest weight of one operation; the sum of weights stays far below `u32::MAX`.
pub const WEIGHT_MAX: u32 = 1_000_000;

/// One kind of operation of the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// `POST /auctions/{id}/bids`: a manual bid.
    Bid,
    /// `POST /auctions/{id}/proxy`: a proxy bid (a maximum).
    Proxy,
    /// `GET /auctions/{id}`: one auction, linearizable unless `--local-reads`.
    Read,
    /// `GET /auctions/{id}/bids`: the newest page of the bid history.
    History,
    /// `GET /auctions?status=active&category=…`: one listing page.
    List,
    /// `GET /search?q=…`: one search page (words of the generated titles, filters, sorts).
    Search,
}

impl OpKind {
    pub const ALL: [OpKind; 6] = [
        OpKind::Bid,
        OpKind::Proxy,
        OpKind::Read,
        OpKind::History,
        OpKind::List,
        OpKind::Search,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Bid => "bid",
            OpKind::Proxy => "proxy",
            OpKind::Read => "read",
            OpKind::History => "history",
            OpKind::List => "list",
            OpKind::Search => "search",
        }
    }

    fn parse(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether the operation is a write (it carries an `X-Idempotency-Key`).
    pub fn is_write(self) -> bool {
        matches!(self, OpKind::Bid | OpKind::Proxy)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Weights of the operations; at least one is positive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// `(kind, weight)` in the order of [`OpKind::ALL`], zero weights left out.
    weights: Vec<(OpKind, u32)>,
    total: u32,
}

impl Mix {
    /// Parses `name=weight` pairs separated by commas; names left out weigh 0.
    pub fn parse(text: &str) -> anyhow::Result<Mix> {
        let mut weights = [0u32; OpKind::ALL.len()];
        let mut seen = [false; OpKind::ALL.len()];
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("`{part}` is not name=weight"))?;
            let kind = OpKind::parse(name.trim()).with_context(|| {
                format!(
                    "unknown operation `{name}` (known: bid, proxy, read, history, list, search)"
                )
            })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .with_context(|| format!("the weight of `{name}` is not a whole number"))?;
            if weight > WEIGHT_MAX {
                bail!("the weight of `{name}` is above {WEIGHT_MAX}");
            }
            let slot = kind as usize;
            if seen[slot] {
                bail!("`{name}` is given twice");
            }
            seen[slot] = true;
            weights[slot] = weight;
        }
        let weights: Vec<(OpKind, u32)> = OpKind::ALL
            .into_iter()
            .zip(weights)
            .filter(|(_, weight)| *weight > 0)
            .collect();
        let total = weights.iter().map(|(_, weight)| weight).sum();
        if total == 0 {
            bail!("the mix has no operation with a positive weight");
        }
        Ok(Mix { weights, total })
    }

    /// The next operation, each with probability weight / total.
    pub fn pick(&self, rng: &mut impl Rng) -> OpKind {
        let mut ticket = rng.random_range(0..self.total);
        for (kind, weight) in &self.weights {
            if ticket < *weight {
                return *kind;
            }
            ticket -= weight;
        }
        unreachable!("the tickets add up to the total weight")
    }

    /// `(kind, weight)` of every operation with a positive weight.
    pub fn weights(&self) -> &[(OpKind, u32)] {
        &self.weights
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(kind, weight)| format!("{kind}={weight}"))
            .collect();
        formatter.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_mix_parses_names_and_weights_and_leaves_out_zeros() {
        let mix = Mix::parse("bid=60, proxy=20,read=15,history=5,list=0").expect("valid");
        assert_eq!(
            mix.weights(),
            &[
                (OpKind::Bid, 60),
                (OpKind::Proxy, 20),
                (OpKind::Read, 15),
                (OpKind::History, 5)
            ]
        );
        assert_eq!(mix.to_string(), "bid=60,proxy=20,read=15,history=5");
        assert_eq!(
            Mix::parse("read=1").expect("valid").weights(),
            &[(OpKind::Read, 1)]
        );
    }

    #[test]
    fn a_bad_mix_is_refused_with_a_reason() {
        for (text, reason) in [
            ("bid=60,sell=5", "unknown operation"),
            ("bid", "not name=weight"),
            ("bid=-1", "not a whole number"),
            ("bid=1,bid=2", "twice"),
            ("bid=0,read=0", "no operation"),
            ("", "no operation"),
            ("bid=1000001", "above"),
        ] {
            let error = Mix::parse(text).expect_err(text).to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::parse("bid=60,proxy=20,read=15,history=5").expect("valid");
        let mut rng = StdRng::seed_from_u64(7);
        let picks = 100_000;
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..picks {
            *counts.entry(mix.pick(&mut rng)).or_insert(0u32) += 1;
        }
        assert_eq!(
            counts.get(&OpKind::List),
            None,
            "a zero weight is never picked"
        );
        for (kind, weight) in mix.weights() {
            let share = f64::from(counts[kind]) / f64::from(picks);
            let expected = f64::from(*weight) / 100.0;
            assert!(
                (share - expected).abs() < 0.01,
                "{kind}: {share} instead of {expected}"
            );
        }
    }

    #[test]
    fn the_same_seed_picks_the_same_sequence() {
        let mix = Mix::parse("bid=1,proxy=1,read=1,history=1,list=1").expect("valid");
        let sequence = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..64).map(|_| mix.pick(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(sequence(3), sequence(3));
        assert_ne!(sequence(3), sequence(4));
    }
}
