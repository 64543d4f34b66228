//! How a wrapped run fails: [`RunError`], and [`error_chain`] for an error's sources.

/// Why a wrapped run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E: std::error::Error + 'static> {
    /// The engine returned an error.
    #[error("the backtest engine failed: {0}")]
    Engine(#[source] E),
    /// The engine panicked; the panic was caught.
    #[error("the backtest engine panicked at {location}: {message}")]
    Panicked {
        /// The panic message.
        message: String,
        /// Where it panicked (`file:line:column`), or `unknown location` when the panic
        /// hook could not record it.
        location: String,
    },
    /// The run was cancelled through its [`CancelToken`](crate::engine::CancelToken).
    #[error("the backtest was cancelled after {bars_processed} of {total_bars} bars")]
    Cancelled {
        /// The bar count the engine reported when it saw the cancellation (or the last
        /// one it reported, when it checked [`RunMonitor::is_cancelled`](crate::engine::RunMonitor::is_cancelled) itself).
        bars_processed: u64,
        /// Bars in the run.
        total_bars: u64,
    },
}

/// An error and its sources, one per line: `error\ncaused by: source\n...` (a cause
/// whose message the error before it already ends with is not repeated).
///
/// ```
/// use backtest_stream::engine::error_chain;
///
/// #[derive(Debug)]
/// struct LoadFailed(std::io::Error);
/// impl std::fmt::Display for LoadFailed {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("cannot load the strategy parameters")
///     }
/// }
/// impl std::error::Error for LoadFailed {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
/// }
///
/// let error = LoadFailed(std::io::Error::other("disk full"));
/// assert_eq!(error_chain(&error), "cannot load the strategy parameters\ncaused by: disk full");
/// ```
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's message in their own; skip the echo.
        if !text.ends_with(&cause_text) {
            text.push_str("\ncaused by: ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
