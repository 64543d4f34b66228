//! A [`tracing_subscriber::Layer`](https://docs.rs/tracing-subscriber/0.3/tracing_subscriber/layer/trait.Layer.html) that streams `tracing` events as `log_entry` events
//! (feature `tracing`).
//!
//! A thread-local [`LogScope`](crate::log_bridge::LogScope) cannot follow an async task from
//! thread to thread; a `tracing` span can. Give the run's span a `backtest_id` field,
//! and every event inside it (across `.await`s and thread hops, in child spans too)
//! becomes a `log_entry` of that run:
//!
//! ```
//! use backtest_stream::tracing_layer::BacktestLayer;
//! use backtest_stream::sink::MemorySink;
//! use backtest_stream::wire::{BacktestId, Topic};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let hub = MemorySink::new();
//! let layer = BacktestLayer::builder().default_sink(hub.clone()).build();
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let run = BacktestId::new("run-7").unwrap();
//!     let span = tracing::info_span!("backtest", backtest_id = %run);
//!     let _entered = span.enter();
//!     tracing::info!(function = "on_bar", "bar {} done", 42);
//! });
//! let envelope = &hub.envelopes()[0];
//! assert_eq!(envelope.topic, Topic::BACKTEST);
//! let json = envelope.event.to_json();
//! assert!(json.contains(r#""backtest_id":"run-7""#), "{json}");
//! assert!(json.contains(r#""message":"bar 42 done""#), "{json}");
//! assert!(json.contains(r#""function":"on_bar""#), "{json}");
//! ```
//!
//! # Which run, and where to
//!
//! The run of an event is, by precedence: the event's own `backtest_id` field; the
//! `backtest_id` of the nearest enclosing span that has one (recorded at creation or
//! later with `Span::record`); the thread's [`LogScope`](crate::log_bridge::LogScope). The event
//! is then published to
//!
//! 1. the thread's scope sink and topic, when the thread's scope is that same run;
//! 2. else the sink registered for the run with [`RunRoutes::register`];
//! 3. else the layer's default sink, on the run topic (`backtest` unless set);
//! 4. an event of no run goes to the default sink on topic `logs`, with a `null` id.
//!
//! An event with nowhere to go is counted as `unrouted`. Field mapping is that of the
//! log bridge ([`crate::log_bridge`]): the `message` field is the message, `function`
//! the function, other event fields are appended as ` key=value`; `module` is the last
//! segment of the module path; `logger_name` is `backtest.<id>` or the event's target.
//! The layer shares the log bridge's per-thread guard, so a sink that logs or traces
//! while publishing is not re-entered.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, RwLock};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::log_bridge::{
    BACKTEST_ID_KEY, BridgeStats, Counters, FUNCTION_KEY, current_scope, last_segment,
};
use crate::sink::{ProgressSink, SharedSink};
use crate::streamer::RunningBacktest;
use crate::wire::{BacktestId, Envelope, LogEntry, LogLevel, Timestamp, Topic};

/// The run id a span carries, kept in the span's extensions.
struct SpanRun(BacktestId);

/// Per-run destinations shared between a [`BacktestLayer`] and the code that starts
/// runs. Cloning gives another handle to the same table.
#[derive(Clone, Default)]
pub struct RunRoutes {
    table: Arc<RwLock<HashMap<BacktestId, (SharedSink, Topic)>>>,
}

impl fmt::Debug for RunRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let runs = self.read(|t| t.len());
        f.debug_struct("RunRoutes").field("runs", &runs).finish()
    }
}

/// Removes a run's route when dropped (see [`RunRoutes::register`]).
#[must_use = "the route is removed when the guard is dropped"]
#[derive(Debug)]
pub struct RouteGuard {
    routes: RunRoutes,
    id: BacktestId,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.routes.write(|t| {
            t.remove(&self.id);
        });
    }
}

