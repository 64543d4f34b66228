//! Per-thread state of the bridge: the current run scope, the reentrancy guard and
//! deliberate suppression.
//!
//! Everything here lives in thread-locals made of `Cell`s, so reading or changing it
//! can never panic (no `RefCell` borrow conflicts), and every access goes through
//! `try_with`, so logging from a thread-local destructor at thread exit is harmless.

use std::cell::Cell;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::sink::SharedSink;
use crate::streamer::RunningBacktest;
use crate::wire::{BacktestId, Topic};

/// Where the records of a scope go, and with which id.
pub(crate) struct ScopeTarget {
    pub(crate) backtest_id: BacktestId,
    /// `backtest.<id>`, computed once per scope.
    pub(crate) logger_name: String,
    pub(crate) sink: SharedSink,
    pub(crate) topic: Topic,
}

thread_local! {
    /// The innermost scope entered on this thread.
    static CURRENT: Cell<Option<Rc<ScopeTarget>>> = const { Cell::new(None) };
    /// Set while the bridge is publishing a record on this thread.
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// How many [`SuppressGuard`]s live on this thread.
    static SUPPRESSED: Cell<u32> = const { Cell::new(0) };
}

/// The scope current on this thread, if any.
pub(crate) fn current() -> Option<Rc<ScopeTarget>> {
    CURRENT
        .try_with(|cell| {
            let scope = cell.take();
            let copy = scope.clone();
            cell.set(scope);
            copy
        })
        .ok()
        .flatten()
}

/// A guard that routes every log record made on this thread to one backtest run while
/// it lives.
///
/// Inside the scope, each record that passes the bridge's filters becomes a `log_entry`
/// with the scope's `backtest_id` and `logger_name` `backtest.<id>`, published to the
/// scope's sink on the scope's topic. Scopes nest: dropping a guard restores the scope
/// that was current when it was entered (drop guards in reverse order of entering, as
/// with any stack of guards). The guard is `!Send`: a scope belongs to the thread that
/// entered it. For async code that hops between threads, use the `tracing` layer and a
/// span carrying the id (feature `tracing`).
///
/// Records reach the scope only through an installed [`LogBridge`](super::LogBridge)
/// (or a bridge called directly as a value); without one, entering a scope costs a
/// few nanoseconds and changes nothing.
///
/// ```
/// use backtest_stream::log_bridge::{LogBridge, LogScope};
/// use backtest_stream::sink::MemorySink;
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
/// use log::Log;
///
/// let memory = MemorySink::new();
/// let run = ProgressStreamer::new(memory.clone()).start(RunInfo::default(), 10);
/// let bridge = LogBridge::builder().build(); // usually installed with `try_init`
/// {
///     let _scope = LogScope::enter_run(&run);
///     bridge.log(&log::Record::builder().args(format_args!("bar done")).build());
/// }
/// let logs = memory.events();
/// assert_eq!(logs.len(), 2); // backtest_start, then the log entry
/// assert_eq!(logs[1].backtest_id(), Some(run.id()));
/// run.complete(Default::default());
/// ```
#[must_use = "the scope ends when the guard is dropped"]
pub struct LogScope {
    previous: Option<Rc<ScopeTarget>>,
    /// Whether this guard changed the thread's scope (false when thread-locals are gone).
    active: bool,
    _not_send: PhantomData<*const ()>,
}

impl LogScope {
    /// Every log record made on this thread while the guard lives is published as a
    /// `log_entry` with this `backtest_id`, to `sink` on `topic`.
    pub fn enter(backtest_id: BacktestId, sink: SharedSink, topic: Topic) -> LogScope {
        let logger_name = format!("backtest.{backtest_id}");
        let target = Rc::new(ScopeTarget {
            backtest_id,
            logger_name,
            sink,
            topic,
        });
        match CURRENT.try_with(|cell| cell.replace(Some(target))) {
            Ok(previous) => LogScope {
                previous,
                active: true,
                _not_send: PhantomData,
            },
            Err(_) => LogScope {
                previous: None,
                active: false,
                _not_send: PhantomData,
            },
        }
    }

