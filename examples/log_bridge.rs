//! A program keeps its console logger (`env_logger`, on stderr) and also streams every
//! log line, as `log_entry` events of the right run, next to the runs' lifecycle
//! events (JSON Lines on stdout).
//!
//! Run: `RUST_LOG=debug cargo run --example log_bridge`

use std::sync::Arc;

use backtest_stream::log_bridge::{LogBridge, LogScope};
use backtest_stream::sink::{JsonLinesSink, ProgressSink, SharedSink};
use backtest_stream::streamer::{
    ProgressDetails, ProgressStreamer, RunInfo, RunResults, StreamerConfig,
};
use backtest_stream::wire::Topic;
use log::LevelFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let console =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let console_level = console.filter();
    let ui: SharedSink = Arc::new(JsonLinesSink::stdout());
    let bridge = LogBridge::builder()
        .level(LevelFilter::Info)
        .default_shared_sink(Arc::clone(&ui), Topic::LOGS)
        .wrap(console, console_level)
        .build()
        .try_init()?;

    log::info!("two backtests starting"); // no run: topic `logs`, backtest_id null

    let workers: Vec<_> = ["EURUSD", "GBPUSD"]
        .into_iter()
        .map(|symbol| {
            let ui = Arc::clone(&ui);
            std::thread::spawn(move || {
                let mut run = ProgressStreamer::from_shared(ui, StreamerConfig::default())
                    .start(RunInfo::new("vanilla", symbol).timeframe("H1"), 300);
                // Every record of this thread is now a log entry of this run.
                let _scope = LogScope::enter_run(&run);
                for bar in 1..=300 {
                    if bar % 100 == 0 {
                        log::info!(function = "on_bar"; "{symbol}: bar {bar} done");
                    }
                    log::debug!("console only: the bridge streams info and up");
                    run.progress(bar, ProgressDetails::default);
                }
                run.complete(RunResults {
                    final_balance: 10_000.0,
                    ..Default::default()
                });
            })
        })
        .collect();
    for worker in workers {
        if worker.join().is_err() {
            log::error!("a backtest thread panicked");
        }
    }
    ui.flush()?;
    eprintln!("bridge: {:?}", bridge.stats());
    Ok(())
}