impl RunRoutes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the events of run `id` to `sink` on `topic` until the guard is dropped.
    pub fn register(&self, id: BacktestId, sink: SharedSink, topic: Topic) -> RouteGuard {
        self.write(|t| {
            t.insert(id.clone(), (sink, topic));
        });
        RouteGuard {
            routes: self.clone(),
            id,
        }
    }

    /// Sends the events of `run` to its sink and topic until the guard is dropped.
    pub fn register_run(&self, run: &RunningBacktest) -> RouteGuard {
        self.register(run.id().clone(), run.sink().clone(), run.topic().clone())
    }

    fn get(&self, id: &BacktestId) -> Option<(SharedSink, Topic)> {
        self.read(|t| t.get(id).cloned())
    }

    fn read<R>(&self, f: impl FnOnce(&HashMap<BacktestId, (SharedSink, Topic)>) -> R) -> R {
        match self.table.read() {
            Ok(table) => f(&table),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write(&self, f: impl FnOnce(&mut HashMap<BacktestId, (SharedSink, Topic)>)) {
        match self.table.write() {
            Ok(mut table) => f(&mut table),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// The layer: streams `tracing` events as `log_entry` events. Build it with
/// [`BacktestLayer::builder`].
pub struct BacktestLayer {
    level: LevelFilter,
    default_sink: Option<SharedSink>,
    run_topic: Topic,
    other_topic: Topic,
    routes: RunRoutes,
    counters: Arc<Counters>,
}

impl fmt::Debug for BacktestLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BacktestLayer")
            .field("level", &self.level)
            .field("run_topic", &self.run_topic)
            .field("other_topic", &self.other_topic)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`BacktestLayer`].
#[derive(Debug)]
pub struct BacktestLayerBuilder {
    layer: BacktestLayer,
}

impl BacktestLayer {
    /// A builder: level `INFO`, no default sink, run topic `backtest`, other topic
    /// `logs`, an empty route table.
    pub fn builder() -> BacktestLayerBuilder {
        BacktestLayerBuilder {
            layer: BacktestLayer {
                level: LevelFilter::INFO,
                default_sink: None,
                run_topic: Topic::BACKTEST,
                other_topic: Topic::LOGS,
                routes: RunRoutes::new(),
                counters: Arc::default(),
            },
        }
    }

    /// The layer's route table: register a run's sink there.
    pub fn routes(&self) -> RunRoutes {
        self.routes.clone()
    }

    /// A handle reading the layer's counters after it moved into a subscriber.
    pub fn stats_handle(&self) -> LayerStats {
        LayerStats(Arc::clone(&self.counters))
    }
}

/// Reads a [`BacktestLayer`]'s counters.
#[derive(Debug, Clone)]
pub struct LayerStats(Arc<Counters>);

impl LayerStats {
    /// What happened to the events so far.
    pub fn get(&self) -> BridgeStats {
        self.0.snapshot()
    }
}

impl BacktestLayerBuilder {
    /// Streams events of this level and more severe (default `INFO`). For finer
    /// filtering use `tracing-subscriber`'s per-layer filters (`layer.with_filter(..)`).
    pub fn level(mut self, level: LevelFilter) -> Self {
        self.layer.level = level;
        self
    }

    /// Where events go that no scope or route claims: a run's events on the run topic,
    /// the others on topic `logs`.
    pub fn default_sink(self, sink: impl ProgressSink + 'static) -> Self {
        self.default_shared_sink(Arc::new(sink))
    }

    /// Like [`default_sink`](Self::default_sink) with a shared sink.
    pub fn default_shared_sink(mut self, sink: SharedSink) -> Self {
        self.layer.default_sink = Some(sink);
        self
    }

    /// The topic of a run's events on the default sink (default `backtest`).
    pub fn run_topic(mut self, topic: Topic) -> Self {
        self.layer.run_topic = topic;
        self
    }

    /// The topic of events of no run (default `logs`).
    pub fn other_topic(mut self, topic: Topic) -> Self {
        self.layer.other_topic = topic;
        self
    }

    /// Uses an existing route table (shared with the code that starts runs).
    pub fn routes(mut self, routes: RunRoutes) -> Self {
        self.layer.routes = routes;
        self
    }

    /// Builds the layer.
    pub fn build(self) -> BacktestLayer {
        self.layer
    }
}

/// Finds a valid `backtest_id` among a span's fields.
#[derive(Default)]
struct SpanIdVisitor(Option<BacktestId>);

impl Visit for SpanIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == BACKTEST_ID_KEY {
            self.0 = BacktestId::new(value).ok();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == BACKTEST_ID_KEY {
            self.0 = BacktestId::new(format!("{value:?}")).ok();
        }
    }
}

/// Collects an event's fields.
#[derive(Default)]
struct EventVisitor {
    message: String,
    rest: String,
    function: Option<String>,
    backtest_id: Option<BacktestId>,
}

impl EventVisitor {
    fn take(&mut self, field: &Field, text: String) {
        match field.name() {
            "message" => self.message = text,
            FUNCTION_KEY if self.function.is_none() => self.function = Some(text),
            BACKTEST_ID_KEY if self.backtest_id.is_none() => match BacktestId::new(&text) {
                Ok(id) => self.backtest_id = Some(id),
                Err(_) => self.append(field.name(), &text),
            },
            name => self.append(name, &text),
        }
    }

    fn append(&mut self, name: &str, text: &str) {
        let _ = write!(self.rest, " {name}={text}");
    }
}

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.take(field, value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.take(field, format!("{value:?}"));
    }
}

fn level_of(level: &Level) -> LogLevel {
    match *level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warning,
        _ => LogLevel::Error,
    }
}

