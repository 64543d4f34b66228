//! [`BackgroundServer`]: the standalone server on its own thread, for programs that do
//! not use tokio themselves (a plain synchronous backtest).

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::server::config::ServerConfig;
use crate::server::error::ServerError;
use crate::server::hub::Hub;
use crate::server::listener::Server;
use crate::server::sink::HubSink;

/// A [`Server`] running on a thread of its own (with its own single-threaded tokio
/// runtime) until [`shutdown`](Self::shutdown) or drop.
///
/// ```
/// use backtest_stream::server::{BackgroundServer, ServerConfig};
/// use backtest_stream::streamer::{ProgressStreamer, RunInfo};
///
/// let server = BackgroundServer::start(ServerConfig::default().bind(([127, 0, 0, 1], 0)))?;
/// println!("ws://{}/ws", server.local_addr());
/// let run = ProgressStreamer::new(server.sink()).start(RunInfo::default(), 100);
/// run.complete(Default::default());
/// server.shutdown()?;
/// # Ok::<(), backtest_stream::server::ServerError>(())
/// ```
#[derive(Debug)]
pub struct BackgroundServer {
    hub: Hub,
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl BackgroundServer {
    /// Binds `config.bind` and starts serving on a new thread.
    pub fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("backtest-stream-server".into())
            .spawn(move || -> Result<(), ServerError> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let server = match Server::bind(config).await {
                        Ok(server) => server,
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return Ok(());
                        }
                    };
                    let _ = ready_tx.send(Ok((server.local_addr(), server.hub().clone())));
                    server
                        .run_until(async {
                            let _ = stopped.await;
                        })
                        .await
                })
            })?;
        match ready_rx.recv() {
            Ok(Ok((local_addr, hub))) => Ok(Self {
                hub,
                local_addr,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => match thread.join() {
                Ok(Err(error)) => Err(error),
                _ => Err(ServerError::Io(std::io::Error::other(
                    "the server thread ended before it started",
                ))),
            },
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A sink publishing into the hub.
    pub fn sink(&self) -> HubSink {
        self.hub.sink()
    }

    /// Shuts down gracefully (see [`Server::run_until`]) and waits for the thread.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ServerError::Io(std::io::Error::other(
                "the server thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
