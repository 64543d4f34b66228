//! Hand-checked fixtures for every rule of the reference engine and its metrics.

use std::sync::{Mutex, OnceLock};

use backtest_stream::reference::{
    Bar, EngineConfig, Order, ReferenceEngine, ReferenceEngineError, SmaCrossover, Strategy,
    StrategyContext, StrategyError, SyntheticBars,
};
use backtest_stream::wire::{Side, Timestamp};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Bars one hour apart from 2024-01-01T00:00Z with the given (open, close).
fn hourly(prices: &[(f64, f64)]) -> Vec<Bar> {
    prices
        .iter()
        .enumerate()
        .map(|(i, &(open, close))| bar_at(1_704_067_200_000 + i as i64 * 3_600_000, open, close))
        .collect()
}

fn bar_at(millis: i64, open: f64, close: f64) -> Bar {
    Bar {
        timestamp: Timestamp::from_unix_millis(millis).unwrap(),
        open,
        high: open.max(close),
        low: open.min(close),
        close,
        volume: 1.0,
    }
}

/// Places the scripted orders at the given bar indices.
struct Script(Vec<(usize, Order)>);

impl Strategy for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        for &(index, order) in &self.0 {
            if index == ctx.index() {
                match order {
                    Order::Buy { size } => ctx.buy(size)?,
                    Order::Sell { size } => ctx.sell(size)?,
                    Order::Close => ctx.close(),
                }
            }
        }
        Ok(())
    }
}

fn buy(size: f64) -> Order {
    Order::Buy { size }
}

fn run(bars: &[Bar], orders: Vec<(usize, Order)>) -> backtest_stream::reference::BacktestReport {
    ReferenceEngine::new(bars, Script(orders), EngineConfig::default())
        .run_detached()
        .unwrap()
}

#[test]
fn an_order_fills_at_the_next_open() {
    let bars = hourly(&[(10.0, 10.5), (11.0, 11.5), (12.0, 12.5), (13.0, 13.5)]);
    let report = run(&bars, vec![(0, buy(1.0)), (2, Order::Close)]);
    assert_eq!(report.trades.len(), 1);
    let trade = report.trades[0];
    assert_eq!(trade.side, Side::Long);
    assert_eq!((trade.entry_price, trade.exit_price), (11.0, 13.0));
    assert_eq!(
        (trade.entry_time, trade.exit_time),
        (bars[1].timestamp, bars[3].timestamp)
    );
    assert_eq!(trade.pnl, 2.0);
    assert!(!trade.closed_at_end);
    // Equity: 10000, 10000.5, 10001.5, 10002 (closed at bar 3's open, cash 10002).
    assert_eq!(report.metrics.final_balance, 10_002.0);
    assert_eq!(report.metrics.return_pct, 0.02);
    assert_eq!(report.metrics.drawdown, 0.0);
    assert_eq!(report.metrics.total_trades, 1);
    assert_eq!(report.metrics.win_rate, 100.0);
    assert_eq!(report.unfilled_orders, 0);
}

#[test]
fn an_order_on_the_last_bar_does_not_fill() {
    let bars = hourly(&[(10.0, 10.0), (11.0, 11.0), (12.0, 12.0)]);
    let report = run(&bars, vec![(2, buy(1.0))]);
    assert!(report.trades.is_empty());
    assert_eq!(report.unfilled_orders, 1);
    assert_eq!(report.metrics.final_balance, 10_000.0);
    assert_eq!(report.metrics.total_trades, 0);
    assert!(
        report.metrics.win_rate.is_nan(),
        "no trades: win rate is NaN"
    );
}

#[test]
fn an_open_position_is_closed_at_the_last_close_and_counts() {
    let bars = hourly(&[(10.0, 10.5), (11.0, 11.5), (12.0, 12.5), (13.0, 13.5)]);
    let report = run(&bars, vec![(0, buy(1.0))]);
    assert_eq!(report.trades.len(), 1);
    let trade = report.trades[0];
    assert!(trade.closed_at_end);
    assert_eq!((trade.entry_price, trade.exit_price), (11.0, 13.5));
    assert_eq!(trade.exit_time, bars[3].timestamp);
    assert_eq!(trade.pnl, 2.5);
    // The final balance is the equity at the last bar: 10000 + (13.5 − 11).
    assert_eq!(report.metrics.final_balance, 10_002.5);
    assert_eq!(report.metrics.total_trades, 1);
}

#[test]
fn a_zero_pnl_trade_is_not_a_win() {
    let bars = hourly(&[
        (10.0, 10.0),
        (11.0, 11.0),
        (11.0, 11.0),
        (12.0, 12.0),
        (14.0, 14.0),
    ]);
    let report = run(
        &bars,
        vec![
            (0, buy(1.0)),
            (1, Order::Close),
            (2, buy(1.0)),
            (3, Order::Close),
        ],
    );
    let pnls: Vec<f64> = report.trades.iter().map(|t| t.pnl).collect();
    assert_eq!(pnls, [0.0, 2.0]);
    assert_eq!(report.metrics.win_rate, 50.0);
    assert_eq!(report.metrics.final_balance, 10_002.0);
}

