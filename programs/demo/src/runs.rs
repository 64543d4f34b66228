//! The runs of this process: a bounded registry, and one std thread per run that
//! streams through the hub (or Redis, with `--redis`) with the crate's `BacktestRunner` and reference engine.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backtest_stream::engine::{BacktestRunner, CancelToken, RunError, error_chain};
use backtest_stream::reference::{
    Bar, EngineConfig, ReferenceEngine, SmaCrossover, SyntheticBars, read_csv_range, timeframe_of,
};
use backtest_stream::sink::{ProgressSink, SharedSink, SinkError};
use backtest_stream::streamer::{ProgressStreamer, RunInfo, StreamerConfig};
use backtest_stream::wire::{BacktestId, Envelope, Event, Timestamp};
use serde_json::{Map, Value, json};

use crate::data::{Capped, DataFile};
use crate::paced::Paced;

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
    /// A CSV file (`read_csv_range`), cut to the date range and the bar count.
    Csv {
        /// The file, as the request named it.
        path: PathBuf,
        /// The most bars to use (`None`: all in the range).
        limit: Option<usize>,
        /// The file, opened below the data directory (`None` until the API opened it).
        file: Option<DataFile>,
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
    /// The longest a paced run may take (`bars × bar_delay`, `--max-run-seconds`).
    pub max_run: Duration,
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
    /// The bars the run uses (from its progress events): fewer than `bars` asked of a
    /// file whose range holds fewer.
    bars_used: Option<u64>,
    /// Stops the run (`DELETE /api/v1/backtest/{id}`).
    cancel: CancelToken,
    /// The run ended because it was cancelled.
    cancelled: bool,
    /// The `sub` of the token that started it (with authentication).
    owner: Option<String>,
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
        m.insert("cancelled".into(), json!(self.cancelled));
        m
    }

    fn detail(&self) -> Value {
        let s = &self.spec;
        let mut m = self.summary();
        m.remove("final_balance");
        let mut data = match &s.data {
            DataSource::Synthetic { count, seed, .. } => {
                json!({ "source": "synthetic", "bars": count, "seed": seed })
            }
            DataSource::Csv { path, limit, .. } => {
                json!({ "source": "csv", "data_path": path.display().to_string(), "bars": limit })
            }
        };
        data["bars_used"] = json!(self.bars_used);
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

/// Why a run was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no backtest with id `{0}`")]
    NotFound(String),
    #[error(
        "backtest `{id}` has already finished ({status}); only a running backtest can be cancelled"
    )]
    Finished { id: String, status: &'static str },
}

/// How a run ended.
enum Outcome {
    Complete,
    Failed { error: String, details: String },
    Cancelled,
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<String, Record>,
    /// Ids in creation order (the listing's order; the oldest finished are forgotten first).
    order: VecDeque<String>,
    running: usize,
}

/// The runs of this process.
#[derive(Clone)]
pub struct Runs {
    inner: Arc<Mutex<Inner>>,
    /// The hub's sink, or the `RedisSink` with `--redis`.
    sink: SharedSink,
    max_running: usize,
    max_kept: usize,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("inner", &self.inner)
            .field("max_running", &self.max_running)
            .field("max_kept", &self.max_kept)
            .finish_non_exhaustive()
    }
}

