//! A run in progress: [`RunningBacktest`], its progress throttle and its end.

use std::time::{Duration, Instant};

use crate::sink::SharedSink;
use crate::streamer::{
    DeliveryStats, ProgressDetails, RunInfo, RunResults, RunSummary, SinkErrorHook, StreamerConfig,
};
use crate::wire::{
    BacktestComplete, BacktestError, BacktestId, BacktestProgress, BacktestStart, Envelope, Event,
    Timestamp, Topic,
};

impl RunningBacktest {
    /// Publishes `backtest_start` and returns the running run.
    pub(super) fn begin(
        sink: SharedSink,
        id: BacktestId,
        config: StreamerConfig,
        info: RunInfo,
        total_bars: u64,
    ) -> Self {
        let every = config.progress_every.max(1);
        let mut run = RunningBacktest {
            sink,
            id,
            topic: config.topic,
            every,
            min_interval: config.min_interval,
            on_sink_error: config.on_sink_error,
            total_bars,
            next_due: every.min(total_bars),
            chart_points: config.chart_points,
            percent_due: chart_point(0, total_bars, config.chart_points),
            final_sent: false,
            started: Instant::now(),
            last_sent: None,
            last_sent_bar: 0,
            delivery: DeliveryStats::default(),
            finished: false,
        };
        let event = Event::BacktestStart(BacktestStart {
            backtest_id: run.id.clone(),
            variant: info.variant,
            symbol: info.symbol,
            timeframe: info.timeframe,
            start_date: info.start_date,
            end_date: info.end_date,
            timestamp: Timestamp::now(),
        });
        run.publish(event);
        run
    }
}

/// The smallest bar count past `bars` at which a run of `total` bars reaches its next
/// chart point, one of `points` equal steps (`total` at most; `u64::MAX` when there are
/// none).
fn chart_point(bars: u64, total: u64, points: u32) -> u64 {
    if total == 0 || points == 0 {
        return u64::MAX;
    }
    let (bars, total_wide, points) = (u128::from(bars), u128::from(total), u128::from(points));
    let step = bars * points / total_wide;
    let next = ((step + 1) * total_wide).div_ceil(points);
    u64::try_from(next).unwrap_or(u64::MAX).min(total)
}

/// A run in progress. Send progress with [`progress`](RunningBacktest::progress), end it
/// with [`complete`](RunningBacktest::complete) or [`error`](RunningBacktest::error):
/// both consume the run, so nothing can be published after its end.
///
/// A run dropped without either (an early `return`, a `?`, a panic) publishes a
/// `backtest_error` saying so, so that no user interface waits forever.
///
/// Publishing after the end does not compile:
///
/// ```compile_fail
/// use backtest_stream::sink::NoopSink;
/// use backtest_stream::streamer::{ProgressDetails, ProgressStreamer, RunInfo};
///
/// let mut run = ProgressStreamer::new(NoopSink).start(RunInfo::default(), 10);
/// run.complete(Default::default());
/// run.progress(10, ProgressDetails::default); // error: `run` was moved by `complete`
/// ```
pub struct RunningBacktest {
    sink: SharedSink,
    id: BacktestId,
    topic: Topic,
    every: u64,
    min_interval: Option<Duration>,
    on_sink_error: Option<SinkErrorHook>,
    total_bars: u64,
    /// The smallest bar count that may produce an update.
    next_due: u64,
    /// The bar count at which the run crosses its next whole percent: the first cadence
    /// point past it sends an update even while the minimum interval holds them back.
    percent_due: u64,
    chart_points: u32,
    final_sent: bool,
    started: Instant,
    last_sent: Option<Instant>,
    /// The bar count of the last update sent.
    last_sent_bar: u64,
    delivery: DeliveryStats,
    finished: bool,
}

