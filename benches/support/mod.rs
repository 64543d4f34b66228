//! The run the engine benchmarks measure: the SMA crossover (10/20) on 1,000,000
//! synthetic one-minute bars.

use std::time::Duration;

use backtest_stream::reference::{Bar, EngineConfig, ReferenceEngine, SmaCrossover, SyntheticBars};

/// Bars in the run.
pub const BARS: usize = 1_000_000;

/// The run's bars.
pub fn data() -> Vec<Bar> {
    SyntheticBars {
        count: BARS,
        interval: Duration::from_secs(60),
        ..SyntheticBars::default()
    }
    .generate()
    .expect("valid synthetic settings")
}

/// The run's engine over `bars`.
pub fn engine(bars: &[Bar]) -> ReferenceEngine<'_, SmaCrossover> {
    let strategy = SmaCrossover::new(10, 20, 1.0).expect("valid parameters");
    ReferenceEngine::new(
        bars,
        strategy,
        EngineConfig {
            periods_per_year: 365.0,
            ..EngineConfig::default()
        },
    )
}