#[test]
fn drawdown_is_the_largest_fall_from_the_running_peak_of_close_marked_equity() {
    // Long 10 units filled at 100 (bar 1's open). Equity at the closes:
    // 10000, 10100, 9900, 10200, 10150; running peak 10000, 10100, 10100, 10200, 10200.
    // Largest fall: 1 − 9900 / 10100 (the later 1 − 10150 / 10200 is smaller).
    let bars = hourly(&[
        (100.0, 100.0),
        (100.0, 110.0),
        (110.0, 90.0),
        (90.0, 120.0),
        (120.0, 115.0),
    ]);
    let report = run(&bars, vec![(0, buy(10.0))]);
    assert_eq!(report.metrics.drawdown, 100.0 * (1.0 - 9900.0 / 10_100.0));
    assert!((report.metrics.drawdown - 1.980_198).abs() < 1e-6);
    assert_eq!(report.metrics.final_balance, 10_150.0);
    assert!((report.metrics.return_pct - 1.5).abs() < 1e-12);
}

#[test]
fn a_short_position_gains_when_the_price_falls() {
    let bars = hourly(&[(10.0, 10.0), (10.0, 9.0), (8.0, 8.0), (7.0, 7.0)]);
    let report = run(
        &bars,
        vec![(0, Order::Sell { size: 2.0 }), (1, Order::Close)],
    );
    let trade = report.trades[0];
    assert_eq!(trade.side, Side::Short);
    // quantity −2 × (exit 8 − entry 10) = +4
    assert_eq!(trade.pnl, 4.0);
    assert_eq!(report.metrics.final_balance, 10_004.0);
}

#[test]
fn orders_that_do_not_fit_the_position_are_rejected_and_counted() {
    let bars = hourly(&[(10.0, 10.0), (11.0, 11.0), (12.0, 12.0), (13.0, 13.0)]);
    // Close while flat; then buy twice (the second buy meets a long position).
    let report = run(&bars, vec![(0, Order::Close), (1, buy(1.0)), (1, buy(1.0))]);
    assert_eq!(report.rejected_orders, 2);
    assert_eq!(report.trades.len(), 1);
    assert_eq!(report.trades[0].entry_price, 12.0);
}

#[test]
fn slippage_moves_fills_against_the_trader_but_not_the_final_close() {
    let bars = hourly(&[(10.0, 10.0), (11.0, 11.0), (12.0, 12.0), (13.0, 13.0)]);
    let config = EngineConfig {
        slippage: 0.25,
        ..EngineConfig::default()
    };
    let report = ReferenceEngine::new(
        &bars,
        Script(vec![(0, buy(1.0)), (1, Order::Close)]),
        config.clone(),
    )
    .run_detached()
    .unwrap();
    assert_eq!(
        (report.trades[0].entry_price, report.trades[0].exit_price),
        (11.25, 11.75)
    );
    let report = ReferenceEngine::new(&bars, Script(vec![(1, buy(1.0))]), config)
        .run_detached()
        .unwrap();
    assert_eq!(
        (report.trades[0].entry_price, report.trades[0].exit_price),
        (12.25, 13.0)
    );
}

#[test]
fn sharpe_uses_the_last_equity_of_each_date_with_bars() {
    // Long 100 units from bar 1's open (10). 2024-01-03 has no bars; 2024-01-02 has two,
    // and its second bar's equity counts.
    let t = |s: &str| ts(s).unix_millis();
    let bars = vec![
        bar_at(t("2024-01-01T10:00:00Z"), 10.0, 10.0), // 10000
        bar_at(t("2024-01-02T09:00:00Z"), 10.0, 11.0), // 10100 (not the day's last)
        bar_at(t("2024-01-02T15:00:00Z"), 11.0, 12.0), // 10200
        bar_at(t("2024-01-04T10:00:00Z"), 12.0, 11.0), // 10100
        bar_at(t("2024-01-05T10:00:00Z"), 11.0, 13.0), // 10300
    ];
    let report = run(&bars, vec![(0, buy(100.0))]);
    // Daily returns: 10200/10000 − 1, 10100/10200 − 1, 10300/10100 − 1.
    let returns = [0.02, -1.0 / 102.0, 2.0 / 101.0];
    let mean = returns.iter().sum::<f64>() / 3.0;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let expected = mean / std * 252f64.sqrt();
    assert!((report.metrics.sharpe_ratio - expected).abs() < 1e-9);
    // Computed by hand (and with Python's statistics.stdev): 9.255444697...
    assert!((report.metrics.sharpe_ratio - 9.255_444_697).abs() < 1e-8);

    let config = EngineConfig {
        periods_per_year: 365.0,
        ..EngineConfig::default()
    };
    let report = ReferenceEngine::new(&bars, Script(vec![(0, buy(100.0))]), config)
        .run_detached()
        .unwrap();
    assert!((report.metrics.sharpe_ratio - 11.138_929_417).abs() < 1e-8);
}