impl BacktestLayer {
    fn record_span_id<S>(values: &Record<'_>, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut visitor = SpanIdVisitor::default();
        values.record(&mut visitor);
        if let (Some(run), Some(span)) = (visitor.0, ctx.span(id)) {
            let mut extensions = span.extensions_mut();
            extensions.remove::<SpanRun>();
            extensions.insert(SpanRun(run));
        }
    }

    /// The destination of an event of run `run` (or of no run).
    fn destination(
        &self,
        run: Option<&BacktestId>,
        scope: Option<&crate::log_bridge::ScopeTarget>,
    ) -> Option<(SharedSink, Topic)> {
        match run {
            Some(run) => {
                if let Some(scope) = scope.filter(|s| &s.backtest_id == run) {
                    return Some((scope.sink.clone(), scope.topic.clone()));
                }
                self.routes.get(run).or_else(|| {
                    self.default_sink
                        .clone()
                        .map(|sink| (sink, self.run_topic.clone()))
                })
            }
            None => self
                .default_sink
                .clone()
                .map(|sink| (sink, self.other_topic.clone())),
        }
    }
}

impl<S> Layer<S> for BacktestLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().fields().field(BACKTEST_ID_KEY).is_none() {
            return;
        }
        let mut visitor = SpanIdVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(run), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(SpanRun(run));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(field) = ctx
            .metadata(id)
            .and_then(|m| m.fields().field(BACKTEST_ID_KEY))
        else {
            return;
        };
        if values.contains(&field) {
            Self::record_span_id(values, id, &ctx);
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // More verbose events are ignored here; other layers give their own hints.
        Some(self.level)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if *metadata.level() > self.level {
            return;
        }
        let _busy = match crate::log_bridge::Busy::enter() {
            Ok(busy) => busy,
            Err(why) => return self.counters.not_entered(why),
        };
        let mut fields = EventVisitor::default();
        event.record(&mut fields);

        let span_run = || {
            ctx.event_scope(event)?
                .find_map(|span| span.extensions().get::<SpanRun>().map(|run| run.0.clone()))
        };
        let scope = current_scope();
        let run = fields
            .backtest_id
            .take()
            .or_else(span_run)
            .or_else(|| scope.as_ref().map(|s| s.backtest_id.clone()));
        let Some((sink, topic)) = self.destination(run.as_ref(), scope.as_deref()) else {
            return self.counters.unrouted();
        };

        let mut message = fields.message;
        message.push_str(&fields.rest);
        let logger_name = match &run {
            Some(run) => format!("backtest.{run}"),
            None => metadata.target().to_owned(),
        };
        let entry = LogEntry {
            backtest_id: run,
            timestamp: Timestamp::now(),
            level: level_of(metadata.level()),
            message,
            module: last_segment(metadata.module_path().unwrap_or(metadata.target())).to_owned(),
            function: fields.function.unwrap_or_default(),
            line: metadata.line().unwrap_or(0),
            logger_name,
        };
        let envelope = Envelope::new(topic, crate::wire::Event::LogEntry(entry));
        self.counters.publish(&*sink, &envelope);
    }
}
