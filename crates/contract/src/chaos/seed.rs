//! Seeded chaos: a case created with `Hookline-Chaos-Seed: <u64>` draws
//! what chaos decides about it (its verdict and `reorder` when it is
//! accepted, the faults of each of its jobs' first attempts) from a
//! generator seeded by that number instead of the thread's random source,
//! so the same seed against the same profile injects the same faults, in
//! the same order. Timing jitter (how long a `delay` holds, when a `replay`
//! comes) is not seeded: it changes when, not what.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood; Vigna's reference
//! `splitmix64.c`), not `rand`'s `StdRng`: `rand` documents `StdRng` as not
//! reproducible across its versions, and a seed printed by one build of
//! hookline must replay the same faults on the next. SplitMix64 is a dozen
//! lines, fixed forever, and good enough for coin flips.
//!
//! One case's draws come from separate [`Stream`]s of its seed, so the
//! faults of its callback do not depend on how many numbers its acceptance
//! or its events used. `hookline trigger --seed N` gives case `i` the seed
//! [`case_seed`]`(N, i)`.

/// SplitMix64's increment (2^64 / φ, odd).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The SplitMix64 generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A number in [0, 1): the top 53 bits, as many as an `f64` holds exactly.
    pub fn uniform(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }
}

/// The seed of case `index` (from 0) of a run seeded with `run`: the
/// `index + 1`-th output of SplitMix64 started at `run`, so neighbouring
/// cases and neighbouring runs get unrelated seeds.
pub fn case_seed(run: u64, index: u64) -> u64 {
    mix(run.wrapping_add(GOLDEN.wrapping_mul(index.wrapping_add(1))))
}

/// What one case's draws are for; each has a generator of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `POST /document`: the verdict, then `reorder`.
    Acceptance,
    /// The first attempt of its callback.
    Callback,
    /// The first attempt of one of its events (its sequence: 1 received,
    /// 2 the decision; every subscription's copy draws the same).
    Event(u32),
}

impl Stream {
    /// The generator for this stream of the case seeded with `seed`.
    pub fn of(self, seed: u64) -> SplitMix64 {
        let index = match self {
            Stream::Acceptance => 0,
            Stream::Callback => 1,
            Stream::Event(sequence) => 2 + u64::from(sequence),
        };
        SplitMix64::new(case_seed(seed, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_gives_the_reference_sequence() {
        // The outputs of Vigna's splitmix64.c from the state 1234567 (as
        // rand_xoshiro's test of its SplitMix64 has them).
        let mut rng = SplitMix64::new(1_234_567);
        let first: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn case_seeds_are_the_generator_s_outputs_and_differ_case_by_case() {
        let mut rng = SplitMix64::new(42);
        for index in 0..100 {
            assert_eq!(case_seed(42, index), rng.next_u64(), "case {index}");
        }
        let seeds: std::collections::BTreeSet<u64> = (0..1000).map(|i| case_seed(7, i)).collect();
        assert_eq!(seeds.len(), 1000);
        assert_ne!(case_seed(7, 0), case_seed(8, 0));
    }

    #[test]
    fn uniform_numbers_fall_in_the_unit_interval_and_streams_differ() {
        let mut rng = SplitMix64::new(0);
        let numbers: Vec<f64> = (0..10_000).map(|_| rng.uniform()).collect();
        assert!(numbers.iter().all(|n| (0.0..1.0).contains(n)));
        let mean = numbers.iter().sum::<f64>() / 10_000.0;
        assert!((0.48..0.52).contains(&mean), "{mean}");
        let first = |stream: Stream| stream.of(9).next_u64();
        assert_ne!(first(Stream::Acceptance), first(Stream::Callback));
        assert_ne!(first(Stream::Event(1)), first(Stream::Event(2)));
        assert_eq!(first(Stream::Callback), Stream::Callback.of(9).next_u64());
    }
}
