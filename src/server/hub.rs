//! The [`Hub`] handle (the original's `ConnectionManager`): what publishers, connections
//! and the application hold.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use crate::server::config::ServerConfig;
use crate::server::error::ServerError;
use crate::server::shared::{Command, Input, Shared};
use crate::server::sink::HubSink;
use crate::server::stats::ServerStats;
use crate::server::task::HubTask;
use crate::sink::SinkError;
use crate::wire::Envelope;

/// The broadcast hub: give it events through [`Hub::publish`] or a [`HubSink`], and
/// connections through the [`Server`](crate::server::Server), [`Hub::accept`],
/// [`Hub::upgrade`] (feature `hyper`) or [`Hub::serve`].
///
/// Publishers hand envelopes to a bounded queue; one hub task numbers each event per
/// topic, serializes it once into a shared frame, keeps it in the topic's history and
/// pushes the frame into the bounded queue of every subscribed connection. Subscribing
/// (with its replay and snapshot) runs on the same task between two events, so the
/// switch from replay to live delivery can neither skip nor repeat an event.
///
/// A hub is a cheap handle (clone it freely). It must be created inside a tokio runtime,
/// where it spawns its task.
///
/// ```
/// use backtest_stream::server::{Hub, ServerConfig};
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::new(ServerConfig::default())?;
/// let run = ProgressStreamer::new(hub.sink()).start(RunInfo::default(), 10);
/// run.complete(Default::default());
/// hub.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    pub(crate) shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    /// Where the hub's task runs, the connections it upgrades itself, and a gateway's
    /// follower.
    #[cfg(any(feature = "hyper", feature = "redis"))]
    pub(crate) runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.shared.epoch)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Creates a hub and spawns its task on the current tokio runtime.
    pub fn new(config: ServerConfig) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ServerError::NoRuntime)?;
        Ok(Self::with_runtime(config, &runtime))
    }

    /// Creates a hub and spawns its task on the given runtime (so that it can be
    /// created from a plain thread).
    pub fn with_runtime(config: ServerConfig, runtime: &tokio::runtime::Handle) -> Self {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(config));
        let task = HubTask::new(Arc::clone(&shared));
        let inbox_owner = Arc::clone(&shared);
        runtime.spawn(async move {
            task.run(commands_rx).await;
            // Every hub handle is gone: sinks that outlive it get `SinkError::Closed`.
            inbox_owner.inbox.close();
        });
        Self {
            shared,
            commands,
            #[cfg(any(feature = "hyper", feature = "redis"))]
            runtime: runtime.clone(),
        }
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// This hub's epoch: a random string; sequence numbers of another epoch mean nothing
    /// here.
    pub fn epoch(&self) -> &str {
        &self.shared.epoch
    }

    /// A sink that publishes into this hub, usable from any thread.
    pub fn sink(&self) -> HubSink {
        HubSink::new(Arc::clone(&self.shared))
    }

    /// Publishes an event to the subscribers of its topic. Never waits: a full queue
    /// returns [`SinkError::Full`] (counted in the stats).
    pub fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        self.shared.try_input(Input::Publish(envelope.clone()))
    }

    /// Publishes an event to every connection, subscribed or not. It is numbered and
    /// kept in the history of its topic like any other.
    pub fn broadcast(&self, envelope: &Envelope) -> Result<(), SinkError> {
        self.shared.try_input(Input::Broadcast(envelope.clone()))
    }

    /// Connections, subscriptions, events and drops so far.
    pub fn stats(&self) -> ServerStats {
        let subscriptions = self
            .shared
            .subscriptions
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        self.shared.counters.snapshot(subscriptions)
    }

    /// Whether a graceful shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// Shuts down gracefully: delivers what was published before, closes every
    /// connection with 1001 once its queue is written, and waits until all are gone or
    /// [`ServerConfig::shutdown_timeout`] has passed. Publishing afterwards fails with
    /// [`SinkError::Closed`].
    pub async fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        let (done, done_rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown { done }).is_ok() {
            // The hub task ending also resolves this.
            let _ = done_rx.await;
        }
        let _ = tokio::time::timeout(
            self.shared.config.shutdown_timeout,
            self.wait_for_no_connections(),
        )
        .await;
    }

    /// Resolves when no connection is open.
    async fn wait_for_no_connections(&self) {
        loop {
            let notified = self.shared.no_connections.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.counters.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Hands a broker's input to the hub task without refusing it for lack of room:
    /// `Err` gives it back when the publish queue is full (the caller waits and offers
    /// it again: the broker keeps it meanwhile) or the hub shut down (`closed`).
    #[cfg(feature = "redis")]
    pub(crate) fn offer(&self, input: Input) -> Result<(), (Input, bool)> {
        use crate::server::inbox::Refused;
        match self.shared.inbox.push(input, false) {
            Ok(()) => Ok(()),
            Err(Refused::Full(input)) => Err((input, false)),
            Err(Refused::Closed(input)) => Err((input, true)),
        }
    }

    /// Sends a command to the hub task.
    pub(crate) fn command(&self, command: Command) {
        // The hub task ends only after a shutdown; commands after that have no effect.
        let _ = self.commands.send(command);
    }
}
