//! Host allocations sized by a caller's parameter or a file's declaration. They are made
//! fallibly, so asking for more than the machine has is an `OutOfMemory` error naming what
//! was being made and the bytes it needed, never an abort of the host process.
//!
//! With the test-only `fault-injection` feature, [`fault_injection`] makes a chosen one of
//! these allocations fail (or of the other acquisitions that can fail for want of
//! resources: device allocations and worker threads), so tests can prove every caller
//! handles the failure.

use crate::error::{Error, Result};
use std::collections::{BinaryHeap, TryReserveError};

/// A vector of `len` copies of `value`.
pub fn filled_vec<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// Room for `additional` more elements in `v`.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    let spare = v.capacity() - v.len();
    grow::<T>(spare, additional, what, || v.try_reserve_exact(additional))
}

/// Pushes `item` onto `heap`, growing it fallibly to twice its length when it is full, so
/// that pushes one at a time stay amortised O(log n).
pub fn push_heap<T: Ord>(heap: &mut BinaryHeap<T>, item: T, what: &str) -> Result<()> {
    let spare = heap.capacity() - heap.len();
    if spare == 0 {
        let additional = heap.len().max(4);
        grow::<T>(spare, additional, what, || {
            heap.try_reserve_exact(additional)
        })?;
    }
    heap.push(item);
    Ok(())
}

/// Room for `additional` more bytes in `s`.
pub fn reserve_text(s: &mut String, additional: usize, what: &str) -> Result<()> {
    let spare = s.capacity() - s.len();
    grow::<u8>(spare, additional, what, || s.try_reserve_exact(additional))
}

/// Room for `additional` more elements of `T` in a collection with `spare` room left,
/// made by `try_reserve`: an `OutOfMemory` error naming `what` and the bytes on failure.
/// Every fallible host allocation comes here, so fault injection fails one where it
/// must grow (`spare` is read only there).
#[cfg_attr(not(feature = "fault-injection"), allow(unused_variables))]
fn grow<T>(
    spare: usize,
    additional: usize,
    what: &str,
    try_reserve: impl FnOnce() -> std::result::Result<(), TryReserveError>,
) -> Result<()> {
    let out_of_memory = || {
        let bytes = (additional as u128) * (size_of::<T>() as u128);
        Error::OutOfMemory(format!("{what} needs {bytes} bytes"))
    };
    #[cfg(feature = "fault-injection")]
    if spare < additional && fault_injection::this_one_fails() {
        return Err(out_of_memory());
    }
    try_reserve().map_err(|_| out_of_memory())
}

/// Appends `c` to `s`, growing it fallibly to twice its length when it is full, so that
/// appends one at a time stay amortised O(1).
pub fn push_char(s: &mut String, c: char, what: &str) -> Result<()> {
    if s.capacity() - s.len() < c.len_utf8() {
        reserve_text(s, s.len().max(c.len_utf8()), what)?;
    }
    s.push(c);
    Ok(())
}

/// `len` elements in `v`, new ones set to `value`, growing fallibly.
pub fn resize<T: Clone>(v: &mut Vec<T>, len: usize, value: T, what: &str) -> Result<()> {
    if len > v.len() {
        reserve(v, len - v.len(), what)?;
    }
    v.resize(len, value);
    Ok(())
}

/// Test-only: counts the fallible acquisitions made by any thread, and fails the k-th:
/// host allocations ([`reserve`], [`reserve_text`] and [`push_heap`] calls that must grow
/// their vector, string or heap, [`filled_vec`], [`resize`] and [`push_char`] included),
/// device allocations (`Device::alloc`) and CPU worker threads.
#[cfg(feature = "fault-injection")]
pub mod fault_injection {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Acquisitions counted since [`fail_at`].
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    /// The acquisition to fail (1 is the first after [`fail_at`]); 0 fails none.
    static FAIL_AT: AtomicUsize = AtomicUsize::new(0);

    /// Starts counting again from 0 and fails acquisition `k` (1-based) from now; 0
    /// fails none and only counts.
    pub fn fail_at(k: usize) {
        FAIL_AT.store(0, Ordering::SeqCst);
        COUNT.store(0, Ordering::SeqCst);
        FAIL_AT.store(k, Ordering::SeqCst);
    }

    /// Fallible acquisitions asked for since [`fail_at`], the failed one included.
    pub fn count() -> usize {
        COUNT.load(Ordering::SeqCst)
    }

    /// Counts an acquisition; whether it is the one to fail.
    pub(crate) fn this_one_fails() -> bool {
        let index = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        index == FAIL_AT.load(Ordering::SeqCst)
    }
}
