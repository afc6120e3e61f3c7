//! The checked layer: one method per vendor call, each turning a status into a
//! [`DriverError`] that carries the vendor's name and description of the code. Owning
//! types build on this; nothing here owns anything except the loaded [`Driver`] itself.

mod blas;
mod calls;
mod collectives;
mod error;
mod version;

use std::ffi::{CStr, c_char};

use libloading::Library;
use std::sync::{Mutex, PoisonError};

pub use blas::{BlasLibrary, RawGemm};
pub use calls::Dim3;
pub use collectives::CollectiveLibrary;
pub use error::{DriverError, ErrorKind, Unavailable};
pub use version::DriverVersion;

use super::sys::{self, Api, ApiNames, Status, Vendor, VendorApi, constants::error as codes};

/// An opened and initialised vendor runtime. Lives for the rest of the process (see
/// `sys::library` for why it is never closed), so handles may borrow it as `&'static`.
pub struct Driver {
    vendor: Vendor,
    library: String,
    version: DriverVersion,
    device_count: usize,
    api: Api,
    names: ApiNames,
    vendor_api: VendorApi,
}

/// The oldest drivers whose entry points this crate uses: CUDA 11.0 brought
/// `cuDevicePrimaryCtxRelease_v2`, HIP 5.0 the stable attribute numbering.
fn minimum_version(vendor: Vendor) -> DriverVersion {
    match vendor {
        Vendor::Cuda => DriverVersion::new(vendor, 11_000),
        Vendor::Hip => DriverVersion::new(vendor, 50_000_000),
    }
}

