//! Panics the library catches on threads of its own (the CPU pool's workers, a grammar's
//! mask thread) and reports to its caller: the process's panic hook must not print them,
//! since the library never prints. One hook, installed once in front of the one already
//! there, prints nothing on threads marked as the library's and notes where the panic was
//! raised; on every other thread it calls the previous hook. A hook the host installs
//! later replaces it, and then sees these panics too.

use std::cell::{Cell, RefCell};
use std::panic;
use std::sync::Once;

thread_local! {
    /// Set on the library's own threads, whose panics are always caught.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the panic being caught on this thread was raised, noted by the hook.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Marks the calling thread, for the rest of its life, as one whose panics the library
/// catches and reports itself.
pub fn quiet_this_thread() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info.location().map(ToString::to_string);
                PANIC_AT.with(|slot| *slot.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
    QUIET.with(|quiet| quiet.set(true));
}

/// Where the last panic on this (quiet) thread was raised, if the hook saw it.
pub fn take_panic_location() -> Option<String> {
    PANIC_AT.with(RefCell::take)
}
