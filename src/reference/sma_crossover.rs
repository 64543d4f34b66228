//! The ready strategy: a long-only simple-moving-average crossover.

use serde_json::{Map, Value};

use crate::reference::{Strategy, StrategyContext, StrategyError};

/// A long-only SMA crossover, with these exact rules:
///
/// - `fast[i]` and `slow[i]` are the simple means of the last `fast` and `slow` closes,
///   bar *i* included (they exist from bar `n − 1` on).
/// - Signals are evaluated at the close of bar *i* for every *i* where both SMAs of bar
///   *i − 1* exist. Cross up ⇔ `fast[i−1] ≤ slow[i−1]` and `fast[i] > slow[i]`; cross
///   down ⇔ `fast[i−1] ≥ slow[i−1]` and `fast[i] < slow[i]`.
/// - Flat and cross up → buy `size` units; long and cross down → close; every other case
///   does nothing. (Orders fill at the next bar's open: see the
///   [engine rules](crate::reference).)
///
/// The means are kept as rolling sums, O(1) per bar and without allocation; each sum is
/// recomputed from its window every `n` bars so that rounding cannot drift. With prices
/// whose sums are exact in binary (integers, halves, ...) the rolling sums are exact, so
/// the means are bit for bit those of the direct computation.
///
/// ```
/// use backtest_stream::reference::{EngineConfig, ReferenceEngine, SmaCrossover, SyntheticBars};
///
/// let bars = SyntheticBars::with_count(5_000).generate()?;
/// let report = ReferenceEngine::new(&bars, SmaCrossover::new(10, 20, 1.0)?, EngineConfig::default())
///     .run_detached()?;
/// assert!(report.trades.iter().all(|t| t.entry_time < t.exit_time || t.closed_at_end));
/// assert_eq!(report.parameters["fast"], 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SmaCrossover {
    fast: usize,
    slow: usize,
    size: f64,
    fast_sum: f64,
    slow_sum: f64,
    previous: Option<(f64, f64)>,
}

/// Parameters that [`SmaCrossover::new`] refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmaParamsError {
    /// A period is zero.
    #[error("SMA period `{name}` must be at least 1")]
    ZeroPeriod {
        /// `fast` or `slow`.
        name: &'static str,
    },
    /// The size is not finite and positive.
    #[error("order size {0} must be finite and positive")]
    BadSize(f64),
}

impl SmaCrossover {
    /// The fast period of [`SmaCrossover::default`] and of the crate's programs: 10 bars.
    pub const DEFAULT_FAST: usize = 10;
    /// The slow period of [`SmaCrossover::default`] and of the crate's programs: 30 bars.
    pub const DEFAULT_SLOW: usize = 30;
    /// The order size of [`SmaCrossover::default`] and of the crate's programs: 10 units.
    pub const DEFAULT_SIZE: f64 = 10.0;

    /// A crossover of a `fast`-bar and a `slow`-bar SMA trading `size` units.
    pub fn new(fast: usize, slow: usize, size: f64) -> Result<Self, SmaParamsError> {
        if fast == 0 {
            return Err(SmaParamsError::ZeroPeriod { name: "fast" });
        }
        if slow == 0 {
            return Err(SmaParamsError::ZeroPeriod { name: "slow" });
        }
        if !(size.is_finite() && size > 0.0) {
            return Err(SmaParamsError::BadSize(size));
        }
        Ok(Self {
            fast,
            slow,
            size,
            fast_sum: 0.0,
            slow_sum: 0.0,
            previous: None,
        })
    }

    /// The fast period.
    pub fn fast(&self) -> usize {
        self.fast
    }

    /// The slow period.
    pub fn slow(&self) -> usize {
        self.slow
    }

    /// The order size.
    pub fn size(&self) -> f64 {
        self.size
    }
}

/// The crossover of the crate's programs (the demo, `examples/backtest`): a
/// [`DEFAULT_FAST`](SmaCrossover::DEFAULT_FAST)-bar and a
/// [`DEFAULT_SLOW`](SmaCrossover::DEFAULT_SLOW)-bar SMA trading
/// [`DEFAULT_SIZE`](SmaCrossover::DEFAULT_SIZE) units.
///
/// ```
/// use backtest_stream::reference::SmaCrossover;
///
/// let sma = SmaCrossover::default();
/// assert_eq!((sma.fast(), sma.slow(), sma.size()), (10, 30, 10.0));
/// ```
impl Default for SmaCrossover {
    fn default() -> Self {
        Self {
            fast: Self::DEFAULT_FAST,
            slow: Self::DEFAULT_SLOW,
            size: Self::DEFAULT_SIZE,
            fast_sum: 0.0,
            slow_sum: 0.0,
            previous: None,
        }
    }
}

/// Adds the newest close to a window sum and drops the one leaving it; every `n` bars
/// the sum is recomputed from the window.
#[inline]
fn roll(sum: &mut f64, n: usize, history: &[crate::reference::Bar]) -> Option<f64> {
    let i = history.len() - 1;
    if (i + 1) % n == 0 {
        *sum = history[i + 1 - n..].iter().map(|b| b.close).sum();
    } else {
        *sum += history[i].close;
        if i >= n {
            *sum -= history[i - n].close;
        }
    }
    (i + 1 >= n).then(|| *sum / n as f64)
}

impl Strategy for SmaCrossover {
    fn name(&self) -> &str {
        "sma_crossover"
    }

    fn parameters(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("fast".into(), self.fast.into());
        map.insert("slow".into(), self.slow.into());
        map.insert("size".into(), self.size.into());
        map
    }

    fn on_start(&mut self) {
        self.fast_sum = 0.0;
        self.slow_sum = 0.0;
        self.previous = None;
    }

    #[inline]
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        let history = ctx.history();
        let fast = roll(&mut self.fast_sum, self.fast, history);
        let slow = roll(&mut self.slow_sum, self.slow, history);
        let (Some(fast), Some(slow)) = (fast, slow) else {
            return Ok(());
        };
        if let Some((previous_fast, previous_slow)) = self.previous {
            let cross_up = previous_fast <= previous_slow && fast > slow;
            let cross_down = previous_fast >= previous_slow && fast < slow;
            if cross_up && ctx.is_flat() {
                ctx.buy(self.size)?;
            } else if cross_down && ctx.is_long() {
                ctx.close();
            }
        }
        self.previous = Some((fast, slow));
        Ok(())
    }
}
