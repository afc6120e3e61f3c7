//! The vendor BLAS, opened with `dlopen` like the runtime and never linked: cuBLAS on
//! NVIDIA, rocBLAS on AMD. Only what a prefill matrix product needs: a handle, its stream,
//! and one mixed-precision GEMM (f16 inputs, f32 output, f32 accumulation).
//!
//! On AMD this calls rocBLAS, not hipBLAS. `hipblasGemmEx` kept its symbol name while
//! ROCm 6 and 7 changed its type arguments (`hipblasDatatype_t`, 150/151, became
//! `hipDataType`, 2/0, and the compute type got an enum of its own), so a caller that
//! finds the library at run time cannot know which numbers it expects. `rocblas_gemm_ex`
//! has had one signature and one set of numbers from ROCm 3 through 7, and hipBLAS only
//! forwards to it on AMD anyway: one library fewer to find.
//!
//! cuBLAS uses the CUDA runtime API, which adopts the context current on the calling
//! thread: created while the device's primary context is current (as `Device::run`
//! makes it), a handle shares that context, and our `CUstream` is its `cudaStream_t`.

use std::ffi::{OsStr, c_char, c_int, c_void};
use std::path::Path;

use libloading::Library;

use super::{RawStream, Vendor};

/// `cublasHandle_t` / `rocblas_handle`: a pointer to a library-private struct.
pub type RawBlasHandle = *mut c_void;

/// `cublasStatus_t` / `rocblas_status`: C enums, 0 is success for both.
pub type BlasStatus = c_int;
pub const BLAS_SUCCESS: BlasStatus = 0;

/// The library's name in messages.
pub fn blas_name(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Cuda => "cuBLAS",
        Vendor::Hip => "rocBLAS",
    }
}