    /// Shorthand for [`LogScope::enter`] with the run's id, sink and topic.
    pub fn enter_run(run: &RunningBacktest) -> LogScope {
        Self::enter(run.id().clone(), run.sink().clone(), run.topic().clone())
    }

    /// The id of the scope current on this thread, if any.
    ///
    /// ```
    /// use backtest_stream::log_bridge::LogScope;
    /// use backtest_stream::sink::NoopSink;
    /// use backtest_stream::wire::{BacktestId, Topic};
    /// use std::sync::Arc;
    ///
    /// assert_eq!(LogScope::current_id(), None);
    /// let id = BacktestId::new("run-1")?;
    /// let scope = LogScope::enter(id.clone(), Arc::new(NoopSink), Topic::BACKTEST);
    /// assert_eq!(LogScope::current_id(), Some(id));
    /// drop(scope);
    /// assert_eq!(LogScope::current_id(), None);
    /// # Ok::<(), backtest_stream::wire::InvalidBacktestId>(())
    /// ```
    pub fn current_id() -> Option<BacktestId> {
        current().map(|scope| scope.backtest_id.clone())
    }
}

impl Drop for LogScope {
    fn drop(&mut self) {
        if self.active {
            let previous = self.previous.take();
            let _ = CURRENT.try_with(|cell| cell.set(previous));
        }
    }
}

impl std::fmt::Debug for LogScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogScope")
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Marks this thread as "inside the bridge" for as long as it lives; `None` when the
/// thread already is (a record made while publishing a record), when suppression is on,
/// or when the thread-locals are gone.
pub(crate) struct Busy(());

/// Why a record could not enter the bridge on this thread.
pub(crate) enum NotEntered {
    /// The thread is already publishing a record: this one was made by a sink.
    Reentrant,
    /// A [`SuppressGuard`] lives on this thread.
    Suppressed,
}

impl Busy {
    pub(crate) fn enter() -> Result<Busy, NotEntered> {
        if SUPPRESSED.try_with(Cell::get).unwrap_or(0) > 0 {
            return Err(NotEntered::Suppressed);
        }
        match BUSY.try_with(|busy| busy.replace(true)) {
            Ok(false) => Ok(Busy(())),
            // Already busy, or thread-locals destroyed (thread exit): treat as reentrant.
            Ok(true) | Err(_) => Err(NotEntered::Reentrant),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = BUSY.try_with(|busy| busy.set(false));
    }
}

/// While a `SuppressGuard` lives, records made on its thread do not reach the bridge
/// (they still reach the inner logger). Get one with [`suppress`].
#[must_use = "suppression ends when the guard is dropped"]
#[derive(Debug)]
pub struct SuppressGuard {
    _not_send: PhantomData<*const ()>,
}

/// Stops the bridge from streaming records made on this thread while the returned
/// guard lives.
///
/// Meant for the worker threads of sinks: a WebSocket writer thread whose libraries
/// log (tokio, tungstenite) would otherwise stream its own log lines back into the
/// queue it drains. Records made on a suppressed thread are counted in
/// [`BridgeStats::suppressed`](super::BridgeStats::suppressed) and still reach the inner
/// logger (the console).
///
/// ```
/// let _quiet = backtest_stream::log_bridge::suppress();
/// log::info!("seen on the console logger only");
/// ```
pub fn suppress() -> SuppressGuard {
    let _ = SUPPRESSED.try_with(|n| n.set(n.get().saturating_add(1)));
    SuppressGuard {
        _not_send: PhantomData,
    }
}

impl Drop for SuppressGuard {
    fn drop(&mut self) {
        let _ = SUPPRESSED.try_with(|n| n.set(n.get().saturating_sub(1)));
    }
}