impl std::fmt::Debug for RunningBacktest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningBacktest")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("total_bars", &self.total_bars)
            .field("next_due", &self.next_due)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl RunningBacktest {
    /// The run's id.
    pub fn id(&self) -> &BacktestId {
        &self.id
    }

    /// The topic the run publishes on.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The run's length in bars.
    pub fn total_bars(&self) -> u64 {
        self.total_bars
    }

    /// The sink the run publishes to.
    pub fn sink(&self) -> &SharedSink {
        &self.sink
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// How publishing has gone so far.
    pub fn delivery(&self) -> &DeliveryStats {
        &self.delivery
    }

    /// Reports that `bars_processed` bars are done; returns whether an update was sent.
    ///
    /// An update is sent when `bars_processed` reaches the next multiple of the cadence
    /// (every 100 bars by default) and the minimum interval, if any, has passed since
    /// the last update, or the run has crossed a whole percent since the last update (so
    /// that however fast a run goes, its chart gets a point per percent, or per cadence
    /// step when that is longer: about 100 points at most from this rule; see
    /// [`StreamerConfig::chart_points`]); the final update
    /// (`bars_processed >= total_bars`) is always sent, once. `details` is called only
    /// for updates that are sent, so a suppressed call costs a comparison.
    ///
    /// While the minimum interval holds updates back, the clock is not read at every
    /// cadence point (a fast engine reaches thousands of them per interval): the run
    /// skips the points that fit in half the interval's remaining time at its pace
    /// since the last update, and never more bars than it made since that update. At a
    /// steady pace the held-back update goes out a cadence point or two after the
    /// interval has passed; a run that suddenly slows down sends it at most as many bars
    /// later as it had made since the last update.
    #[inline]
    pub fn progress(
        &mut self,
        bars_processed: u64,
        details: impl FnOnce() -> ProgressDetails,
    ) -> bool {
        if bars_processed < self.next_due {
            return false;
        }
        self.progress_due(bars_processed, details)
    }

    /// Whether [`progress`](RunningBacktest::progress) with `bars_processed` would
    /// consider sending an update: a cadence point is reached, and not one skipped
    /// while the minimum interval holds updates back (whether the interval has passed
    /// is checked by `progress`).
    #[inline]
    pub fn is_progress_due(&self, bars_processed: u64) -> bool {
        bars_processed >= self.next_due && !(self.final_sent && bars_processed >= self.total_bars)
    }

    /// Moves `next_due` past cadence points that the minimum interval will hold back, so
    /// that a fast run reads the clock at a few of its cadence points, not at every one:
    /// it skips the points that fit in half the interval's remaining time at the pace
    /// since the last update, and never more bars than the run made since that update.
    /// At a steady pace the clock is read at cadence points spaced geometrically (1, 3,
    /// 7, 15, ... points after an update, then closer as the interval's end nears).
    fn skip_held_back_points(&mut self, bars_processed: u64, elapsed: Duration, min: Duration) {
        let since = bars_processed.saturating_sub(self.last_sent_bar) as f64;
        let elapsed = elapsed.as_secs_f64();
        let remaining = min
            .saturating_sub(Duration::from_secs_f64(elapsed))
            .as_secs_f64();
        let fit = if elapsed > 0.0 {
            since * remaining / elapsed / 2.0
        } else {
            f64::INFINITY
        };
        // A float-to-integer cast saturates; whole cadence steps only.
        let skip = (fit.min(since) as u64) / self.every * self.every;
        self.next_due = self.next_due.saturating_add(skip).min(self.total_bars);
    }

    #[cold]
    fn progress_due(
        &mut self,
        bars_processed: u64,
        details: impl FnOnce() -> ProgressDetails,
    ) -> bool {
        let is_final = bars_processed >= self.total_bars;
        if is_final {
            if self.final_sent {
                self.next_due = u64::MAX;
                return false;
            }
        } else {
            let next_multiple = (bars_processed / self.every + 1).saturating_mul(self.every);
            self.next_due = next_multiple.min(self.total_bars);
            let new_percent = bars_processed >= self.percent_due;
            if let (Some(min), Some(last), false) = (self.min_interval, self.last_sent, new_percent)
            {
                let elapsed = last.elapsed();
                if elapsed < min {
                    self.skip_held_back_points(bars_processed, elapsed, min);
                    // Never skip the cadence point that crosses the next percent.
                    let crossing = self
                        .percent_due
                        .div_ceil(self.every)
                        .saturating_mul(self.every);
                    self.next_due = self.next_due.min(crossing.min(self.total_bars));
                    return false;
                }
            }
        }
        let details = details();
        let now = Instant::now();
        self.last_sent = Some(now);
        self.last_sent_bar = bars_processed;
        self.percent_due = chart_point(bars_processed, self.total_bars, self.chart_points);
        if is_final {
            self.final_sent = true;
            self.next_due = u64::MAX;
        }
        let progress = if self.total_bars == 0 {
            100.0
        } else {
            (bars_processed.min(self.total_bars) as f64 / self.total_bars as f64) * 100.0
        };
        let status = details
            .status
            .unwrap_or_else(|| format!("Processing bar {bars_processed}/{}", self.total_bars));
        let event = Event::BacktestProgress(BacktestProgress {
            backtest_id: self.id.clone(),
            progress,
            status,
            bars_processed,
            total_bars: self.total_bars,
            current_date: details.current_date,
            trades_count: details.trades_count,
            current_pnl: details.current_pnl,
            timestamp: Timestamp::now(),
        });
        self.publish(event);
        true
    }

    /// Publishes any event on the run's topic, counting the outcome. Used for events
    /// that belong to the run but are made elsewhere (its log entries, for example).
    pub fn publish(&mut self, event: Event) {
        let envelope = Envelope::new(self.topic.clone(), event);
        match self.sink.publish(&envelope) {
            Ok(()) => self.delivery.published += 1,
            Err(error) => {
                self.delivery.failed += 1;
                if let Some(hook) = &self.on_sink_error {
                    hook(&self.id, &error);
                }
                self.delivery.last_error = Some(error.to_string());
            }
        }
    }

    /// Ends the run successfully: publishes `backtest_complete` with `duration_seconds`
    /// computed from the start.
    pub fn complete(mut self, results: RunResults) -> RunSummary {
        let duration = self.started.elapsed();
        let event = Event::BacktestComplete(BacktestComplete {
            backtest_id: self.id.clone(),
            final_balance: results.final_balance,
            total_trades: results.total_trades,
            win_rate: results.win_rate,
            sharpe_ratio: results.sharpe_ratio,
            drawdown: results.drawdown,
            return_pct: results.return_pct,
            duration_seconds: duration.as_secs_f64(),
            timestamp: Timestamp::now(),
            results: results.results,
        });
        self.finish(event, duration)
    }

    /// Ends the run with a failure: publishes `backtest_error`.
    pub fn error(mut self, error: impl Into<String>, details: impl Into<String>) -> RunSummary {
        let duration = self.started.elapsed();
        let event = self.error_event(error.into(), details.into());
        self.finish(event, duration)
    }

    fn error_event(&self, error: String, error_details: String) -> Event {
        Event::BacktestError(BacktestError {
            backtest_id: self.id.clone(),
            error,
            error_details,
            timestamp: Timestamp::now(),
        })
    }

    fn finish(&mut self, event: Event, duration: Duration) -> RunSummary {
        self.publish(event);
        self.finished = true;
        RunSummary {
            backtest_id: self.id.clone(),
            duration,
            delivery: self.delivery.clone(),
        }
    }
}

impl Drop for RunningBacktest {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let details = if std::thread::panicking() {
            "the backtest thread panicked before the run completed"
        } else {
            "the run was dropped without complete() or error()"
        };
        let event = self.error_event("Backtest ended without completing".into(), details.into());
        self.publish(event);
    }
}