#[test]
fn sharpe_is_nan_with_a_single_day_or_a_single_return() {
    // All bars on one date: one daily value, no return.
    let bars = hourly(&[(10.0, 10.0), (11.0, 12.0), (12.0, 9.0), (9.0, 14.0)]);
    let report = run(&bars, vec![(0, buy(1.0))]);
    assert!(report.metrics.sharpe_ratio.is_nan());
    // Two dates: one return.
    let t = |s: &str| ts(s).unix_millis();
    let bars = vec![
        bar_at(t("2024-01-01T10:00:00Z"), 10.0, 10.0),
        bar_at(t("2024-01-02T10:00:00Z"), 10.0, 12.0),
    ];
    let report = run(&bars, vec![(0, buy(1.0))]);
    assert!(report.metrics.sharpe_ratio.is_nan());
}

#[test]
fn sma_crossover_trades_exactly_at_the_crosses() {
    // fast 2, slow 3. SMAs (fast, slow) from bar 2: (10,10) (11.5,11) (14.5,13) (13,13)
    // (7,10) (4,6). Bar 3: 10 ≤ 10 and 11.5 > 11 → cross up → buy, fills at bar 4's
    // open (13). Bar 5: 13 = 13, no cross. Bar 6: 13 ≥ 13 and 7 < 10 → cross down →
    // close, fills at bar 7's open (4).
    let closes = [10.0, 10.0, 10.0, 13.0, 16.0, 10.0, 4.0, 4.0];
    let mut prices = Vec::new();
    let mut open = 10.0;
    for close in closes {
        prices.push((open, close));
        open = close;
    }
    let bars = hourly(&prices);
    let report = ReferenceEngine::new(
        &bars,
        SmaCrossover::new(2, 3, 1.0).unwrap(),
        EngineConfig::default(),
    )
    .run_detached()
    .unwrap();
    assert_eq!(report.trades.len(), 1);
    let trade = report.trades[0];
    assert_eq!(
        (trade.entry_time, trade.exit_time),
        (bars[4].timestamp, bars[7].timestamp)
    );
    assert_eq!(
        (trade.entry_price, trade.exit_price, trade.pnl),
        (13.0, 4.0, -9.0)
    );
    assert_eq!(report.metrics.final_balance, 9_991.0);
    assert_eq!(report.metrics.win_rate, 0.0);
    assert_eq!(report.parameters["strategy"], "sma_crossover");
    assert_eq!(report.parameters["slow"], 3);
    assert_eq!(report.parameters["initial_cash"], 10_000.0);
}

/// The SMA crossover computed the slow way: means summed from scratch at every bar.
struct NaiveSma {
    fast: usize,
    slow: usize,
    previous: Option<(f64, f64)>,
}

impl Strategy for NaiveSma {
    fn name(&self) -> &str {
        "naive"
    }
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        let h = ctx.history();
        let mean = |n: usize| {
            (h.len() >= n).then(|| h[h.len() - n..].iter().map(|b| b.close).sum::<f64>() / n as f64)
        };
        if let (Some(fast), Some(slow)) = (mean(self.fast), mean(self.slow)) {
            if let Some((pf, ps)) = self.previous {
                if pf <= ps && fast > slow && ctx.is_flat() {
                    ctx.buy(1.0)?;
                } else if pf >= ps && fast < slow && ctx.is_long() {
                    ctx.close();
                }
            }
            self.previous = Some((fast, slow));
        }
        Ok(())
    }
}

#[test]
fn the_rolling_sma_trades_like_the_direct_means() {
    let bars = SyntheticBars::with_count(20_000).generate().unwrap();
    for (fast, slow) in [(10, 20), (3, 7), (50, 200)] {
        let rolling = ReferenceEngine::new(
            &bars,
            SmaCrossover::new(fast, slow, 1.0).unwrap(),
            EngineConfig::default(),
        )
        .run_detached()
        .unwrap();
        let naive = ReferenceEngine::new(
            &bars,
            NaiveSma {
                fast,
                slow,
                previous: None,
            },
            EngineConfig::default(),
        )
        .run_detached()
        .unwrap();
        assert!(
            rolling.trades.len() > 10,
            "{fast}/{slow}: too few trades to compare"
        );
        assert_eq!(rolling.trades, naive.trades, "{fast}/{slow}");
        assert!(rolling.metrics.sharpe_ratio.is_finite());
        assert_eq!(rolling.metrics, naive.metrics, "{fast}/{slow}");
    }
}