/// Where to look for `vendor`'s BLAS, in order: the installation the environment names
/// (`root`: `CUDA_PATH`, or `ROCM_PATH` then `HIP_PATH`), the dynamic loader's own search
/// (LD_LIBRARY_PATH, the ld.so cache: a pip-installed cuBLAS is found only through
/// LD_LIBRARY_PATH), then the vendors' default install locations. Newest soname first;
/// the unversioned name comes with development packages only.
pub fn blas_candidates(vendor: Vendor, roots: &[&OsStr]) -> Vec<String> {
    let (lib_dir, sonames, default_dir): (&str, &[&str], &str) = match vendor {
        Vendor::Cuda => (
            "lib64",
            &["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
            "/usr/local/cuda/lib64",
        ),
        Vendor::Hip => (
            "lib",
            &[
                "librocblas.so.5",
                "librocblas.so.4",
                "librocblas.so.0",
                "librocblas.so",
            ],
            "/opt/rocm/lib",
        ),
    };
    let mut paths: Vec<String> = Vec::new();
    let mut add_dir = |dir: &Path| {
        for soname in sonames {
            paths.push(dir.join(soname).to_string_lossy().into_owned());
        }
    };
    for root in roots {
        add_dir(&Path::new(root).join(lib_dir));
    }
    let loader_names = sonames.iter().map(|s| s.to_string());
    let default_dir = sonames.iter().map(|s| format!("{default_dir}/{s}"));
    paths.extend(loader_names.chain(default_dir));
    paths
}

/// `cublasOperation_t`.
pub mod cublas {
    pub const OP_N: i32 = 0;
    pub const OP_T: i32 = 1;
    /// `cudaDataType` (library_types.h).
    pub const R_16F: i32 = 2;
    pub const R_32F: i32 = 0;
    /// `CUBLAS_COMPUTE_32F`: f32 accumulation, tensor cores allowed for f16 inputs.
    pub const COMPUTE_32F: i32 = 68;
    /// `CUBLAS_GEMM_DEFAULT`: the library's heuristic.
    pub const GEMM_DEFAULT: i32 = -1;
    /// `cublasStatus_t` codes that mean something to a caller.
    pub const STATUS_ALLOC_FAILED: i32 = 3;
}

/// `rocblas_operation`, `rocblas_datatype`, `rocblas_gemm_algo` (rocblas-types.h).
pub mod rocblas {
    pub const OP_N: i32 = 111;
    pub const OP_T: i32 = 112;
    pub const R_16F: i32 = 150;
    pub const R_32F: i32 = 151;
    pub const GEMM_ALGO_STANDARD: i32 = 0;
    /// `rocblas_status_memory_error`.
    pub const STATUS_MEMORY_ERROR: i32 = 5;
}

/// A status's text: `fn(status) -> const char *` to a static string.
pub type StatusText = unsafe extern "C" fn(status: BlasStatus) -> *const c_char;

/// `cublasGemmEx`: C = alpha op(A) op(B) + beta C, column-major, the types given as
/// `cudaDataType` and the accumulation as `cublasComputeType_t`.
pub type CublasGemmEx = unsafe extern "C" fn(
    handle: RawBlasHandle,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: *const c_void,
    a_type: c_int,
    lda: c_int,
    b: *const c_void,
    b_type: c_int,
    ldb: c_int,
    beta: *const c_void,
    c: *mut c_void,
    c_type: c_int,
    ldc: c_int,
    compute_type: c_int,
    algo: c_int,
) -> BlasStatus;

/// `rocblas_gemm_ex`: D = alpha op(A) op(B) + beta C, column-major, every type a
/// `rocblas_datatype`.
pub type RocblasGemmEx = unsafe extern "C" fn(
    handle: RawBlasHandle,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: *const c_void,
    a_type: c_int,
    lda: c_int,
    b: *const c_void,
    b_type: c_int,
    ldb: c_int,
    beta: *const c_void,
    c: *const c_void,
    c_type: c_int,
    ldc: c_int,
    d: *mut c_void,
    d_type: c_int,
    ldd: c_int,
    compute_type: c_int,
    algo: c_int,
    solution_index: i32,
    flags: u32,
) -> BlasStatus;

/// cublas_api.h of CUDA 12 and 13 (the `_v2` names are the exported symbols behind the
/// header's macros).
pub struct CublasApi {
    pub create: unsafe extern "C" fn(handle: *mut RawBlasHandle) -> BlasStatus,
    pub destroy: unsafe extern "C" fn(handle: RawBlasHandle) -> BlasStatus,
    pub set_stream: unsafe extern "C" fn(handle: RawBlasHandle, stream: RawStream) -> BlasStatus,
    pub gemm_ex: CublasGemmEx,
    /// `cublasGetStatusName` and `cublasGetStatusString`: CUDA 11.4.2 and later.
    pub status_name: Option<StatusText>,
    pub status_string: Option<StatusText>,
}

/// rocblas-functions.h and rocblas-auxiliary.h, ROCm 3 through 7 (LP64: `rocblas_int` is
/// a 32-bit int).
pub struct RocblasApi {
    pub create: unsafe extern "C" fn(handle: *mut RawBlasHandle) -> BlasStatus,
    pub destroy: unsafe extern "C" fn(handle: RawBlasHandle) -> BlasStatus,
    pub set_stream: unsafe extern "C" fn(handle: RawBlasHandle, stream: RawStream) -> BlasStatus,
    pub gemm_ex: RocblasGemmEx,
    /// `rocblas_status_to_string`: the status's enumerator name.
    pub status_name: Option<StatusText>,
}

pub enum BlasApi {
    Cublas(CublasApi),
    Rocblas(RocblasApi),
}

/// Resolves `name` as a `T`, or names it as missing.
///
/// # Safety
/// `T` must be the symbol's function-pointer type and the library must stay loaded.
unsafe fn symbol<T: Copy>(library: &Library, name: &'static str) -> Result<T, &'static str> {
    // SAFETY: forwarded from the caller.
    unsafe { library.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|_| name)
}

impl BlasApi {
    /// Resolves `vendor`'s BLAS entry points; the error is the first required symbol the
    /// library lacks.
    ///
    /// # Safety
    /// `library` must be `vendor`'s BLAS (cuBLAS 12 or later, rocBLAS of ROCm 3 or later),
    /// so that each symbol has the signature its field declares, and must stay loaded
    /// while the table is used.
    pub unsafe fn load(library: &Library, vendor: Vendor) -> Result<BlasApi, &'static str> {
        // SAFETY: each name is an entry point of the vendor's BLAS with the field's
        // signature (cublas_api.h of CUDA 12 and 13; rocblas-functions.h and
        // rocblas-auxiliary.h of ROCm 5 through 7); the caller keeps the library loaded.
        unsafe {
            Ok(match vendor {
                Vendor::Cuda => BlasApi::Cublas(CublasApi {
                    create: symbol(library, "cublasCreate_v2")?,
                    destroy: symbol(library, "cublasDestroy_v2")?,
                    set_stream: symbol(library, "cublasSetStream_v2")?,
                    gemm_ex: symbol(library, "cublasGemmEx")?,
                    status_name: symbol(library, "cublasGetStatusName").ok(),
                    status_string: symbol(library, "cublasGetStatusString").ok(),
                }),
                Vendor::Hip => BlasApi::Rocblas(RocblasApi {
                    create: symbol(library, "rocblas_create_handle")?,
                    destroy: symbol(library, "rocblas_destroy_handle")?,
                    set_stream: symbol(library, "rocblas_set_stream")?,
                    gemm_ex: symbol(library, "rocblas_gemm_ex")?,
                    status_name: symbol(library, "rocblas_status_to_string").ok(),
                }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_installation_comes_first_then_the_loader_then_the_default() {
        let cuda = blas_candidates(Vendor::Cuda, &[OsStr::new("/opt/cuda-13.0")]);
        assert_eq!(cuda[0], "/opt/cuda-13.0/lib64/libcublas.so.13");
        assert_eq!(cuda[1], "/opt/cuda-13.0/lib64/libcublas.so.12");
        assert_eq!(cuda[3], "libcublas.so.13");
        assert_eq!(
            cuda.last().map(String::as_str),
            Some("/usr/local/cuda/lib64/libcublas.so")
        );
        assert!(cuda.iter().all(|p| !p.contains("nvidia/cublas")));

        let rocm = blas_candidates(
            Vendor::Hip,
            &[OsStr::new("/opt/rocm-6.4"), OsStr::new("/hip")],
        );
        assert_eq!(rocm[0], "/opt/rocm-6.4/lib/librocblas.so.5");
        assert_eq!(rocm[4], "/hip/lib/librocblas.so.5");
        assert!(rocm.contains(&"librocblas.so.4".to_owned()));
        assert_eq!(
            rocm.last().map(String::as_str),
            Some("/opt/rocm/lib/librocblas.so")
        );
        assert_eq!(blas_candidates(Vendor::Cuda, &[])[0], "libcublas.so.13");
    }
}
