//! Panics the library catches and reports itself, on threads of its own (the CPU pool's
//! workers, a grammar's mask thread) and on a host's thread inside a C call: the process's
//! panic hook must not print them, since the library never prints. One hook, installed
//! once in front of the one already there, prints nothing on a thread marked quiet and
//! notes where the panic was raised; on every other thread it calls the previous hook. A
//! hook the host installs later replaces it, and then sees these panics too.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic;
use std::sync::Once;

thread_local! {
    /// Set on the library's own threads, and on a host's thread while a C call runs.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the panic being caught on this thread was raised, noted by the hook.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Marks the calling thread, for the rest of its life, as one whose panics the library
/// catches and reports itself.
pub fn quiet_this_thread() {
    set_quiet(true);
}

/// Marks the calling thread quiet or not until the next call; returns what it was (for a
/// C call to put back when it returns: a host callback may call in again from inside one).
pub fn set_quiet(quiet: bool) -> bool {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info.location().map(ToString::to_string);
                // Gone on a thread that is exiting (a host's thread-exit destructor
                // calling in): the location is then not reported.
                let _ = PANIC_AT.try_with(|slot| *slot.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
    QUIET.with(|flag| flag.replace(quiet))
}

/// Where the last panic on this (quiet) thread was raised, if the hook saw it.
pub fn take_panic_location() -> Option<String> {
    PANIC_AT.try_with(RefCell::take).ok().flatten()
}

/// The text of a caught panic's payload, when it is text (`panic!` gives a `&str` or a
/// `String`).
pub fn payload_text(payload: &(dyn Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}
