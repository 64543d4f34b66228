//! The runs of this process: a bounded registry, and one std thread per run that
//! streams through the hub with the crate's `BacktestRunner` and reference engine.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use backtest_stream::engine::{BacktestRunner, error_chain};
use backtest_stream::reference::{
    Bar, EngineConfig, ReferenceEngine, SmaCrossover, Strategy, StrategyContext, StrategyError,
    SyntheticBars, load_csv,
};
use backtest_stream::server::HubSink;
use backtest_stream::sink::{ProgressSink, SharedSink, SinkError};
use backtest_stream::streamer::{ProgressStreamer, RunInfo, StreamerConfig};
use backtest_stream::wire::{BacktestId, Envelope, Event, Timestamp};
use serde_json::{Map, Value, json};

/// Where a run's bars come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// The reference engine's deterministic synthetic bars.
    Synthetic {
        /// How many bars.
        count: usize,
        /// The seed.
        seed: u64,
        /// The first bar's time.
        start: Timestamp,
        /// The time between bars.
        interval: Duration,
    },
    /// A CSV file (`load_csv`), cut to the date range and the bar count.
    Csv {
        /// The file.
        path: PathBuf,
        /// The most bars to use (`None`: all in the range).
        limit: Option<usize>,
    },
}

/// A validated run request.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub id: BacktestId,
    pub variant: String,
    pub symbol: String,
    pub timeframe: String,
    pub start_date: String,
    /// Empty: up to the end of the data.
    pub end_date: String,
    pub end: Option<Timestamp>,
    pub start: Option<Timestamp>,
    pub data: DataSource,
    pub bar_delay: Duration,
    pub fast: usize,
    pub slow: usize,
    pub size: f64,
    pub cash: f64,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Complete,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Error => "error",
        }
    }
}

/// What the registry knows about one run.
#[derive(Debug)]
struct Record {
    spec: RunSpec,
    status: Status,
    created_at: Timestamp,
    finished_at: Option<Timestamp>,
    /// The `backtest_complete` payload, exactly as streamed.
    results: Option<Value>,
    error: Option<String>,
    error_details: Option<String>,
    /// The last progress percentage streamed.
    progress: f64,
}

impl Record {
    fn summary(&self) -> Map<String, Value> {
        let s = &self.spec;
        let mut m = Map::new();
        m.insert("backtest_id".into(), s.id.as_str().into());
        m.insert("status".into(), self.status.as_str().into());
        m.insert("variant".into(), s.variant.clone().into());
        m.insert("symbol".into(), s.symbol.clone().into());
        m.insert("timeframe".into(), s.timeframe.clone().into());
        m.insert("start_date".into(), s.start_date.clone().into());
        m.insert("end_date".into(), s.end_date.clone().into());
        m.insert("progress".into(), json!(self.progress));
        m.insert("created_at".into(), json!(self.created_at));
        m.insert("finished_at".into(), json!(self.finished_at));
        let final_balance = self
            .results
            .as_ref()
            .and_then(|r| r.get("final_balance").cloned());
        m.insert("final_balance".into(), final_balance.unwrap_or(Value::Null));
        m.insert("error".into(), json!(self.error));
        m
    }

    fn detail(&self) -> Value {
        let s = &self.spec;
        let mut m = self.summary();
        m.remove("final_balance");
        let data = match &s.data {
            DataSource::Synthetic { count, seed, .. } => {
                json!({ "source": "synthetic", "bars": count, "seed": seed })
            }
            DataSource::Csv { path, limit } => {
                json!({ "source": "csv", "data_path": path.display().to_string(), "bars": limit })
            }
        };
        m.insert("data".into(), data);
        m.insert(
            "bar_delay_us".into(),
            json!(u64::try_from(s.bar_delay.as_micros()).unwrap_or(u64::MAX)),
        );
        m.insert(
            "parameters".into(),
            json!({ "fast": s.fast, "slow": s.slow, "size": s.size, "cash": s.cash }),
        );
        m.insert(
            "results".into(),
            self.results.clone().unwrap_or(Value::Null),
        );
        m.insert("error_details".into(), json!(self.error_details));
        Value::Object(m)
    }
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("a backtest with id `{0}` already exists")]
    Duplicate(String),
    #[error("{running} runs are already running (the limit); try again when one finishes")]
    Busy { running: usize },
    #[error("could not start the run's thread: {0}")]
    Thread(#[source] std::io::Error),
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<String, Record>,
    /// Ids in creation order (the listing's order; the oldest finished are forgotten first).
    order: VecDeque<String>,
    running: usize,
}

