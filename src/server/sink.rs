//! [`HubSink`]: the [`ProgressSink`] that publishes into a [`Hub`](crate::server::Hub).

use std::sync::Arc;

use crate::server::shared::{Input, Shared};
use crate::sink::{ProgressSink, SinkError};
use crate::wire::Envelope;

/// A [`ProgressSink`] that publishes into a [`Hub`](crate::server::Hub); get one with
/// [`Hub::sink`](crate::server::Hub::sink).
///
/// Publishing never waits and costs the same whatever the number of clients: the
/// envelope (a reference-counted event) goes into the hub's bounded queue, and the hub
/// task serializes it once and fans it out. When the queue is full the event is dropped,
/// counted in the hub's stats, and [`SinkError::Full`] is returned. It works from any
/// thread, with or without a tokio runtime.
///
/// [`flush`](ProgressSink::flush) blocks until the hub has handed everything published
/// before to the connections' queues; call it from a plain thread, not from async code.
#[derive(Clone)]
pub struct HubSink {
    shared: Arc<Shared>,
}

impl HubSink {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl std::fmt::Debug for HubSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSink")
            .field("epoch", &self.shared.epoch)
            .finish_non_exhaustive()
    }
}

impl ProgressSink for HubSink {
    #[inline]
    fn publish(&self, envelope: &Envelope) -> Result<(), SinkError> {
        self.shared.try_input(Input::Publish(envelope.clone()))
    }

    fn flush(&self) -> Result<(), SinkError> {
        self.shared.flush_input()
    }
}
