//! SplitMix64: the one seeded pseudo-random generator of the project, small, fast and portable
//! (the same numbers on every platform and release, unlike `rand`'s `StdRng`).
//!
//! The simulator draws every choice of a run from it (`auction-sim`'s `SimRng` derives
//! independent streams from the run's seed), and a simulated node fills its "random" bytes
//! from it (`auction-api`'s seeded entropy), so a seed reproduces a run bit for bit. Pure: the
//! state is the caller's; the state machine itself never draws a number.
//!
//! Not for secrets: the output is predictable from any one state. Real nodes take their
//! randomness from the operating system.

/// The generator: one 64-bit state, advanced by a fixed odd constant per draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state is `state` exactly (no mixing: callers that want nearby seeds
    /// to start far apart draw once first).
    pub fn new(state: u64) -> SplitMix64 {
        SplitMix64 { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `bytes` with one draw per 8 bytes, little-endian; a short last chunk takes the
    /// draw's first bytes.
    pub fn fill_bytes(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let draw = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&draw[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn known_values_from_seed_zero_and_a_seed() {
        // The reference sequence of SplitMix64 from state 0 (Vigna's splitmix64.c).
        let mut zero = SplitMix64::new(0);
        assert_eq!(zero.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(zero.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(zero.next_u64(), 0x06c4_5d18_8009_454f);
        let mut seven = SplitMix64::new(7);
        let first = seven.next_u64();
        assert_eq!(
            SplitMix64::new(7).next_u64(),
            first,
            "one state, one number"
        );
    }

    #[test]
    fn bytes_are_draws_in_little_endian_order() {
        let mut bytes = [0u8; 12];
        SplitMix64::new(0).fill_bytes(&mut bytes);
        let mut draws = SplitMix64::new(0);
        let first = draws.next_u64().to_le_bytes();
        let second = draws.next_u64().to_le_bytes();
        assert_eq!(bytes[..8], first);
        assert_eq!(bytes[8..], second[..4]);
    }
}
