//! Log messages go to the host's callback, never to stdout or stderr.

use std::ffi::{c_char, c_void};

pub const RF_LOG_DEBUG: u32 = 0;
pub const RF_LOG_INFO: u32 = 1;
pub const RF_LOG_WARN: u32 = 2;
pub const RF_LOG_ERROR: u32 = 3;
/// As a minimum level: deliver nothing.
pub const RF_LOG_NONE: u32 = 4;

/// Receives a message of `len` bytes (not NUL-terminated) at a level `RF_LOG_*`.
pub type rf_log_callback = Option<
    unsafe extern "C" fn(level: u32, msg: *const c_char, len: usize, user_data: *mut c_void),
>;

/// A host's log callback with its user data and the lowest level it wants.
#[derive(Clone, Copy)]
pub struct Logger {
    callback: rf_log_callback,
    user_data: *mut c_void,
    min_level: u32,
}

// SAFETY: the callback and its user data belong to the host, which is told (in the
// header) that the callback may be called from any thread that uses the model.
unsafe impl Send for Logger {}
// SAFETY: as above; the logger itself is never mutated.
unsafe impl Sync for Logger {}

impl Logger {
    pub fn new(callback: rf_log_callback, user_data: *mut c_void, min_level: u32) -> Logger {
        Logger {
            callback,
            user_data,
            min_level,
        }
    }

    pub fn log(&self, level: u32, message: &str) {
        if let Some(callback) = self.callback.filter(|_| level >= self.min_level) {
            // SAFETY: the host gave this callback for exactly this use; the message
            // pointer is valid for `len` bytes during the call.
            unsafe {
                callback(
                    level,
                    message.as_ptr().cast(),
                    message.len(),
                    self.user_data,
                )
            };
        }
    }
}
