//! The panic boundary and the thread-local last-error message: every `extern "C"` body
//! runs inside [`call`], so no panic crosses into C and every failure leaves a message.

use std::cell::RefCell;
use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, TryLockError};

use super::status::rf_status;
use crate::error::Error;
use crate::quiet_panics;

/// Why an entry point failed: the status it returns and the message `rf_last_error`
/// gives.
pub struct Failure {
    pub status: rf_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: rf_status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A NULL where a pointer is required.
    pub fn null(argument: &str) -> Failure {
        Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!("{argument} is NULL"),
        )
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(rf_status::from(&e), e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// What `rf_last_error` gives on a thread whose thread-locals are already destroyed: a
/// host may call in from its own thread-exit destructors (a `pthread_key_create`
/// destructor runs after the Rust ones), where the thread's message cannot be kept.
const MESSAGE_LOST: &std::ffi::CStr = c"no message is kept on a thread that is exiting";

pub fn set_last_error(message: &str) {
    // An interior NUL would end the C string early; show it instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // After the thread-local is destroyed the message is dropped: `rf_last_error` then
    // says so.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = text);
}

/// The calling thread's last failure message; valid until its next `rf_` call fails.
pub fn last_error() -> *const std::ffi::c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(MESSAGE_LOST.as_ptr())
}

/// Runs an entry point's body: panics become `RF_ERR_PANIC`, errors their status, and
/// both set the last-error message. The library never prints: a panic caught here is
/// reported through the status and `rf_last_error`, so the thread is quiet
/// (`quiet_panics`) while the body runs.
pub fn call(body: impl FnOnce() -> Result<(), Failure>) -> rf_status {
    // A host callback may call in again from inside a call: that nested call must leave
    // the outer one quiet when it returns, not clear the mark.
    let outer = quiet_panics::set_quiet(true);
    let outcome = catch_unwind(AssertUnwindSafe(body));
    quiet_panics::set_quiet(outer);
    match outcome {
        Ok(Ok(())) => rf_status::RF_OK,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            // The message names the panic, not where the hook saw it raised.
            quiet_panics::take_panic_location();
            let what = quiet_panics::payload_text(payload.as_ref())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (panic): {what}"));
            rf_status::RF_ERR_PANIC
        }
    }
}

/// Runs a `*_free` function's release: a panic there (none is known) stops the release,
/// leaking what is left of the object, and sets the last-error message, rather than
/// crossing the boundary (which aborts the host).
pub fn free_quietly(release: impl FnOnce()) {
    let _ = call(|| {
        release();
        Ok(())
    });
}

/// Runs an entry point that returns a plain value instead of a status: a panic gives
/// `fallback` and sets the last-error message.
pub fn call_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    let mut value = None;
    let status = call(|| {
        value = Some(body());
        Ok(())
    });
    match (status, value) {
        (rf_status::RF_OK, Some(v)) => v,
        _ => fallback,
    }
}

/// Exclusive use of a handle's state for one call: `RF_ERR_BUSY` while another call has
/// it (on another thread, or the call whose callback this thread is running),
/// `RF_ERR_PANIC` for good once a panic left it half-changed.
pub fn exclusive<'a, T>(state: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>, Failure> {
    state.try_lock().map_err(|e| match e {
        TryLockError::WouldBlock => Failure::new(
            rf_status::RF_ERR_BUSY,
            format!(
                "this {what} is in use by another call (on another thread, or the one whose \
                 callback is running)"
            ),
        ),
        TryLockError::Poisoned(_) => Failure::new(
            rf_status::RF_ERR_PANIC,
            format!("this {what} is unusable after an internal error; free it"),
        ),
    })
}