/// One loaded driver per vendor, shared by every device of the process. Only successes
/// are kept, so a process can retry after a runtime is installed or a device appears.
static LOADED: Mutex<[Option<&'static Driver>; 2]> = Mutex::new([None, None]);

impl Driver {
    /// The vendor's runtime from the usual places (see [`sys::candidates`]), loaded and
    /// initialised once per process.
    pub fn load(vendor: Vendor) -> Result<&'static Driver, Unavailable> {
        let slot = vendor as usize;
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(driver) = loaded[slot] {
            return Ok(driver);
        }
        let driver = Driver::load_from(vendor, &sys::candidates(vendor))?;
        loaded[slot] = Some(driver);
        Ok(driver)
    }

    /// The first of `candidates` that opens, as `vendor`'s runtime. Not cached: tests use
    /// it to point at libraries that are missing or are not a GPU runtime.
    pub fn load_from(
        vendor: Vendor,
        candidates: &[String],
    ) -> Result<&'static Driver, Unavailable> {
        let opened = sys::open_first(candidates)
            .map_err(|tried| Unavailable::LibraryNotFound { vendor, tried })?;
        let missing = |symbol| Unavailable::MissingSymbol {
            vendor,
            library: opened.path.clone(),
            symbol,
        };
        // SAFETY: the library was found under the vendor's runtime name, so its symbols
        // have the signatures the tables declare; it is never unloaded (forgotten below).
        let (api, names) = unsafe { Api::load(&opened.library, vendor) }.map_err(missing)?;
        // SAFETY: as above.
        let vendor_api = unsafe {
            match vendor {
                Vendor::Cuda => sys::CudaApi::load(&opened.library).map(VendorApi::Cuda),
                Vendor::Hip => sys::HipApi::load(&opened.library).map(VendorApi::Hip),
            }
        }
        .map_err(missing)?;
        let library = opened.path;
        // The function pointers above point into the library: keep it mapped for good.
        std::mem::forget(opened.library);

        let mut driver = Driver {
            vendor,
            library,
            version: DriverVersion::new(vendor, 0),
            device_count: 0,
            api,
            names,
            vendor_api,
        };
        driver.start()?;
        Ok(Box::leak(Box::new(driver)))
    }

    /// Initialises the runtime and checks that it is new enough and sees a device.
    fn start(&mut self) -> Result<(), Unavailable> {
        let vendor = self.vendor;
        if let Err(e) = self.init() {
            return Err(match e.code {
                codes::CUDA_STUB_LIBRARY if vendor == Vendor::Cuda => Unavailable::StubLibrary {
                    library: self.library.clone(),
                },
                codes::NO_DEVICE | codes::INVALID_DEVICE => Unavailable::NoDevice {
                    vendor,
                    detail: e.to_string(),
                },
                _ => Unavailable::InitFailed(e),
            });
        }
        self.version = DriverVersion::new(
            vendor,
            self.driver_version().map_err(Unavailable::InitFailed)?,
        );
        let needed = minimum_version(vendor);
        if self.version < needed {
            return Err(Unavailable::DriverTooOld {
                vendor,
                found: self.version,
                needed,
            });
        }
        self.device_count = match self.query_device_count() {
            Ok(0) => {
                return Err(Unavailable::NoDevice {
                    vendor,
                    detail: "device count is 0".into(),
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::NoDevice => {
                return Err(Unavailable::NoDevice {
                    vendor,
                    detail: e.to_string(),
                });
            }
            Err(e) => return Err(Unavailable::InitFailed(e)),
        };
        Ok(())
    }

    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// The library name or path that was opened.
    pub fn library(&self) -> &str {
        &self.library
    }

    pub fn version(&self) -> DriverVersion {
        self.version
    }

    /// Devices the runtime saw when it started.
    pub fn device_count(&self) -> usize {
        self.device_count
    }

    /// Turns a status into a result, naming the call and the vendor's reading of the code.
    fn check(&self, call: &'static str, status: Status) -> Result<(), DriverError> {
        if status == sys::SUCCESS {
            return Ok(());
        }
        let (name, description) = self.describe(status);
        Err(DriverError {
            vendor: self.vendor,
            call,
            code: status,
            name,
            description,
        })
    }

    /// The vendor's name and description of an error code, or a placeholder for codes the
    /// runtime does not know.
    fn describe(&self, status: Status) -> (String, String) {
        match &self.vendor_api {
            sys::VendorApi::Cuda(cuda) => {
                let mut name: *const c_char = std::ptr::null();
                let mut description: *const c_char = std::ptr::null();
                // SAFETY: both calls write a pointer to a static string (or fail and leave
                // NULL, which `text` handles); the out-pointers are valid locals.
                unsafe {
                    (cuda.get_error_name)(status, &mut name);
                    (cuda.get_error_string)(status, &mut description);
                }
                (text(name, "unknown error"), text(description, ""))
            }
            sys::VendorApi::Hip(hip) => {
                // SAFETY: both return a pointer to a static string (NULL is handled).
                let (name, description) =
                    unsafe { ((hip.get_error_name)(status), (hip.get_error_string)(status)) };
                (text(name, "unknown error"), text(description, ""))
            }
        }
    }
}

/// A C string the runtime returned, or `fallback` when it returned NULL.
fn text(ptr: *const c_char, fallback: &str) -> String {
    if ptr.is_null() {
        return fallback.to_owned();
    }
    // SAFETY: the runtimes return NUL-terminated static strings that are never freed.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Opens the first of `candidates` as the library `name` (a vendor BLAS or collectives
/// library) and resolves its table with `resolve`; the library then stays mapped for
/// good, as the table points into it. The error (made by `kind`) names every place tried,
/// or the entry point the library lacks.
fn open_library<T>(
    name: &str,
    candidates: &[String],
    kind: fn(String) -> crate::error::Error,
    resolve: impl FnOnce(&Library) -> Result<T, &'static str>,
) -> crate::error::Result<(String, T)> {
    let opened = sys::open_first(candidates).map_err(|tried| {
        let first = tried
            .first()
            .map(|(path, reason)| format!("; {path}: {reason}"))
            .unwrap_or_default();
        kind(format!(
            "{name} not found: tried {} places ({}){first}",
            tried.len(),
            candidates.join(", ")
        ))
    })?;
    let table = resolve(&opened.library).map_err(|symbol| {
        kind(format!(
            "{name} {} lacks the entry point {symbol}: it is too old or not {name}",
            opened.path
        ))
    })?;
    std::mem::forget(opened.library);
    Ok((opened.path, table))
}
