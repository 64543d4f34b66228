//! [`ServerError`]: what can fail when starting or running the server.

/// Why the hub or its server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The hub must be created inside a tokio runtime.
    #[error("the hub needs a tokio runtime: create it inside one (or use Hub::with_runtime)")]
    NoRuntime,
    /// Binding the listening socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading the bound address or accepting failed.
    #[error("listener I/O failed: {0}")]
    Io(#[from] std::io::Error),
}
