//! What can go wrong below the owning types: a vendor call that returned an error, and a
//! runtime that could not be started at all.

use std::fmt;

use super::super::sys::{Status, Vendor, constants::error};
use super::DriverVersion;
use crate::error::Error;

/// A vendor call that returned something other than success, with the vendor's own name
/// and description of the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverError {
    pub vendor: Vendor,
    /// The symbol that was called, e.g. `cuMemAlloc_v2` or `hipMalloc`.
    pub call: &'static str,
    pub code: Status,
    /// e.g. `CUDA_ERROR_OUT_OF_MEMORY`.
    pub name: String,
    /// e.g. `out of memory`.
    pub description: String,
}

/// How a caller should treat a [`DriverError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An allocation did not fit; the device is fine and the next one may succeed.
    OutOfMemory,
    /// The context is corrupted (a kernel faulted, ECC, a watchdog): every later call on
    /// the device fails, so the device is marked lost.
    DeviceLost,
    /// No device, or none that this driver can run.
    NoDevice,
    Other,
}

impl DriverError {
    pub fn kind(&self) -> ErrorKind {
        match self.code {
            error::OUT_OF_MEMORY => ErrorKind::OutOfMemory,
            error::NO_DEVICE | error::INVALID_DEVICE => ErrorKind::NoDevice,
            // The codes that CUDA documents as leaving the context unusable ("the process
            // must terminate and relaunch"); HIP uses the same numbers for the same faults.
            error::ECC_UNCORRECTABLE
            | error::ILLEGAL_ADDRESS
            | error::LAUNCH_TIMEOUT
            | error::CONTEXT_IS_DESTROYED
            | error::ASSERT
            | error::HARDWARE_STACK_ERROR
            | error::ILLEGAL_INSTRUCTION
            | error::MISALIGNED_ADDRESS
            | error::INVALID_ADDRESS_SPACE
            | error::INVALID_PC
            | error::LAUNCH_FAILED => ErrorKind::DeviceLost,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with {} ({})", self.call, self.name, self.code)?;
        // HIP 5 describes a code by repeating its name; say it once.
        if !self.description.is_empty() && self.description != self.name {
            write!(f, ": {}", self.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for DriverError {}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Error {
        let message = format!("{}: {e}", e.vendor);
        match e.kind() {
            ErrorKind::OutOfMemory => Error::DeviceOutOfMemory(message),
            ErrorKind::DeviceLost => Error::DeviceLost(message),
            ErrorKind::NoDevice | ErrorKind::Other => Error::Device(message),
        }
    }
}

/// Why a vendor runtime could not be started. Each case says which step failed, so that
/// `rf_device_info` and the logs can tell a user what to install or update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No candidate library loaded; each one tried, with the loader's reason.
    LibraryNotFound {
        vendor: Vendor,
        tried: Vec<(String, String)>,
    },
    /// The library loaded but lacks an entry point this crate needs.
    MissingSymbol {
        vendor: Vendor,
        library: String,
        symbol: &'static str,
    },
    /// The CUDA toolkit's link stub was found instead of the driver's library.
    StubLibrary { library: String },
    /// The runtime started but sees no device.
    NoDevice { vendor: Vendor, detail: String },
    /// The driver is older than this crate needs.
    DriverTooOld {
        vendor: Vendor,
        found: DriverVersion,
        needed: DriverVersion,
    },
    /// The runtime's initialisation failed for another reason.
    InitFailed(DriverError),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::LibraryNotFound { vendor, tried } => {
                let library = match vendor {
                    Vendor::Hip => "libamdhip64.so",
                    Vendor::Cuda => "libcuda.so.1",
                };
                write!(
                    f,
                    "{vendor} runtime not found: no {library} could be loaded"
                )?;
                if let Some((path, reason)) = tried.first() {
                    write!(f, " (tried {} places; {path}: {reason})", tried.len())?;
                }
                Ok(())
            }
            Unavailable::MissingSymbol {
                vendor,
                library,
                symbol,
            } => write!(
                f,
                "{vendor} runtime {library} lacks the entry point {symbol}: it is too old or not \
                 the vendor's runtime"
            ),
            Unavailable::StubLibrary { library } => write!(
                f,
                "CUDA: {library} is the toolkit's link stub, not the NVIDIA driver's library"
            ),
            Unavailable::NoDevice { vendor, detail } => {
                write!(f, "{vendor} runtime loaded but found no device ({detail})")
            }
            Unavailable::DriverTooOld {
                vendor,
                found,
                needed,
            } => write!(
                f,
                "{vendor} driver {found} is too old: this library needs {needed} or newer"
            ),
            Unavailable::InitFailed(e) => write!(f, "{} runtime failed to start: {e}", e.vendor),
        }
    }
}

impl std::error::Error for Unavailable {}

impl From<Unavailable> for Error {
    fn from(e: Unavailable) -> Error {
        Error::Device(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: Status) -> DriverError {
        DriverError {
            vendor: Vendor::Cuda,
            call: "cuSomething",
            code,
            name: "CUDA_ERROR_X".into(),
            description: "something".into(),
        }
    }

    #[test]
    fn codes_map_to_the_crate_errors() {
        assert!(matches!(Error::from(error(2)), Error::DeviceOutOfMemory(_)));
        for lost in [700, 714, 715, 716, 719, 214] {
            assert!(
                matches!(Error::from(error(lost)), Error::DeviceLost(_)),
                "{lost}"
            );
        }
        for other in [1, 100, 200, 500, 801] {
            assert!(
                matches!(Error::from(error(other)), Error::Device(_)),
                "{other}"
            );
        }
        let message = Error::from(error(2)).to_string();
        assert!(message.contains("cuSomething") && message.contains("CUDA_ERROR_X (2)"));
    }
}
