//! The vendor BLAS, loaded once per process, with one checked method per call: a status
//! becomes an [`Error`] naming the library, the call and the library's reading of the code.

use std::ffi::{CStr, c_char, c_void};
use std::sync::{Mutex, PoisonError};

use super::super::sys::blas::{
    self, BLAS_SUCCESS, BlasApi, BlasStatus, RawBlasHandle, StatusText, blas_name,
};
use super::super::sys::{DevicePtr, RawStream, Vendor};
use super::open_library;
use crate::error::{Error, Result};

/// An opened vendor BLAS. Lives for the rest of the process (a vendor library is never
/// closed; see `sys::library`), so handles may borrow it as `&'static`.
pub struct BlasLibrary {
    vendor: Vendor,
    path: String,
    api: BlasApi,
}

/// One loaded BLAS per vendor. Only successes are kept, so a process can retry after the
/// library is installed.
static LOADED: Mutex<[Option<&'static BlasLibrary>; 2]> = Mutex::new([None, None]);

/// `y = W · x` for a column-major BLAS, with W and x in f16 and y in f32: the one product
/// the prefill path asks for. `m`, `n`, `k` and the leading dimensions are in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawGemm {
    pub transpose_a: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    /// `[k, m]` column-major when transposed (`[m, k]` otherwise), f16.
    pub a: DevicePtr,
    pub lda: i32,
    /// `[k, n]` column-major, f16.
    pub b: DevicePtr,
    pub ldb: i32,
    /// `[m, n]` column-major, f32; overwritten.
    pub c: DevicePtr,
    pub ldc: i32,
}