impl Runs {
    /// A registry that runs at most `max_running` runs at once and remembers at most
    /// `max_kept` runs (the oldest finished ones are forgotten first).
    pub fn new(sink: SharedSink, max_running: usize, max_kept: usize) -> Self {
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

    /// Registers the run (owned by `owner`, the starting token's `sub`) and starts its
    /// thread.
    pub fn start(&self, spec: RunSpec, owner: Option<String>) -> Result<(), StartError> {
        let key = spec.id.as_str().to_owned();
        let cancel = CancelToken::new();
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
                    bars_used: None,
                    cancel: cancel.clone(),
                    cancelled: false,
                    owner,
                },
            );
            inner.order.push_back(key.clone());
            forget_oldest_finished(&mut inner, self.max_kept);
        }
        let runs = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("backtest-{}", short(&key)))
            .spawn(move || runs.execute(spec, cancel));
        if let Err(error) = spawned {
            let mut inner = self.lock();
            inner.running -= 1;
            inner.records.remove(&key);
            inner.order.retain(|k| k != &key);
            return Err(StartError::Thread(error));
        }
        Ok(())
    }

    /// Asks a running run to stop: it ends at its next bar (within a few milliseconds
    /// when paced) with `backtest_error` "Backtest cancelled". Cancelling a run that is
    /// already stopping is not an error.
    pub fn cancel(&self, id: &str) -> Result<(), CancelError> {
        let inner = self.lock();
        let record = inner
            .records
            .get(id)
            .ok_or_else(|| CancelError::NotFound(id.to_owned()))?;
        if record.status != Status::Running {
            return Err(CancelError::Finished {
                id: id.to_owned(),
                status: record.status.as_str(),
            });
        }
        record.cancel.cancel();
        drop(inner);
        log::info!("run {id}: cancel requested");
        Ok(())
    }

    /// One run, on its own thread.
    fn execute(&self, spec: RunSpec, cancel: CancelToken) {
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
        let outcome = run_one(&spec, sink, cancel);
        let mut inner = self.lock();
        inner.running = inner.running.saturating_sub(1);
        if let Some(record) = inner.records.get_mut(&key) {
            record.finished_at = Some(Timestamp::now());
            match outcome {
                Outcome::Complete => {
                    record.status = Status::Complete;
                    record.progress = 100.0;
                }
                Outcome::Cancelled => {
                    record.status = Status::Error;
                    record.cancelled = true;
                }
                Outcome::Failed { error, details } => {
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

    /// The runs `subject` started (that this process still remembers).
    pub fn owned_by(&self, subject: &str) -> Vec<BacktestId> {
        self.lock()
            .records
            .values()
            .filter(|r| r.owner.as_deref() == Some(subject))
            .map(|r| r.spec.id.clone())
            .collect()
    }

    /// Every run this process remembers that `visible` accepts, oldest first.
    pub fn list(&self, visible: impl Fn(&BacktestId) -> bool) -> Value {
        let inner = self.lock();
        let list: Vec<Value> = inner
            .order
            .iter()
            .filter_map(|k| inner.records.get(k))
            .filter(|r| visible(&r.spec.id))
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
            Event::BacktestStart(s) => record.spec.timeframe.clone_from(&s.timeframe),
            Event::BacktestProgress(p) => {
                record.progress = p.progress;
                record.bars_used = Some(p.total_bars);
            }
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

/// The run's sink: the hub (or Redis), and the registry (which keeps the final payload exactly as
/// streamed, so that `GET /api/v1/backtest/{id}` answers what the page showed).
struct RunSink {
    hub: SharedSink,
    runs: Runs,
    key: String,
}

impl ProgressSink for RunSink {
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        match &*envelope.event {
            Event::BacktestStart(_)
            | Event::BacktestProgress(_)
            | Event::BacktestComplete(_)
            | Event::BacktestError(_) => self.runs.record_event(&self.key, &envelope.event),
            _ => {}
        }
        self.hub.publish(envelope)
    }

    fn flush(&self) -> Result<(), SinkError> {
        self.hub.flush()
    }
}

/// Loads the data and runs the engine (a failure is streamed as the run's
/// `backtest_error` either way).
fn run_one(spec: &RunSpec, sink: RunSink, cancel: CancelToken) -> Outcome {
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
            return Outcome::Failed { error, details };
        }
    };
    let strategy = match SmaCrossover::new(spec.fast, spec.slow, spec.size) {
        Ok(strategy) => strategy,
        Err(e) => {
            let error = e.to_string();
            return Outcome::Failed {
                details: error.clone(),
                error,
            };
        }
    };
    let config = EngineConfig {
        initial_cash: spec.cash,
        symbol: spec.symbol.clone(),
        // A file's timeframe, unless the request named one, is the spacing of its bars.
        timeframe: match spec.timeframe.as_str() {
            "" => timeframe_of(&bars).unwrap_or_default().to_owned(),
            named => named.to_owned(),
        },
        // The trade list of backtest_complete stays bounded.
        max_result_trades: Some(500),
        ..EngineConfig::default()
    };
    // About 200 progress updates per run, however long.
    let every = (bars.len() as u64 / 200).max(1);
    let paced = Paced::new(strategy, spec.bar_delay, cancel.clone());
    let mut engine = ReferenceEngine::new(&bars, paced, config);
    let runner = BacktestRunner::streaming(Some(sink))
        .with_id(spec.id.clone())
        .variant(spec.variant.clone())
        .progress_every(every)
        .with_cancel_token(cancel);
    match runner.run(&mut engine) {
        Ok(_) => Outcome::Complete,
        Err(RunError::Cancelled { .. }) => Outcome::Cancelled,
        Err(error) => Outcome::Failed {
            error: error.to_string(),
            details: error_chain(&error),
        },
    }
}

fn load_bars(spec: &RunSpec) -> Result<Vec<Bar>, (String, String)> {
    let bars = match &spec.data {
        DataSource::Synthetic {
            count,
            seed,
            start,
            interval,
        } => {
            let mut bars = SyntheticBars {
                count: *count,
                seed: *seed,
                start: *start,
                interval: *interval,
                ..SyntheticBars::default()
            }
            .generate()
            .map_err(|e| (e.to_string(), error_chain(&e)))?;
            if let Some(end) = spec.end {
                bars.retain(|b| b.timestamp < end);
            }
            bars
        }
        DataSource::Csv { path, limit, file } => read_data_file(spec, path, *limit, file)?,
    };
    if bars.is_empty() {
        let message = "no bars in the requested date range".to_owned();
        return Err((message.clone(), message));
    }
    Ok(bars)
}

/// The bars of the run's CSV file: read only as far as the run needs (its date range,
/// `bars` of them, or one more than fit in `--max-run-seconds` when paced), and through
/// the `--max-data-bytes` cap.
fn read_data_file(
    spec: &RunSpec,
    path: &std::path::Path,
    limit: Option<usize>,
    file: &Option<DataFile>,
) -> Result<Vec<Bar>, (String, String)> {
    let shown = path.display();
    let Some(data) = file else {
        let message = format!("the data file {shown} was not opened");
        return Err((message.clone(), message));
    };
    let fit = max_paced_bars(spec).map(|n| n.saturating_add(1));
    let max_bars = match (limit, fit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let input = Capped::new(&data.file, data.max_bytes);
    let bars = read_csv_range(input, spec.start, spec.end, max_bars)
        .map_err(|e| (format!("could not load {shown}: {e}"), error_chain(&e)))?;
    if max_paced_bars(spec).is_some_and(|fit| bars.len() > fit) {
        let message = format!(
            "{shown} holds more than {} bars: at bar_delay_us {} the run would take longer \
             than the {} s a paced run may take (--max-run-seconds); give `bars` or a smaller \
             bar_delay_us",
            max_paced_bars(spec).unwrap_or(0),
            spec.bar_delay.as_micros(),
            spec.max_run.as_secs()
        );
        return Err((message.clone(), message));
    }
    Ok(bars)
}

/// The most bars a paced run may have (`None`: not paced).
pub fn max_paced_bars(spec: &RunSpec) -> Option<usize> {
    if spec.bar_delay.is_zero() {
        return None;
    }
    let n = spec.max_run.as_micros() / spec.bar_delay.as_micros();
    Some(usize::try_from(n).unwrap_or(usize::MAX))
}
