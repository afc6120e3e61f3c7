//! Host allocations sized by a caller's parameter or a file's declaration. They are made
//! fallibly, so asking for more than the machine has is an `OutOfMemory` error naming what
//! was being made and the bytes it needed, never an abort of the host process.

use crate::error::{Error, Result};

/// A vector of `len` copies of `value`.
pub fn filled_vec<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// Room for `additional` more elements in `v`.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    v.try_reserve_exact(additional).map_err(|_| {
        let bytes = (additional as u128) * (size_of::<T>() as u128);
        Error::OutOfMemory(format!("{what} needs {bytes} bytes"))
    })
}

/// `len` elements in `v`, new ones set to `value`, growing fallibly.
pub fn resize<T: Clone>(v: &mut Vec<T>, len: usize, value: T, what: &str) -> Result<()> {
    if len > v.len() {
        reserve(v, len - v.len(), what)?;
    }
    v.resize(len, value);
    Ok(())
}