/// The runs of this process.
#[derive(Debug, Clone)]
pub struct Runs {
    inner: Arc<Mutex<Inner>>,
    sink: HubSink,
    max_running: usize,
    max_kept: usize,
}

impl Runs {
    /// A registry that runs at most `max_running` runs at once and remembers at most
    /// `max_kept` runs (the oldest finished ones are forgotten first).
    pub fn new(sink: HubSink, max_running: usize, max_kept: usize) -> Self {
        Self {
            inner: Arc::default(),
            sink,
            max_running,
            max_kept: max_kept.max(max_running),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated in a way
        // that matters here: keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the run and starts its thread.
    pub fn start(&self, spec: RunSpec) -> Result<(), StartError> {
        let key = spec.id.as_str().to_owned();
        {
            let mut inner = self.lock();
            if inner.records.contains_key(&key) {
                return Err(StartError::Duplicate(key));
            }
            if inner.running >= self.max_running {
                return Err(StartError::Busy {
                    running: inner.running,
                });
            }
            inner.running += 1;
            inner.records.insert(
                key.clone(),
                Record {
                    spec: spec.clone(),
                    status: Status::Running,
                    created_at: Timestamp::now(),
                    finished_at: None,
                    results: None,
                    error: None,
                    error_details: None,
                    progress: 0.0,
                },
            );
            inner.order.push_back(key.clone());
            forget_oldest_finished(&mut inner, self.max_kept);
        }
        let runs = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("backtest-{}", short(&key)))
            .spawn(move || runs.execute(spec));
        if let Err(error) = spawned {
            let mut inner = self.lock();
            inner.running -= 1;
            inner.records.remove(&key);
            inner.order.retain(|k| k != &key);
            return Err(StartError::Thread(error));
        }
        Ok(())
    }

    /// One run, on its own thread.
    fn execute(&self, spec: RunSpec) {
        let key = spec.id.as_str().to_owned();
        let sink = RunSink {
            hub: self.sink.clone(),
            runs: self.clone(),
            key: key.clone(),
        };
        log::info!(
            "run {key} started: {} {} {}, fast {} slow {} size {}",
            spec.variant,
            spec.symbol,
            spec.timeframe,
            spec.fast,
            spec.slow,
            spec.size
        );
        let outcome = run_one(&spec, sink);
        let mut inner = self.lock();
        inner.running = inner.running.saturating_sub(1);
        if let Some(record) = inner.records.get_mut(&key) {
            record.finished_at = Some(Timestamp::now());
            match outcome {
                Ok(()) => {
                    record.status = Status::Complete;
                    record.progress = 100.0;
                }
                Err((error, details)) => {
                    record.status = Status::Error;
                    // The streamed backtest_error's text when there was one.
                    if record.error.is_none() {
                        record.error = Some(error);
                        record.error_details = Some(details);
                    }
                }
            }
        }
        drop(inner);
        log::info!("run {key} finished");
    }

    /// The status and results of one run.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.lock().records.get(id).map(Record::detail)
    }

    /// Every run this process remembers, oldest first.
    pub fn list(&self) -> Value {
        let inner = self.lock();
        let list: Vec<Value> = inner
            .order
            .iter()
            .filter_map(|k| inner.records.get(k))
            .map(|r| Value::Object(r.summary()))
            .collect();
        json!({ "backtests": list, "running": inner.running, "max_running": self.max_running })
    }

