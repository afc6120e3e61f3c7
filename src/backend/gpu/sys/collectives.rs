//! The vendors' collective communication libraries, opened with `dlopen` like the runtime
//! and never linked: NCCL on NVIDIA, RCCL on AMD. RCCL is a port of NCCL with the same
//! entry points, types and numbers, so one table serves both. Only what all-reducing a
//! tensor across the GPUs of one process needs.

use std::ffi::{c_char, c_int, c_void};

use libloading::Library;

use super::vendor_api::symbol;
use super::{RawStream, Vendor};

/// `ncclComm_t`: a pointer to a library-private struct.
pub type RawComm = *mut c_void;

/// `ncclResult_t`: 0 is success.
pub type CollectiveStatus = c_int;
pub const COLLECTIVE_SUCCESS: CollectiveStatus = 0;

/// `ncclDataType_t::ncclFloat32`.
pub const FLOAT32: c_int = 7;
/// `ncclRedOp_t::ncclSum`.
pub const SUM: c_int = 0;

/// The library's name in messages.
pub fn collectives_name(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Cuda => "NCCL",
        Vendor::Hip => "RCCL",
    }
}

/// Where to look for `vendor`'s collectives library, in order: the installation the
/// environment names (`ROCM_PATH`, for RCCL), the dynamic loader's own search
/// (LD_LIBRARY_PATH, the ld.so cache: a pip-installed NCCL is found only through
/// LD_LIBRARY_PATH), then the default install location.
pub fn collectives_candidates(vendor: Vendor) -> Vec<String> {
    let mut paths = Vec::new();
    match vendor {
        Vendor::Cuda => paths.extend(["libnccl.so.2", "libnccl.so"].map(String::from)),
        Vendor::Hip => {
            if let Some(root) = std::env::var_os("ROCM_PATH") {
                let lib = std::path::Path::new(&root).join("lib/librccl.so.1");
                paths.push(lib.to_string_lossy().into_owned());
            }
            paths.extend(
                ["librccl.so.1", "librccl.so", "/opt/rocm/lib/librccl.so.1"].map(String::from),
            );
        }
    }
    paths
}

/// The entry points, from nccl.h (NCCL 2.x; RCCL's rccl.h declares the same).
pub struct CollectivesApi {
    pub get_version: unsafe extern "C" fn(version: *mut c_int) -> CollectiveStatus,
    pub get_error_string: unsafe extern "C" fn(status: CollectiveStatus) -> *const c_char,
    /// One communicator for each of `n` devices of this process, by runtime ordinal.
    pub comm_init_all: unsafe extern "C" fn(
        comms: *mut RawComm,
        n: c_int,
        devices: *const c_int,
    ) -> CollectiveStatus,
    pub comm_destroy: unsafe extern "C" fn(comm: RawComm) -> CollectiveStatus,
    pub all_reduce: unsafe extern "C" fn(
        send: *const c_void,
        receive: *mut c_void,
        count: usize,
        data_type: c_int,
        op: c_int,
        comm: RawComm,
        stream: RawStream,
    ) -> CollectiveStatus,
    /// Calls between these two are one operation: how one thread drives several GPUs.
    pub group_start: unsafe extern "C" fn() -> CollectiveStatus,
    pub group_end: unsafe extern "C" fn() -> CollectiveStatus,
}

impl CollectivesApi {
    /// Resolves every entry point; the error is the first one the library lacks.
    ///
    /// # Safety
    /// `library` must be NCCL or RCCL, and must stay loaded while the table is used.
    pub unsafe fn load(library: &Library) -> Result<CollectivesApi, &'static str> {
        // SAFETY: each name is an NCCL/RCCL entry point with the field's signature.
        unsafe {
            Ok(CollectivesApi {
                get_version: symbol(library, "ncclGetVersion")?,
                get_error_string: symbol(library, "ncclGetErrorString")?,
                comm_init_all: symbol(library, "ncclCommInitAll")?,
                comm_destroy: symbol(library, "ncclCommDestroy")?,
                all_reduce: symbol(library, "ncclAllReduce")?,
                group_start: symbol(library, "ncclGroupStart")?,
                group_end: symbol(library, "ncclGroupEnd")?,
            })
        }
    }
}
