//! A host may call into the library from its own thread-exit destructors (a
//! `pthread_key_create` destructor, which glibc runs after the thread's Rust
//! thread-locals are destroyed), to free what the thread held or to log a failure. Such
//! a call must fail as any other does, with its status and a message, never abort the
//! process. A failure here aborts this test binary, so it holds one test.

use std::ffi::{CStr, c_void};
use std::ptr;
use std::sync::Mutex;

use rocmforge::ffi::*;

/// The status and message a call from the thread-exit destructor saw.
static SEEN_AT_EXIT: Mutex<Option<(rf_status, String)>> = Mutex::new(None);

unsafe extern "C" fn at_thread_exit(_value: *mut c_void) {
    // SAFETY: a NULL `count` is an argument error the call reports, not a write.
    let status = unsafe { rf_device_count(ptr::null_mut()) };
    // SAFETY: rf_last_error never returns NULL and the text lives until the next failing
    // call on this thread.
    let message = unsafe { CStr::from_ptr(rf_last_error()) }
        .to_string_lossy()
        .into_owned();
    if let Ok(mut seen) = SEEN_AT_EXIT.lock() {
        *seen = Some((status, message));
    }
}

#[test]
fn a_failing_call_from_a_thread_exit_destructor_reports_instead_of_aborting() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is writable; the destructor is a plain function of the right type.
    assert_eq!(
        unsafe { libc::pthread_key_create(&mut key, Some(at_thread_exit)) },
        0
    );
    std::thread::spawn(move || {
        // A failure first, so the thread's message slot exists and is destroyed before
        // the key's destructor runs.
        // SAFETY: as in the destructor.
        let status = unsafe { rf_device_count(ptr::null_mut()) };
        assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT);
        // SAFETY: `key` is live; a non-NULL value makes glibc run the destructor.
        assert_eq!(
            unsafe { libc::pthread_setspecific(key, ptr::dangling::<c_void>()) },
            0
        );
    })
    .join()
    .expect("the thread ran");
    let seen = SEEN_AT_EXIT.lock().expect("not poisoned").take();
    let (status, message) = seen.expect("the thread-exit destructor ran");
    assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT);
    assert_eq!(message, "no message is kept on a thread that is exiting");
}