    fn record_event(&self, key: &str, event: &Event) {
        let mut inner = self.lock();
        let Some(record) = inner.records.get_mut(key) else {
            return;
        };
        match event {
            Event::BacktestProgress(p) => record.progress = p.progress,
            Event::BacktestComplete(c) => record.results = serde_json::to_value(c).ok(),
            Event::BacktestError(e) => {
                record.error = Some(e.error.clone());
                record.error_details = Some(e.error_details.clone());
            }
            _ => {}
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn forget_oldest_finished(inner: &mut Inner, max_kept: usize) {
    while inner.order.len() > max_kept {
        let Some(pos) = inner.order.iter().position(|k| {
            inner
                .records
                .get(k)
                .is_none_or(|r| r.status != Status::Running)
        }) else {
            return;
        };
        if let Some(k) = inner.order.remove(pos) {
            inner.records.remove(&k);
        }
    }
}

/// The run's sink: the hub, and the registry (which keeps the final payload exactly as
/// streamed, so that `GET /api/v1/backtest/{id}` answers what the page showed).
struct RunSink {
    hub: HubSink,
    runs: Runs,
    key: String,
}

impl ProgressSink for RunSink {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        match &*envelope.event {
            Event::BacktestProgress(_) | Event::BacktestComplete(_) | Event::BacktestError(_) => {
                self.runs.record_event(&self.key, &envelope.event)
            }
            _ => {}
        }
        self.hub.publish(envelope)
    }

    fn flush(&self) -> Result<(), SinkError> {
        self.hub.flush()
    }
}

/// Loads the data and runs the engine; `Err((error, details))` when it failed (a
/// failure is streamed as the run's `backtest_error` either way).
fn run_one(spec: &RunSpec, sink: RunSink) -> Result<(), (String, String)> {
    let sink: SharedSink = Arc::new(sink);
    let bars = match load_bars(spec) {
        Ok(bars) => bars,
        Err((error, details)) => {
            // Nothing ran: stream the failure as the run's start and error, so that the
            // page shows it on the run's card.
            let info = RunInfo::new(spec.variant.clone(), spec.symbol.clone())
                .timeframe(spec.timeframe.clone())
                .dates(spec.start_date.clone(), spec.end_date.clone());
            ProgressStreamer::from_shared(sink, StreamerConfig::default())
                .with_id(spec.id.clone())
                .start(info, 0)
                .error(error.clone(), details.clone());
            return Err((error, details));
        }
    };
    let strategy = SmaCrossover::new(spec.fast, spec.slow, spec.size)
        .map_err(|e| (e.to_string(), e.to_string()))?;
    let config = EngineConfig {
        initial_cash: spec.cash,
        symbol: spec.symbol.clone(),
        timeframe: spec.timeframe.clone(),
        // The trade list of backtest_complete stays bounded.
        max_result_trades: Some(500),
        ..EngineConfig::default()
    };
    // About 200 progress updates per run, however long.
    let every = (bars.len() as u64 / 200).max(1);
    let mut engine = ReferenceEngine::new(&bars, Paced::new(strategy, spec.bar_delay), config);
    let runner = BacktestRunner::streaming(Some(sink))
        .with_id(spec.id.clone())
        .variant(spec.variant.clone())
        .progress_every(every);
    match runner.run(&mut engine) {
        Ok(_) => Ok(()),
        Err(error) => Err((error.to_string(), error_chain(&error))),
    }
}

fn load_bars(spec: &RunSpec) -> Result<Vec<Bar>, (String, String)> {
    let mut bars = match &spec.data {
        DataSource::Synthetic {
            count,
            seed,
            start,
            interval,
        } => SyntheticBars {
            count: *count,
            seed: *seed,
            start: *start,
            interval: *interval,
            ..SyntheticBars::default()
        }
        .generate()
        .map_err(|e| (e.to_string(), error_chain(&e)))?,
        DataSource::Csv { path, .. } => load_csv(path).map_err(|e| {
            (
                format!("could not load {}: {e}", path.display()),
                error_chain(&e),
            )
        })?,
    };
    if let DataSource::Csv { limit, .. } = &spec.data {
        if let Some(start) = spec.start {
            bars.retain(|b| b.timestamp >= start);
        }
        if let Some(end) = spec.end {
            bars.retain(|b| b.timestamp < end);
        }
        if let Some(limit) = limit {
            bars.truncate(*limit);
        }
    } else if let Some(end) = spec.end {
        bars.retain(|b| b.timestamp < end);
    }
    if bars.is_empty() {
        let message = "no bars in the requested date range".to_owned();
        return Err((message.clone(), message));
    }
    Ok(bars)
}

/// Paces a strategy: bar `n` ends no earlier than `n × delay` after the first, so that a
/// person can watch the run (the sleeps do not add up drift).
struct Paced<S> {
    inner: S,
    delay: Duration,
    started: Option<Instant>,
    bars: u32,
}

impl<S> Paced<S> {
    fn new(inner: S, delay: Duration) -> Self {
        Self {
            inner,
            delay,
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
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        Ok(())
    }
}