#[test]
fn a_strategy_reused_for_a_second_run_gives_the_same_report() {
    let bars = SyntheticBars::with_count(3_000).generate().unwrap();
    let mut engine = ReferenceEngine::new(
        &bars,
        SmaCrossover::new(5, 15, 2.0).unwrap(),
        EngineConfig::default(),
    );
    let first = engine.run_detached().unwrap();
    let second = engine.run_detached().unwrap();
    assert_eq!(first.trades, second.trades);
}

#[test]
fn bad_input_is_a_typed_error() {
    let empty: Vec<Bar> = Vec::new();
    let err = ReferenceEngine::new(&empty, Script(vec![]), EngineConfig::default())
        .run_detached()
        .unwrap_err();
    assert!(matches!(err, ReferenceEngineError::NoBars));

    let mut bars = hourly(&[(1.0, 1.0), (1.0, 1.0), (1.0, 1.0)]);
    bars[2].timestamp = bars[0].timestamp;
    let err = ReferenceEngine::new(&bars, Script(vec![]), EngineConfig::default())
        .run_detached()
        .unwrap_err();
    assert!(
        matches!(err, ReferenceEngineError::NotAscending { index: 2, .. }),
        "{err}"
    );

    let config = EngineConfig {
        initial_cash: 0.0,
        ..EngineConfig::default()
    };
    let err = ReferenceEngine::new(&bars, Script(vec![]), config)
        .run_detached()
        .unwrap_err();
    assert!(err.to_string().contains("`initial_cash`"), "{err}");

    let err = ReferenceEngine::new(
        &hourly(&[(1.0, 1.0)]),
        Script(vec![(0, buy(f64::NAN))]),
        EngineConfig::default(),
    )
    .run_detached()
    .unwrap_err();
    let ReferenceEngineError::Strategy { index, source, .. } = err else {
        panic!("expected a strategy error, got {err}");
    };
    assert_eq!(index, 0);
    assert!(
        source.to_string().contains("invalid order size NaN"),
        "{source}"
    );

    assert!(SmaCrossover::new(0, 3, 1.0).is_err());
    assert!(SmaCrossover::new(2, 3, -1.0).is_err());
}

/// Records the messages logged on each thread.
struct Recorder(Mutex<Vec<(std::thread::ThreadId, log::Level, String)>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Ok(mut records) = self.0.lock() {
            records.push((
                std::thread::current().id(),
                record.level(),
                record.args().to_string(),
            ));
        }
    }
    fn flush(&self) {}
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::new(Recorder(Mutex::new(Vec::new()))));
        log::set_logger(recorder).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        recorder
    })
}

#[test]
fn each_fill_is_logged_at_info() {
    let recorder = recorder();
    let bars = hourly(&[
        (179.0, 179.5),
        (179.13, 180.0),
        (181.25, 181.0),
        (182.0, 183.0),
    ]);
    run(
        &bars,
        vec![
            (0, buy(1.0)),
            (1, Order::Close),
            (2, buy(2.0)),
            (2, buy(1.0)),
        ],
    );
    let me = std::thread::current().id();
    let lines: Vec<(log::Level, String)> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(thread, ..)| *thread == me)
        .map(|(_, level, message)| (*level, message.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (
                log::Level::Info,
                "Trade executed: BUY 1 @ 179.13".to_owned()
            ),
            (
                log::Level::Info,
                "Trade executed: SELL 1 @ 181.25".to_owned()
            ),
            (log::Level::Info, "Trade executed: BUY 2 @ 182".to_owned()),
            (
                log::Level::Warn,
                "Order rejected at bar 3: Buy { size: 1.0 } while long".to_owned()
            ),
            (
                log::Level::Info,
                "Trade executed: SELL 2 @ 183 (closing at the end of the data)".to_owned()
            ),
        ]
    );
}

#[test]
fn a_trade_as_json_matches_its_serialize_form() {
    let bars = hourly(&[(10.0, 10.0), (11.0, 11.0), (12.5, 12.0), (13.0, 13.0)]);
    let report = run(
        &bars,
        vec![
            (0, Order::Sell { size: 2.0 }),
            (1, Order::Close),
            (2, buy(1.0)),
        ],
    );
    assert_eq!(report.trades.len(), 2);
    let json = serde_json::to_value(report.trades[0]).unwrap();
    assert_eq!(json["side"], "short");
    assert_eq!(json["entry_time"], "2024-01-01T01:00:00.000Z");
    assert_eq!(json["pnl"], -3.0);
    assert_eq!(
        serde_json::to_value(report.trades[1]).unwrap()["closed_at_end"],
        true
    );
}
