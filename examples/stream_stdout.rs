//! Streams a (simulated) hourly backtest to standard output as JSON Lines.
//!
//! `cargo run --example stream_stdout`
use backtest_stream::sink::JsonLinesSink;
use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo, RunResults};
use backtest_stream::wire::Timestamp;

fn main() {
    let (bars, first_bar_ms, hour_ms) = (1_000, 1_672_531_200_000, 3_600_000); // from 2023-01-01
    let info = RunInfo::new("vanilla", "EURUSD")
        .timeframe("H1")
        .dates("2023-01-01", "2023-02-11");
    let mut run = ProgressStreamer::new(JsonLinesSink::stdout()).start(info, bars);
    let mut balance = 10_000.0;
    for bar in 1..=bars {
        balance += (bar as f64 * 0.37).sin(); // the engine's work goes here
        let date = || {
            Timestamp::from_unix_millis(first_bar_ms + bar as i64 * hour_ms)
                .map(|t| t.date_string())
        };
        run.progress(bar, || ProgressDetails {
            current_date: date().unwrap_or_default(),
            current_pnl: balance - 10_000.0,
            ..Default::default()
        });
    }
    run.complete(RunResults {
        final_balance: balance,
        return_pct: balance / 100.0 - 100.0,
        ..Default::default()
    });
}