impl BlasLibrary {
    /// `vendor`'s BLAS from the usual places (see [`blas::blas_candidates`]), loaded once
    /// per process.
    pub fn load(vendor: Vendor) -> Result<&'static BlasLibrary> {
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = vendor as usize;
        if let Some(library) = loaded[slot] {
            return Ok(library);
        }
        let roots: &[&str] = match vendor {
            Vendor::Cuda => &["CUDA_PATH"],
            Vendor::Hip => &["ROCM_PATH", "HIP_PATH"],
        };
        let roots: Vec<_> = roots.iter().filter_map(std::env::var_os).collect();
        let roots: Vec<_> = roots.iter().map(|r| r.as_os_str()).collect();
        let library = BlasLibrary::load_from(vendor, &blas::blas_candidates(vendor, &roots))?;
        loaded[slot] = Some(library);
        Ok(library)
    }

    /// The first of `candidates` that opens, as `vendor`'s BLAS. Not cached: tests use it
    /// to point at libraries that are missing or are not a BLAS.
    pub fn load_from(vendor: Vendor, candidates: &[String]) -> Result<&'static BlasLibrary> {
        let (path, api) = open_library(blas_name(vendor), candidates, Error::Device, |library| {
            // SAFETY: the library was found under the vendor's BLAS name, so its symbols
            // have the signatures the table declares; `open_library` keeps it loaded.
            unsafe { BlasApi::load(library, vendor) }
        })?;
        Ok(Box::leak(Box::new(BlasLibrary { vendor, path, api })))
    }

    /// The library name or path that was opened.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// A new handle on the current device.
    ///
    /// # Safety
    /// A device must be current on this thread; destroy the handle once with
    /// [`BlasLibrary::destroy_handle`] while that device is current.
    pub unsafe fn create_handle(&self) -> Result<RawBlasHandle> {
        let mut handle: RawBlasHandle = std::ptr::null_mut();
        let (call, status) = match &self.api {
            // SAFETY: writes one handle to a valid local; the caller made a device current.
            BlasApi::Cublas(api) => ("cublasCreate_v2", unsafe { (api.create)(&mut handle) }),
            // SAFETY: as above.
            BlasApi::Rocblas(api) => ("rocblas_create_handle", unsafe {
                (api.create)(&mut handle)
            }),
        };
        self.check(call, status)?;
        Ok(handle)
    }

    /// # Safety
    /// `handle` came from [`BlasLibrary::create_handle`] on the current device and is not
    /// used again.
    pub unsafe fn destroy_handle(&self, handle: RawBlasHandle) -> Result<()> {
        let (call, status) = match &self.api {
            // SAFETY: forwarded from the caller.
            BlasApi::Cublas(api) => ("cublasDestroy_v2", unsafe { (api.destroy)(handle) }),
            // SAFETY: forwarded from the caller.
            BlasApi::Rocblas(api) => ("rocblas_destroy_handle", unsafe { (api.destroy)(handle) }),
        };
        self.check(call, status)
    }

    /// Makes the handle queue its work on `stream`.
    ///
    /// # Safety
    /// `handle` is live; `stream` is a live stream of the handle's device and outlives
    /// every later call through the handle.
    pub unsafe fn set_stream(&self, handle: RawBlasHandle, stream: RawStream) -> Result<()> {
        let (call, status) = match &self.api {
            // SAFETY: forwarded from the caller.
            BlasApi::Cublas(api) => ("cublasSetStream_v2", unsafe {
                (api.set_stream)(handle, stream)
            }),
            // SAFETY: forwarded from the caller.
            BlasApi::Rocblas(api) => ("rocblas_set_stream", unsafe {
                (api.set_stream)(handle, stream)
            }),
        };
        self.check(call, status)
    }

    /// Queues `c = op(a) · b` (f16 inputs, f32 accumulation and output) on the handle's
    /// stream; returns without waiting.
    ///
    /// # Safety
    /// `handle` is live and its device current; `a`, `b` and `c` hold the matrices
    /// `gemm` describes (leading dimensions included) on that device and stay allocated
    /// until the stream has run the product.
    pub unsafe fn gemm_f16_f32(&self, handle: RawBlasHandle, gemm: &RawGemm) -> Result<()> {
        // Host scalars: neither library's pointer mode is ever changed from "host".
        let (alpha, beta) = (1.0f32, 0.0f32);
        let alpha = std::ptr::from_ref(&alpha).cast::<c_void>();
        let beta = std::ptr::from_ref(&beta).cast::<c_void>();
        let ptr = |p: DevicePtr| p as *mut c_void;
        let RawGemm {
            transpose_a,
            m,
            n,
            k,
            lda,
            ldb,
            ldc,
            ..
        } = *gemm;
        let (call, status) = match &self.api {
            BlasApi::Cublas(api) => {
                use blas::cublas::*;
                let op_a = if transpose_a { OP_T } else { OP_N };
                // SAFETY: the caller guarantees the handle and the matrices; alpha and
                // beta point to f32 locals, the scale type of COMPUTE_32F.
                let status = unsafe {
                    (api.gemm_ex)(
                        handle,
                        op_a,
                        OP_N,
                        m,
                        n,
                        k,
                        alpha,
                        ptr(gemm.a),
                        R_16F,
                        lda,
                        ptr(gemm.b),
                        R_16F,
                        ldb,
                        beta,
                        ptr(gemm.c),
                        R_32F,
                        ldc,
                        COMPUTE_32F,
                        GEMM_DEFAULT,
                    )
                };
                ("cublasGemmEx", status)
            }
            BlasApi::Rocblas(api) => {
                use blas::rocblas::*;
                let op_a = if transpose_a { OP_T } else { OP_N };
                // SAFETY: as above; C and D are the same matrix (allowed when ldc == ldd,
                // and beta is 0, so C is never read); f32 is the compute and scale type.
                let status = unsafe {
                    (api.gemm_ex)(
                        handle,
                        op_a,
                        OP_N,
                        m,
                        n,
                        k,
                        alpha,
                        ptr(gemm.a),
                        R_16F,
                        lda,
                        ptr(gemm.b),
                        R_16F,
                        ldb,
                        beta,
                        ptr(gemm.c),
                        R_32F,
                        ldc,
                        ptr(gemm.c),
                        R_32F,
                        ldc,
                        R_32F,
                        GEMM_ALGO_STANDARD,
                        0,
                        0,
                    )
                };
                ("rocblas_gemm_ex", status)
            }
        };
        self.check(call, status)
    }

    /// Turns a status into a result naming the library, the call and the code.
    fn check(&self, call: &'static str, status: BlasStatus) -> Result<()> {
        if status == BLAS_SUCCESS {
            return Ok(());
        }
        let (name, description, out_of_memory) = match &self.api {
            BlasApi::Cublas(api) => (
                text(api.status_name, status),
                text(api.status_string, status),
                status == blas::cublas::STATUS_ALLOC_FAILED,
            ),
            BlasApi::Rocblas(api) => (
                text(api.status_name, status),
                None,
                status == blas::rocblas::STATUS_MEMORY_ERROR,
            ),
        };
        let mut message = format!(
            "{}: {call} failed with {} ({status})",
            blas_name(self.vendor),
            name.as_deref().unwrap_or("an unknown status")
        );
        if let Some(description) = description.filter(|d| Some(d) != name.as_ref()) {
            message.push_str(": ");
            message.push_str(&description);
        }
        Err(if out_of_memory {
            Error::DeviceOutOfMemory(message)
        } else {
            Error::Device(message)
        })
    }
}

/// What the library's status-text function says of `status`, if it has one.
fn text(function: Option<StatusText>, status: BlasStatus) -> Option<String> {
    // SAFETY: both libraries' functions take any status and return NULL or a pointer to
    // a static NUL-terminated string, never freed.
    let ptr: *const c_char = unsafe { function?(status) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: as above: a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(ptr) };
    Some(text.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_names_every_place_tried() {
        let tried = [
            "/nonexistent/libcublas.so.13".to_owned(),
            "/nonexistent/libcublas.so".to_owned(),
        ];
        let error = match BlasLibrary::load_from(Vendor::Cuda, &tried) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a library that does not exist loaded"),
        };
        assert!(
            error.contains("cuBLAS not found: tried 2 places"),
            "{error}"
        );
        assert!(error.contains("/nonexistent/libcublas.so.13"), "{error}");
    }

    #[test]
    fn a_library_that_is_not_the_blas_names_the_missing_entry_point() {
        // The C library is on every Linux machine and exports no BLAS.
        let libc = ["libc.so.6".to_owned()];
        for (vendor, symbol) in [
            (Vendor::Cuda, "cublasCreate_v2"),
            (Vendor::Hip, "rocblas_create_handle"),
        ] {
            let error = match BlasLibrary::load_from(vendor, &libc) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("libc loaded as {}", blas_name(vendor)),
            };
            assert!(
                error.contains(&format!("libc.so.6 lacks the entry point {symbol}")),
                "{error}"
            );
        }
    }
}
