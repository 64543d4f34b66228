//! [`Paced`]: a strategy slowed to a watchable pace, whose pauses a cancellation cuts
//! short.

use std::time::{Duration, Instant};

use backtest_stream::engine::CancelToken;
use backtest_stream::reference::{Strategy, StrategyContext, StrategyError};
use serde_json::{Map, Value};

/// The longest single sleep: a cancelled run stops within about this long, however
/// long its pause per bar.
const SLICE: Duration = Duration::from_millis(10);

/// Paces a strategy: bar `n` ends no earlier than `n × delay` after the first, so that a
/// person can watch the run (the sleeps do not add up drift). Once `cancel` is set the
/// pause ends at once; the engine then sees the cancellation at the bar's report and
/// stops the run.
pub struct Paced<S> {
    inner: S,
    delay: Duration,
    cancel: CancelToken,
    started: Option<Instant>,
    bars: u32,
}

impl<S> Paced<S> {
    pub fn new(inner: S, delay: Duration, cancel: CancelToken) -> Self {
        Self {
            inner,
            delay,
            cancel,
            started: None,
            bars: 0,
        }
    }
}

impl<S: Strategy> Strategy for Paced<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn parameters(&self) -> Map<String, Value> {
        self.inner.parameters()
    }

    fn on_start(&mut self) {
        self.started = None;
        self.bars = 0;
        self.inner.on_start();
    }

    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>) -> Result<(), StrategyError> {
        self.inner.on_bar(ctx)?;
        if self.delay.is_zero() {
            return Ok(());
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        self.bars = self.bars.saturating_add(1);
        let due = started + self.delay.saturating_mul(self.bars);
        loop {
            let now = Instant::now();
            if due <= now || self.cancel.is_cancelled() {
                return Ok(());
            }
            std::thread::sleep((due - now).min(SLICE));
        }
    }
}
