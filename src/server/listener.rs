//! [`Server`]: the standalone WebSocket server, listening on its own address.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::server::config::ServerConfig;
use crate::server::error::ServerError;
use crate::server::hub::Hub;

/// The standalone server: accepts TCP connections, upgrades requests for the configured
/// path (`/ws`) and serves them from its [`Hub`].
///
/// ```no_run
/// use backtest_stream::server::{Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::bind(ServerConfig::default().bind(([127, 0, 0, 1], 0))).await?;
/// println!("listening on ws://{}/ws", server.local_addr());
/// let sink = server.hub().sink(); // give this to the backtest
/// # drop(sink);
/// server.run_until(std::future::pending::<()>()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    hub: Hub,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    /// Creates a hub with `config` and binds `config.bind` (port 0 picks a free port;
    /// see [`local_addr`](Self::local_addr)).
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        let hub = Hub::new(config)?;
        Self::bind_hub(hub).await
    }

    /// Binds the address of `hub`'s configuration and serves that hub.
    pub async fn bind_hub(hub: Hub) -> Result<Self, ServerError> {
        let addr = hub.config().bind;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            hub,
            listener,
            local_addr,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The hub: publish through it, or hand its [`sink`](Hub::sink) to a backtest.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Serves connections until `shutdown` resolves, then shuts down gracefully: stops
    /// accepting, delivers what was published, closes every client with 1001, and
    /// returns within [`shutdown_timeout`](ServerConfig::shutdown_timeout)
    /// (connections still open then are cut).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server { hub, listener, .. } = self;
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let hub = hub.clone();
                        tasks.spawn(async move { handle(hub, stream, peer).await });
                    }
                    // Running out of file descriptors and the like: wait, then go on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
            }
        }
        drop(listener);
        hub.shutdown().await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Upgrades one TCP connection and serves it (see [`Hub::accept`]).
async fn handle(hub: Hub, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    hub.accept(stream, Some(peer)).await;
}
