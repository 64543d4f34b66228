//! Performance metrics of a run, with the exact definitions used in `backtest_complete`.
//!
//! All figures are computed from the per-bar equity curve (cash plus the open position
//! marked at each bar's close) and the closed trades:
//!
//! | metric | definition |
//! | --- | --- |
//! | `final_balance` | equity at the last bar |
//! | `return_pct` | (final − initial) / initial × 100 |
//! | `drawdown` | 100 × max over bars of (1 − equity / running peak of equity), a positive number |
//! | `total_trades` | closed trades |
//! | `win_rate` | 100 × (trades with P&L > 0) / total; a zero-P&L trade is not a win; no trades → `NaN` (`null` on the wire) |
//! | `sharpe_ratio` | from the equity at the last bar of each UTC calendar date that has bars (dates without bars are skipped): simple daily returns, risk-free rate 0, mean / sample standard deviation × √A (A = 252 by default); fewer than two returns or zero deviation → `NaN` |

/// The periods per year used to annualise the Sharpe ratio unless configured: 252
/// trading days. Use 365 for markets that trade every day.
pub const DEFAULT_PERIODS_PER_YEAR: f64 = 252.0;

/// The headline figures of a run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Equity at the last bar.
    pub final_balance: f64,
    /// Total return in percent.
    pub return_pct: f64,
    /// Maximum drawdown in percent, a positive number.
    pub drawdown: f64,
    /// Closed trades.
    pub total_trades: u64,
    /// Winning trades in percent; `NaN` without trades.
    pub win_rate: f64,
    /// Annualised Sharpe ratio of daily returns; `NaN` when it cannot be computed.
    pub sharpe_ratio: f64,
}

/// Total return in percent: (final − initial) / initial × 100.
///
/// ```
/// assert_eq!(backtest_stream::reference::metrics::return_pct(10_000.0, 10_500.0), 5.0);
/// ```
pub fn return_pct(initial: f64, final_balance: f64) -> f64 {
    (final_balance - initial) / initial * 100.0
}

/// Winning trades in percent of all trades: a trade wins when its P&L is above zero.
/// `NaN` when there are no trades.
///
/// ```
/// use backtest_stream::reference::metrics::win_rate;
///
/// assert_eq!(win_rate([5.0, 0.0, -2.0, 1.0]), 50.0); // the zero-P&L trade is no win
/// assert!(win_rate([]).is_nan());
/// ```
pub fn win_rate(trade_pnls: impl IntoIterator<Item = f64>) -> f64 {
    let (mut wins, mut total) = (0u64, 0u64);
    for pnl in trade_pnls {
        total += 1;
        if pnl > 0.0 {
            wins += 1;
        }
    }
    if total == 0 {
        f64::NAN
    } else {
        100.0 * wins as f64 / total as f64
    }
}

/// Maximum drawdown in percent of an equity curve (see [`DrawdownTracker`]).
///
/// ```
/// use backtest_stream::reference::metrics::max_drawdown_pct;
///
/// // Peak 120, trough 90: 1 − 90/120 = 25 %.
/// assert_eq!(max_drawdown_pct([100.0, 120.0, 90.0, 130.0, 110.0]), 25.0);
/// ```
pub fn max_drawdown_pct(equity: impl IntoIterator<Item = f64>) -> f64 {
    let mut tracker = DrawdownTracker::new();
    for value in equity {
        tracker.update(value);
    }
    tracker.max_drawdown_pct()
}

/// Tracks the maximum drawdown of an equity curve one value at a time, in constant
/// memory: 100 × max over values of (1 − equity / running peak).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawdownTracker {
    peak: f64,
    max_fraction: f64,
}

impl Default for DrawdownTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl DrawdownTracker {
    /// A tracker that has seen nothing (drawdown 0).
    pub fn new() -> Self {
        Self {
            peak: f64::NEG_INFINITY,
            max_fraction: 0.0,
        }
    }

    /// Adds the equity of the next bar.
    #[inline]
    pub fn update(&mut self, equity: f64) {
        if equity >= self.peak {
            self.peak = equity;
        } else {
            let fraction = 1.0 - equity / self.peak;
            if fraction > self.max_fraction {
                self.max_fraction = fraction;
            }
        }
    }

    /// The maximum drawdown so far, in percent.
    pub fn max_drawdown_pct(&self) -> f64 {
        100.0 * self.max_fraction
    }
}

/// The annualised Sharpe ratio of a series of daily closing equities: simple returns
/// `e[k] / e[k−1] − 1`, risk-free rate 0, mean / sample standard deviation ×
/// √`periods_per_year`. `NaN` with fewer than two returns (three values) or a zero
/// deviation.
///
/// ```
/// use backtest_stream::reference::metrics::sharpe_ratio;
///
/// // Returns +50 %, −50 %, +100 %: mean 1/3, sample deviation √(7/12),
/// // so 1/3 ÷ √(7/12) × √252 = 4√3.
/// let sharpe = sharpe_ratio(&[100.0, 150.0, 75.0, 150.0], 252.0);
/// assert!((sharpe - 4.0 * 3f64.sqrt()).abs() < 1e-12);
/// assert!(sharpe_ratio(&[100.0, 110.0], 252.0).is_nan()); // one return
/// assert!(sharpe_ratio(&[100.0, 110.0, 121.0], 252.0).is_nan()); // zero deviation
/// ```
pub fn sharpe_ratio(daily_equity: &[f64], periods_per_year: f64) -> f64 {
    let n = daily_equity.len().saturating_sub(1);
    if n < 2 {
        return f64::NAN;
    }
    let returns = daily_equity.windows(2).map(|w| w[1] / w[0] - 1.0);
    let mean = returns.clone().sum::<f64>() / n as f64;
    let variance = returns.map(|r| (r - mean) * (r - mean)).sum::<f64>() / (n - 1) as f64;
    let deviation = variance.sqrt();
    // A deviation this small relative to the mean is rounding noise of equal returns.
    if deviation == 0.0 || deviation <= mean.abs() * 1e-12 {
        return f64::NAN;
    }
    mean / deviation * periods_per_year.sqrt()
}

/// Collects the equity at the last bar of each UTC calendar date, one value per
/// date that has bars, for [`sharpe_ratio`]. `points` are (timestamp, equity) pairs in
/// ascending time.
///
/// ```
/// use backtest_stream::reference::metrics::daily_closing_equity;
/// use backtest_stream::wire::Timestamp;
///
/// let t = |s: &str| s.parse::<Timestamp>().unwrap();
/// let daily = daily_closing_equity([
///     (t("2024-01-01T10:00:00Z"), 100.0),
///     (t("2024-01-01T23:00:00Z"), 101.0),
///     (t("2024-01-03T09:00:00Z"), 99.0), // 2024-01-02 has no bars: skipped
/// ]);
/// assert_eq!(daily, [101.0, 99.0]);
/// ```
pub fn daily_closing_equity(
    points: impl IntoIterator<Item = (crate::wire::Timestamp, f64)>,
) -> Vec<f64> {
    let mut daily = Vec::new();
    let mut current: Option<(time::Date, f64)> = None;
    for (timestamp, equity) in points {
        let date = timestamp.as_offset_date_time().date();
        match &mut current {
            Some((day, value)) if *day == date => *value = equity,
            _ => {
                if let Some((_, value)) = current {
                    daily.push(value);
                }
                current = Some((date, equity));
            }
        }
    }
    if let Some((_, value)) = current {
        daily.push(value);
    }
    daily
}
