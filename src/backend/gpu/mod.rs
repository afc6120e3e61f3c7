//! The GPU runtime: AMD (HIP) and NVIDIA (CUDA) from one build, chosen at run time, with
//! no link-time dependency on either vendor.
//!
//! ```text
//! sys      the vendor library opened with dlopen; a table of raw entry points
//!   │      (HIP's module API mirrors CUDA's driver API, so one table serves both)
//! result   one checked call each: a status becomes a DriverError naming the call and
//!   │      carrying the vendor's error string; loading says what is missing
//! safe     owning types: Device (shared), Stream, Event, DeviceBuffer<T> (one owner,
//!          counted), Module/Function, Graph
//! kernels  the code objects build.rs compiled from kernels/*.hip, and where they run
//! devices  the GPUs each runtime reports, for the device list in `backend::devices`
//! ```
//!
//! Nothing here panics on what a device or driver reports: every failure is an `Error`
//! (`Device`, `DeviceOutOfMemory`, `DeviceLost`, `Unsupported`) that says which library,
//! symbol or call failed and why.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod arch;
mod backend;
mod device_step;
pub mod devices;
mod graph_step;
pub mod kernels;
pub mod ops;
mod parts;
pub mod result;
pub mod safe;
pub mod sys;

pub use backend::{GpuBackend, GpuMatrix};
pub use devices::{RuntimeReport, gpu_reports, runtimes};
pub use graph_step::GraphStats;
pub use parts::GpuParts;
pub use result::{Driver, DriverError, DriverVersion, Unavailable};
pub use safe::{
    Communicators, Device, DeviceBuffer, DeviceCopy, DeviceFacts, Event, Function, Graph,
    KernelArg, KernelArgs, LaunchConfig, MappedHost, MemoryInfo, MemoryStats, Module, Stream,
    UploadStaging,
};
pub use sys::Vendor;
