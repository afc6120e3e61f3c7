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

/// The names of a `(buf, cap, out_len)` triple's buffer and length arguments, as the
/// function's header spells them (for error messages).
pub const BUF_AND_LEN: [&str; 2] = ["buf", "out_len"];

/// Copies `data` into the caller's `(buf, cap)` and its length into `*out_len`, the two
/// arguments called `names`. When `cap` is too small, only `*out_len` is written (the
/// size needed) and the call fails with `RF_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// A non-NULL `buf` must have `cap` writable bytes; a non-NULL `out_len` must be writable.
pub unsafe fn write_bytes<T: Copy>(
    data: &[T],
    buf: *mut T,
    cap: usize,
    out_len: *mut usize,
    names: [&str; 2],
) -> Result<(), Failure> {
    let [buf_name, len_name] = names;
    // SAFETY: forwarded contract.
    let out_len = unsafe { out(out_len, len_name) }?;
    // Only a zero-length buffer may be NULL.
    if buf.is_null() && cap > 0 {
        return Err(Failure::null(buf_name));
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

/// A `#[repr(C)]` struct that begins with `uint32_t struct_size`, which an older host
/// passes smaller. The size it gives must end on a field boundary: a size inside a field
/// would tear that field (half a pointer, the low bytes of a count).
pub trait Versioned: Copy {
    /// `(offset, size)` of every field, in order.
    fn field_spans() -> &'static [(usize, usize)];

    /// Whether `size` bytes hold only whole fields.
    fn ends_on_field_boundary(size: usize) -> bool {
        Self::field_spans()
            .iter()
            .all(|&(offset, len)| size <= offset || offset + len <= size)
    }
}

/// `size_of` a field, named by a projection so that no value of the struct is needed.
pub const fn field_size<T, F>(_project: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Implements [`Versioned`] for a struct from the list of all its fields, in order.
macro_rules! versioned_struct {
    ($t:ty { $($field:ident),+ $(,)? }) => {
        impl $crate::ffi::args::Versioned for $t {
            fn field_spans() -> &'static [(usize, usize)] {
                const SPANS: &[(usize, usize)] = &[$((
                    ::std::mem::offset_of!($t, $field),
                    $crate::ffi::args::field_size(|s: &$t| &s.$field),
                )),+];
                SPANS
            }
        }
    };
}
pub(crate) use versioned_struct;

/// The `struct_size` a host gave, checked: at least the size field itself, and no field
/// cut in two.
fn checked_struct_size<T: Versioned>(size: u32, name: &str) -> Result<usize, Failure> {
    let size = size as usize;
    if size < size_of::<u32>() || (size < size_of::<T>() && !T::ends_on_field_boundary(size)) {
        return Err(Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!(
                "{name}.struct_size is {size}, which is not the size of any version of the \
                 struct (it ends inside a field); set it to sizeof or use rf_*_default_params()"
            ),
        ));
    }
    Ok(size)
}

/// A parameter struct that begins with `uint32_t struct_size`. A host built against an
/// older header passes a smaller struct: the fields it knows are read, the rest keep
/// `defaults`. NULL means all defaults.
///
/// # Safety
/// A non-NULL `ptr` must point to at least `struct_size` readable bytes laid out as the
/// prefix of `T` (whose first field is the `u32` size), with valid values in them.
pub unsafe fn versioned<T: Versioned>(
    ptr: *const T,
    defaults: T,
    name: &str,
) -> Result<T, Failure> {
    if ptr.is_null() {
        return Ok(defaults);
    }
    // SAFETY: every such struct starts with its u32 size, readable by the contract.
    let size = checked_struct_size::<T>(unsafe { ptr.cast::<u32>().read_unaligned() }, name)?;
    let mut params = defaults;
    let known = size.min(size_of::<T>());
    // SAFETY: `known` bytes are readable at `ptr` and writable in `params`; `known` ends
    // on a field boundary (checked above), so each copied field is whole.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut params).cast::<u8>(), known);
    }
    Ok(params)
}

/// Text into the caller's `(buf, cap)` and its length in bytes into `*out_len`, as
/// [`write_bytes`] writes them (no NUL is added).
///
/// # Safety
/// As [`write_bytes`].
pub unsafe fn write_text(
    text: &[u8],
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    // SAFETY: forwarded contract.
    unsafe { write_bytes(text, buf.cast::<u8>(), cap, out_len, BUF_AND_LEN) }
}

/// The out-pointer of a result struct that begins with `uint32_t struct_size` (set by
/// the caller), checked before the call does its work: not NULL, and the size of some
/// version of the struct. It stays a pointer, never a `&mut T`: a host built against an
/// older header passes a smaller struct, which a reference would overrun.
///
/// # Safety
/// A non-NULL `ptr` must point to at least `(*ptr).struct_size` writable bytes.
pub unsafe fn versioned_out<T: Versioned>(ptr: *mut T, name: &str) -> Result<*mut T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: the struct's first field is its u32 size, readable by the contract.
    checked_struct_size::<T>(unsafe { ptr.cast::<u32>().read_unaligned() }, name)?;
    Ok(ptr)
}

/// Writes `value` into a result struct checked by [`versioned_out`]: only the fields an
/// older caller's struct has room for, and its `struct_size` stays the caller's.
///
/// # Safety
/// `ptr` must point to at least `(*ptr).struct_size` writable bytes.
pub unsafe fn write_versioned<T: Versioned>(
    ptr: *mut T,
    value: T,
    name: &str,
) -> Result<(), Failure> {
    // SAFETY: the struct's first field is its u32 size, readable by the contract.
    let size = checked_struct_size::<T>(unsafe { ptr.cast::<u32>().read_unaligned() }, name)?;
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

#[cfg(test)]
mod tests {
    use super::Versioned;
    use crate::ffi::{
        rf_context_params, rf_device_description, rf_generate_params, rf_memory_report,
        rf_model_description, rf_model_params, rf_sampler_params,
    };

    /// The listed fields are all of the struct's: in order, not overlapping, and the last
    /// one ends where the struct does (up to its alignment padding).
    fn assert_lists_every_field<T: Versioned>() {
        let spans = T::field_spans();
        assert_eq!(spans[0], (0, 4), "struct_size comes first");
        for pair in spans.windows(2) {
            assert!(
                pair[0].0 + pair[0].1 <= pair[1].0,
                "fields out of order: {spans:?}"
            );
        }
        let (offset, len) = spans[spans.len() - 1];
        assert_eq!(
            (offset + len).next_multiple_of(align_of::<T>()),
            size_of::<T>()
        );
    }

    #[test]
    fn every_versioned_struct_lists_all_its_fields() {
        assert_lists_every_field::<rf_model_params>();
        assert_lists_every_field::<rf_model_description>();
        assert_lists_every_field::<rf_context_params>();
        assert_lists_every_field::<rf_memory_report>();
        assert_lists_every_field::<rf_sampler_params>();
        assert_lists_every_field::<rf_generate_params>();
        assert_lists_every_field::<rf_device_description>();
    }

    #[test]
    fn sizes_inside_a_field_are_torn_and_sizes_between_fields_are_not() {
        // rf_model_params: the progress callback pointer spans bytes 16..24.
        assert!(!rf_model_params::ends_on_field_boundary(20));
        assert!(rf_model_params::ends_on_field_boundary(16));
        assert!(rf_model_params::ends_on_field_boundary(24));
        // rf_context_params: n_ctx spans bytes 4..8.
        assert!(!rf_context_params::ends_on_field_boundary(6));
        assert!(rf_context_params::ends_on_field_boundary(8));
    }
}
