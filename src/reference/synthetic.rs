//! A deterministic synthetic data set: seeded geometric Brownian motion.
//!
//! The generator uses only IEEE 754 addition, multiplication, division and square root,
//! which are exactly rounded on every platform, so a seed gives bit-identical bars on
//! every machine and every Rust version (no `exp`, `ln` or `cos` from the platform's
//! math library, whose last bits may differ).

use std::time::Duration;

use crate::reference::Bar;
use crate::wire::Timestamp;

/// The settings of the synthetic generator; [`SyntheticBars::default`] is the embedded
/// data set of the examples: 10,000 hourly bars from 2024-01-01, seed 42.
///
/// Prices follow geometric Brownian motion with annual drift `drift` and annual
/// volatility `volatility`, discretised with `steps_per_bar` Euler steps per bar
/// (`p ← p × (1 + μ·dt + σ·√dt·z)`, `dt` the step length in years of 365 days). The
/// open of a bar is the close of the one before; high and low are the extremes of the
/// steps inside the bar. The normal draws `z` are Irwin–Hall sums (twelve uniforms minus
/// six: mean 0, variance 1, bounded by ±6) from a SplitMix64-seeded xoshiro256**
/// generator.
///
/// ```
/// use backtest_stream::reference::SyntheticBars;
///
/// let bars = SyntheticBars { count: 500, seed: 7, ..SyntheticBars::default() }.generate()?;
/// assert_eq!(bars.len(), 500);
/// assert_eq!(bars, SyntheticBars { count: 500, seed: 7, ..SyntheticBars::default() }.generate()?);
/// assert!(bars.iter().all(|b| b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close)));
/// # Ok::<(), backtest_stream::reference::SyntheticError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticBars {
    /// The seed: the same seed gives the same bars.
    pub seed: u64,
    /// How many bars.
    pub count: usize,
    /// The timestamp of the first bar.
    pub start: Timestamp,
    /// The time between bars (whole milliseconds; at least one).
    pub interval: Duration,
    /// The open of the first bar.
    pub initial_price: f64,
    /// Annual drift μ (0.05 = 5 % a year).
    pub drift: f64,
    /// Annual volatility σ (0.2 = 20 % a year).
    pub volatility: f64,
    /// Euler steps per bar (at least one).
    pub steps_per_bar: u32,
}

impl SyntheticBars {
    /// The symbol the crate's programs give synthetic bars (`"SYNTH"`): they are no
    /// market's prices.
    pub const SYMBOL: &'static str = "SYNTH";
}

impl Default for SyntheticBars {
    fn default() -> Self {
        Self {
            seed: 42,
            count: 10_000,
            // 2024-01-01T00:00:00Z
            start: Timestamp::from_unix_millis(1_704_067_200_000).unwrap_or_else(Timestamp::now),
            interval: Duration::from_secs(3600),
            initial_price: 100.0,
            drift: 0.05,
            volatility: 0.2,
            steps_per_bar: 4,
        }
    }
}

/// Why [`SyntheticBars::generate`] refused its settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyntheticError {
    /// A setting is out of range.
    #[error("invalid synthetic data setting `{field}`: {reason}")]
    InvalidSetting {
        /// The field of [`SyntheticBars`].
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A bar's timestamp is past the range of [`Timestamp`].
    #[error("bar {index} is past the supported timestamp range")]
    TimestampOutOfRange {
        /// The index of the bar.
        index: usize,
    },
}

const MILLIS_PER_YEAR: f64 = 365.0 * 24.0 * 3600.0 * 1000.0;

impl SyntheticBars {
    /// `count` bars with the other settings of the default data set.
    pub fn with_count(count: usize) -> Self {
        Self {
            count,
            ..Self::default()
        }
    }

