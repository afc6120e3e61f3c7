//! The vendor's collectives library (NCCL, RCCL), loaded once per process, with one
//! checked method per call: a status becomes an [`Error`] naming the library, the call
//! and the library's reading of the code. Not finding the library is
//! [`Error::Unsupported`]: what needs it (a tensor split) is not available without it.

use std::ffi::{CStr, c_int};
use std::sync::{Mutex, PoisonError};

use super::super::sys::collectives::{
    COLLECTIVE_SUCCESS, CollectiveStatus, CollectivesApi, FLOAT32, RawComm, SUM,
    collectives_candidates, collectives_name,
};
use super::super::sys::{DevicePtr, RawStream, Vendor};
use super::open_library;
use crate::error::{Error, Result};

/// An opened collectives library. Lives for the rest of the process (a vendor library is
/// never closed; see `sys::library`), so communicators may borrow it as `&'static`.
pub struct CollectiveLibrary {
    vendor: Vendor,
    path: String,
    api: CollectivesApi,
}

/// One loaded library per vendor. Only successes are kept, so a process can retry after
/// the library is installed.
static LOADED: Mutex<[Option<&'static CollectiveLibrary>; 2]> = Mutex::new([None, None]);

impl CollectiveLibrary {
    /// `vendor`'s library from the usual places (see [`collectives_candidates`]), loaded
    /// once per process.
    pub fn load(vendor: Vendor) -> Result<&'static CollectiveLibrary> {
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = vendor as usize;
        if let Some(library) = loaded[slot] {
            return Ok(library);
        }
        let library = CollectiveLibrary::load_from(vendor, &collectives_candidates(vendor))?;
        loaded[slot] = Some(library);
        Ok(library)
    }

    /// The first of `candidates` that opens, as `vendor`'s library. Not cached: tests use
    /// it to point at libraries that are missing or are not NCCL.
    pub fn load_from(vendor: Vendor, candidates: &[String]) -> Result<&'static CollectiveLibrary> {
        let name = collectives_name(vendor);
        let (path, api) = open_library(name, candidates, Error::Unsupported, |library| {
            // SAFETY: the library was found under the vendor's collectives name, so its
            // symbols have the signatures the table declares; `open_library` keeps it
            // loaded.
            unsafe { CollectivesApi::load(library) }
        })?;
        Ok(Box::leak(Box::new(CollectiveLibrary { vendor, path, api })))
    }

    /// The library name or path that was opened.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The library's version as it reports it (NCCL 2.27.3: 22703).
    pub fn version(&self) -> Result<i32> {
        let mut version: c_int = 0;
        // SAFETY: writes one int to a valid local; needs no device.
        let status = unsafe { (self.api.get_version)(&mut version) };
        self.check("ncclGetVersion", status)?;
        Ok(version)
    }

    /// One communicator for each of `ordinals` (runtime device indexes), in order.
    ///
    /// # Safety
    /// Destroy each communicator once with [`CollectiveLibrary::comm_destroy`].
    pub unsafe fn comm_init_all(&self, ordinals: &[c_int]) -> Result<Vec<RawComm>> {
        let n = c_int::try_from(ordinals.len())
            .map_err(|_| Error::InvalidArgument(format!("{} devices", ordinals.len())))?;
        let mut comms = vec![std::ptr::null_mut(); ordinals.len()];
        // SAFETY: `comms` has room for `n` handles and `ordinals` holds `n` indexes.
        let status = unsafe { (self.api.comm_init_all)(comms.as_mut_ptr(), n, ordinals.as_ptr()) };
        self.check("ncclCommInitAll", status)?;
        Ok(comms)
    }

    /// # Safety
    /// `comm` came from [`CollectiveLibrary::comm_init_all`] and is not used afterwards;
    /// no work queued on it is still running.
    pub unsafe fn comm_destroy(&self, comm: RawComm) -> Result<()> {
        // SAFETY: the caller's contract.
        let status = unsafe { (self.api.comm_destroy)(comm) };
        self.check("ncclCommDestroy", status)
    }

    /// Makes the calls until [`CollectiveLibrary::group_end`] one operation.
    pub fn group_start(&self) -> Result<()> {
        // SAFETY: no arguments.
        let status = unsafe { (self.api.group_start)() };
        self.check("ncclGroupStart", status)
    }

    pub fn group_end(&self) -> Result<()> {
        // SAFETY: no arguments; ends the group `group_start` began.
        let status = unsafe { (self.api.group_end)() };
        self.check("ncclGroupEnd", status)
    }

    /// Queues `buffer[i] = Σ over the communicator's devices of buffer[i]` for `count`
    /// f32 values, in place, on `stream`.
    ///
    /// # Safety
    /// `buffer` holds `count` f32 values on the communicator's device and stays allocated
    /// until the stream has finished; `stream` is a live stream of that device.
    pub unsafe fn all_reduce_sum(
        &self,
        buffer: DevicePtr,
        count: usize,
        comm: RawComm,
        stream: RawStream,
    ) -> Result<()> {
        let data = buffer as *mut std::ffi::c_void;
        // SAFETY: the caller's contract; send and receive may be the same buffer.
        let status =
            unsafe { (self.api.all_reduce)(data, data, count, FLOAT32, SUM, comm, stream) };
        self.check("ncclAllReduce", status)
    }

    fn check(&self, call: &'static str, status: CollectiveStatus) -> Result<()> {
        if status == COLLECTIVE_SUCCESS {
            return Ok(());
        }
        // SAFETY: takes any status and returns a pointer to a static NUL-terminated string
        // (or NULL).
        let text = unsafe { (self.api.get_error_string)(status) };
        let reading = if text.is_null() {
            "an unknown status".to_owned()
        } else {
            // SAFETY: as above.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        };
        Err(Error::Device(format!(
            "{}: {call} failed with {status}: {reading}",
            collectives_name(self.vendor)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_unsupported_and_names_every_place_tried() {
        let tried = ["/nonexistent/libnccl.so.2".to_owned()];
        let error = match CollectiveLibrary::load_from(Vendor::Cuda, &tried) {
            Err(e) => e,
            Ok(_) => panic!("a library that does not exist loaded"),
        };
        assert!(matches!(error, Error::Unsupported(_)), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("NCCL not found: tried 1 places"), "{text}");
        assert!(text.contains("/nonexistent/libnccl.so.2"), "{text}");
    }

    #[test]
    fn a_library_that_is_not_nccl_names_the_missing_entry_point() {
        // The C library is on every Linux machine and exports no collectives.
        let libc = ["libc.so.6".to_owned()];
        for vendor in [Vendor::Cuda, Vendor::Hip] {
            let error = match CollectiveLibrary::load_from(vendor, &libc) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("libc loaded as {}", collectives_name(vendor)),
            };
            assert!(
                error.contains("libc.so.6 lacks the entry point ncclGetVersion"),
                "{error}"
            );
        }
    }
}
