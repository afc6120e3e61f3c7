//! Status codes of the C ABI. Their values are fixed forever; new codes are appended.

use crate::error::Error;

/// The result of every fallible `rf_` function. `RF_OK` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rf_status {
    RF_OK = 0,
    RF_ERR_INVALID_ARGUMENT = 1,
    RF_ERR_IO = 2,
    /// The model file is malformed.
    RF_ERR_INVALID_MODEL = 3,
    /// An architecture, tensor type or feature this build does not support.
    RF_ERR_UNSUPPORTED = 4,
    RF_ERR_OUT_OF_MEMORY = 5,
    RF_ERR_DEVICE_OUT_OF_MEMORY = 6,
    RF_ERR_DEVICE = 7,
    /// Sticky: every later call on objects of that device returns it.
    RF_ERR_DEVICE_LOST = 8,
    /// No room in the KV cache; the state is unchanged.
    RF_ERR_CONTEXT_FULL = 9,
    RF_ERR_CANCELLED = 10,
    RF_ERR_BUFFER_TOO_SMALL = 11,
    /// Another call is using this context or sampler: on another thread, or the call whose
    /// callback made this one.
    RF_ERR_BUSY = 12,
    /// A bug inside the library was caught at the boundary; the object is unusable.
    RF_ERR_PANIC = 13,
}

impl rf_status {
    const ALL: [rf_status; 14] = [
        rf_status::RF_OK,
        rf_status::RF_ERR_INVALID_ARGUMENT,
        rf_status::RF_ERR_IO,
        rf_status::RF_ERR_INVALID_MODEL,
        rf_status::RF_ERR_UNSUPPORTED,
        rf_status::RF_ERR_OUT_OF_MEMORY,
        rf_status::RF_ERR_DEVICE_OUT_OF_MEMORY,
        rf_status::RF_ERR_DEVICE,
        rf_status::RF_ERR_DEVICE_LOST,
        rf_status::RF_ERR_CONTEXT_FULL,
        rf_status::RF_ERR_CANCELLED,
        rf_status::RF_ERR_BUFFER_TOO_SMALL,
        rf_status::RF_ERR_BUSY,
        rf_status::RF_ERR_PANIC,
    ];

    /// The status with this numeric value, if there is one.
    pub fn from_code(code: i32) -> Option<rf_status> {
        Self::ALL.into_iter().find(|s| *s as i32 == code)
    }

    pub fn name(self) -> &'static std::ffi::CStr {
        use rf_status::*;
        match self {
            RF_OK => c"RF_OK",
            RF_ERR_INVALID_ARGUMENT => c"RF_ERR_INVALID_ARGUMENT",
            RF_ERR_IO => c"RF_ERR_IO",
            RF_ERR_INVALID_MODEL => c"RF_ERR_INVALID_MODEL",
            RF_ERR_UNSUPPORTED => c"RF_ERR_UNSUPPORTED",
            RF_ERR_OUT_OF_MEMORY => c"RF_ERR_OUT_OF_MEMORY",
            RF_ERR_DEVICE_OUT_OF_MEMORY => c"RF_ERR_DEVICE_OUT_OF_MEMORY",
            RF_ERR_DEVICE => c"RF_ERR_DEVICE",
            RF_ERR_DEVICE_LOST => c"RF_ERR_DEVICE_LOST",
            RF_ERR_CONTEXT_FULL => c"RF_ERR_CONTEXT_FULL",
            RF_ERR_CANCELLED => c"RF_ERR_CANCELLED",
            RF_ERR_BUFFER_TOO_SMALL => c"RF_ERR_BUFFER_TOO_SMALL",
            RF_ERR_BUSY => c"RF_ERR_BUSY",
            RF_ERR_PANIC => c"RF_ERR_PANIC",
        }
    }
}

impl From<&Error> for rf_status {
    fn from(e: &Error) -> rf_status {
        match e {
            Error::InvalidGguf(_)
            | Error::MissingKey { .. }
            | Error::WrongKeyType { .. }
            | Error::MissingTensor { .. }
            | Error::InvalidModel(_)
            | Error::InvalidVocab(_) => rf_status::RF_ERR_INVALID_MODEL,
            Error::Unsupported(_) => rf_status::RF_ERR_UNSUPPORTED,
            Error::InvalidArgument(_) | Error::NoTokenForByte { .. } => {
                rf_status::RF_ERR_INVALID_ARGUMENT
            }
            Error::OutOfMemory(_) => rf_status::RF_ERR_OUT_OF_MEMORY,
            Error::ContextFull(_) => rf_status::RF_ERR_CONTEXT_FULL,
            Error::Cancelled => rf_status::RF_ERR_CANCELLED,
            Error::Io { .. } => rf_status::RF_ERR_IO,
            Error::Device(_) => rf_status::RF_ERR_DEVICE,
            Error::DeviceOutOfMemory(_) => rf_status::RF_ERR_DEVICE_OUT_OF_MEMORY,
            Error::DeviceLost(_) => rf_status::RF_ERR_DEVICE_LOST,
        }
    }
}