    /// Generates the bars.
    pub fn generate(&self) -> Result<Vec<Bar>, SyntheticError> {
        let invalid = |field, reason: &str| SyntheticError::InvalidSetting {
            field,
            reason: reason.to_owned(),
        };
        let interval_ms = i64::try_from(self.interval.as_millis())
            .map_err(|_| invalid("interval", "too long"))?;
        if interval_ms < 1 {
            return Err(invalid("interval", "must be at least one millisecond"));
        }
        if !(self.initial_price.is_finite() && self.initial_price > 0.0) {
            return Err(invalid("initial_price", "must be finite and positive"));
        }
        if !self.drift.is_finite() {
            return Err(invalid("drift", "must be finite"));
        }
        if !(self.volatility.is_finite() && self.volatility >= 0.0) {
            return Err(invalid("volatility", "must be finite and not negative"));
        }
        if self.steps_per_bar == 0 {
            return Err(invalid("steps_per_bar", "must be at least one"));
        }
        let dt = interval_ms as f64 / MILLIS_PER_YEAR / f64::from(self.steps_per_bar);
        let mu_dt = self.drift * dt;
        let sigma_sqrt_dt = self.volatility * dt.sqrt();
        // z is bounded by ±6: keep every step factor positive.
        if mu_dt.abs() + 6.0 * sigma_sqrt_dt >= 0.5 {
            return Err(invalid(
                "volatility",
                "too large for the interval: a single step could move the price by 50 % or more",
            ));
        }
        let start_ms = self.start.unix_millis();
        let mut rng = Xoshiro256StarStar::seed_from_u64(self.seed);
        let mut bars = Vec::with_capacity(self.count);
        let mut price = self.initial_price;
        for index in 0..self.count {
            let millis = i64::try_from(index)
                .ok()
                .and_then(|i| i.checked_mul(interval_ms))
                .and_then(|offset| offset.checked_add(start_ms))
                .ok_or(SyntheticError::TimestampOutOfRange { index })?;
            let timestamp = Timestamp::from_unix_millis(millis)
                .ok_or(SyntheticError::TimestampOutOfRange { index })?;
            let open = price;
            let (mut high, mut low) = (open, open);
            for _ in 0..self.steps_per_bar {
                price *= 1.0 + mu_dt + sigma_sqrt_dt * rng.standard_normal();
                high = high.max(price);
                low = low.min(price);
            }
            let volume = 500.0 + (1000.0 * rng.next_f64()).floor();
            bars.push(Bar {
                timestamp,
                open,
                high,
                low,
                close: price,
                volume,
            });
        }
        Ok(bars)
    }
}

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64.
#[derive(Debug, Clone)]
struct Xoshiro256StarStar {
    s: [u64; 4],
}

impl Xoshiro256StarStar {
    fn seed_from_u64(seed: u64) -> Self {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform number in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An approximately standard normal number: the Irwin–Hall sum of twelve uniforms
    /// minus six.
    fn standard_normal(&mut self) -> f64 {
        let mut sum = 0.0;
        for _ in 0..12 {
            sum += self.next_f64();
        }
        sum - 6.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_the_reference_sequence() {
        // Reference: the C implementation seeded with s = {1, 2, 3, 4}.
        let mut rng = Xoshiro256StarStar { s: [1, 2, 3, 4] };
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(first, [11520, 0, 1509978240]);
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut rng = Xoshiro256StarStar::seed_from_u64(1);
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| rng.standard_normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn seeds_give_identical_or_different_bars() {
        let a = SyntheticBars::with_count(1000).generate().unwrap();
        let b = SyntheticBars::with_count(1000).generate().unwrap();
        let c = SyntheticBars {
            seed: 43,
            ..SyntheticBars::with_count(1000)
        }
        .generate()
        .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        for pair in a.windows(2) {
            assert_eq!(pair[1].open, pair[0].close);
            assert_eq!(
                pair[1].timestamp.unix_millis() - pair[0].timestamp.unix_millis(),
                3_600_000
            );
        }
        assert_eq!(a[0].open, 100.0);
        assert_eq!(a[0].timestamp.to_string(), "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let err = SyntheticBars {
            volatility: 50.0,
            ..SyntheticBars::default()
        }
        .generate()
        .unwrap_err();
        assert!(err.to_string().contains("`volatility`"), "{err}");
        let err = SyntheticBars {
            interval: Duration::ZERO,
            ..SyntheticBars::default()
        }
        .generate()
        .unwrap_err();
        assert!(err.to_string().contains("`interval`"), "{err}");
    }
}
