//! Reading arguments from C and writing results back: NULL checks, length-delimited
//! strings, caller buffers, and parameter structs that may come from an older header.

use std::ffi::{CString, c_char};

use super::boundary::Failure;
use super::status::rf_status;

/// `&T` from a pointer that must not be NULL.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid `T` for the returned lifetime.
pub unsafe fn reference<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: non-NULL pointers are valid by the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// `&mut T` from an out-pointer that must not be NULL.
///
/// # Safety
/// A non-NULL `ptr` must point to writable memory for a `T`, used by no one else.
pub unsafe fn out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: as above; the caller owns the memory.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// A byte string given as `(ptr, len)`; NULL is allowed when `len` is 0.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that stay unchanged for the
/// returned lifetime.
pub unsafe fn bytes<'a>(ptr: *const c_char, len: usize, name: &str) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded contract.
    unsafe { slice(ptr.cast::<u8>(), len, name) }
}

/// A slice given as `(ptr, len)`; NULL is allowed when `len` is 0.
///
/// # Safety
/// As [`bytes`].
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: `ptr` is non-NULL and points to `len` values by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// UTF-8 text given as `(ptr, len)`.
///
/// # Safety
/// As [`bytes`].
pub unsafe fn text<'a>(ptr: *const c_char, len: usize, name: &str) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract.
    let raw = unsafe { bytes(ptr, len, name) }?;
    std::str::from_utf8(raw).map_err(|e| {
        Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!(
                "{name} is not UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Copies `data` into the caller's `(buf, cap)` and its length into `*out_len`. When
/// `cap` is too small, only `*out_len` is written (the size needed) and the call fails
/// with `RF_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// A non-NULL `buf` must have `cap` writable bytes; a non-NULL `out_len` must be writable.
pub unsafe fn write_bytes<T: Copy>(
    data: &[T],
    buf: *mut T,
    cap: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    let out_len = unsafe { out(out_len, "out_len") }?;
    // Only a zero-length buffer may be NULL.
    if buf.is_null() && cap > 0 {
        return Err(Failure::null("buf"));
    }
    if data.len() > cap {
        *out_len = data.len();
        return Err(Failure::new(
            rf_status::RF_ERR_BUFFER_TOO_SMALL,
            format!(
                "the result needs {} elements, the buffer holds {cap}",
                data.len()
            ),
        ));
    }
    if !data.is_empty() {
        // SAFETY: `buf` has `cap >= data.len()` writable elements; the regions cannot
        // overlap since `data` is the library's own memory.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    }
    *out_len = data.len();
    Ok(())
}

/// A parameter struct that begins with `uint32_t struct_size`. A host built against an
/// older header passes a smaller struct: the fields it knows are read, the rest keep
/// `defaults`. NULL means all defaults.
///
/// # Safety
/// A non-NULL `ptr` must point to at least `struct_size` readable bytes laid out as the
/// prefix of `T` (whose first field is the `u32` size), with valid values in them.
pub unsafe fn versioned<T: Copy>(ptr: *const T, defaults: T, name: &str) -> Result<T, Failure> {
    if ptr.is_null() {
        return Ok(defaults);
    }
    // SAFETY: every such struct starts with its u32 size, readable by the contract.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    if size < size_of::<u32>() {
        return Err(Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!("{name}.struct_size is {size}; fill it with rf_*_default_params()"),
        ));
    }
    let mut params = defaults;
    let known = size.min(size_of::<T>());
    // SAFETY: `known` bytes are readable at `ptr` and writable in `params`; a prefix of a
    // `#[repr(C)]` struct ends on a field boundary, so each copied field is whole.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut params).cast::<u8>(), known);
    }
    Ok(params)
}

/// Writes a result struct that begins with `uint32_t struct_size` (set by the caller):
/// only the fields an older caller's struct has room for are written.
///
/// # Safety
/// `ptr` must point to at least `(*ptr).struct_size` writable bytes.
pub unsafe fn write_versioned<T: Copy>(ptr: *mut T, value: T) -> Result<(), Failure> {
    // SAFETY: the struct's first field is its u32 size, readable by the contract.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    if size < size_of::<u32>() {
        return Err(Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!("struct_size is {size}; set it to the struct's sizeof"),
        ));
    }
    let known = size.min(size_of::<T>());
    // SAFETY: `known` bytes are readable in `value` and writable at `ptr`; the size field
    // itself is rewritten with the caller's own value.
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), ptr.cast::<u8>(), known);
        ptr.cast::<u32>().write_unaligned(size as u32);
    }
    Ok(())
}

/// `s` as a C string for the host to read; an interior NUL, which C cannot hold, is
/// dropped.
pub fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}
