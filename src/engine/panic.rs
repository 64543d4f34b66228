//! Panics of an engine, caught with their message and location.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::engine::RunError;

/// A caught panic: its message and, when the hook saw it, its location.
pub(super) struct CaughtPanic {
    message: String,
    location: Option<String>,
}

impl CaughtPanic {
    pub(super) fn into_run_error<E: std::error::Error + 'static>(self) -> RunError<E> {
        RunError::Panicked {
            message: self.message,
            location: self
                .location
                .unwrap_or_else(|| "unknown location".to_owned()),
        }
    }
}

thread_local! {
    /// How many wrapped runs are active on this thread (runs may nest).
    static CAPTURE_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The location of the last panic on this thread while capturing.
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL_HOOK: Once = Once::new();

/// Installs, once, a panic hook that records the location of panics in wrapped runs
/// and then calls the hook that was set before.
fn install_panic_hook() {
    INSTALL_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let capturing = CAPTURE_DEPTH.try_with(Cell::get).unwrap_or(0) > 0;
            if capturing {
                if let Some(location) = info.location() {
                    let text = format!(
                        "{}:{}:{}",
                        location.file(),
                        location.line(),
                        location.column()
                    );
                    let _ = LAST_PANIC_LOCATION.try_with(|slot| {
                        if let Ok(mut slot) = slot.try_borrow_mut() {
                            *slot = Some(text);
                        }
                    });
                }
            }
            previous(info);
        }));
    });
}

/// Runs `f`, catching a panic with its message and location.
pub(super) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    install_panic_hook();
    CAPTURE_DEPTH.with(|depth| depth.set(depth.get() + 1));
    LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURE_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    result.map_err(|payload| CaughtPanic {
        message: panic_message(payload.as_ref()),
        location: LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take()),
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
