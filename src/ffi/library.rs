//! Library-wide entry points: version, last error, status names.

use std::ffi::c_char;

use super::boundary::{call_value, last_error};
use super::status::rf_status;

/// The version of the C ABI this header describes: the N of the library's soname
/// `librocmforge.so.N` (build.rs reads it from this line); `rf_abi_version()` gives the
/// loaded library's. N goes up only when a program built against the previous header
/// could break (a function removed or changed, a field moved, a constant's value
/// changed); additions keep it.
pub const RF_ABI_VERSION: u32 = 1;

/// "MAJOR.MINOR.PATCH" of the library.
#[unsafe(no_mangle)]
pub extern "C" fn rf_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn rf_abi_version() -> u32 {
    RF_ABI_VERSION
}

/// The last failure's message on the calling thread, naming what failed (tensor, key,
/// offset, call). Never NULL: empty when nothing failed. Valid until the next failing
/// `rf_` call on this thread. Called from a thread-exit destructor, once the thread's
/// own storage is gone, it says that no message is kept.
#[unsafe(no_mangle)]
pub extern "C" fn rf_last_error() -> *const c_char {
    last_error()
}

/// The name of a status code (`"RF_ERR_IO"`), or `"RF_UNKNOWN_STATUS"`.
#[unsafe(no_mangle)]
pub extern "C" fn rf_status_name(status: i32) -> *const c_char {
    call_value(c"RF_UNKNOWN_STATUS".as_ptr(), || {
        rf_status::from_code(status)
            .map_or(c"RF_UNKNOWN_STATUS", rf_status::name)
            .as_ptr()
    })
}
