//! Numbers the vendor headers define, checked against cuda.h of CUDA 13.0 and
//! hip_runtime_api.h of ROCm 5.2 and 6.x. HIP keeps its attribute numbers stable across
//! releases by renaming retired entries `Unused…` instead of renumbering.

use std::ffi::c_int;

use super::{Status, Vendor};

/// Device attributes this crate reads. Integer queries only: no vendor struct is copied,
/// so a runtime that grows its property struct cannot shift what we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribute {
    ComputeCapabilityMajor,
    ComputeCapabilityMinor,
    MultiprocessorCount,
    WarpSize,
    PciDomainId,
    PciBusId,
    PciDeviceId,
}

impl Attribute {
    pub fn id(self, vendor: Vendor) -> c_int {
        use Attribute::*;
        match vendor {
            // CUdevice_attribute
            Vendor::Cuda => match self {
                ComputeCapabilityMajor => 75,
                ComputeCapabilityMinor => 76,
                MultiprocessorCount => 16,
                WarpSize => 10,
                PciDomainId => 50,
                PciBusId => 33,
                PciDeviceId => 34,
            },
            // hipDeviceAttribute_t
            Vendor::Hip => match self {
                ComputeCapabilityMajor => 23,
                ComputeCapabilityMinor => 61,
                MultiprocessorCount => 63,
                WarpSize => 87,
                PciDomainId => 69,
                PciBusId => 67,
                PciDeviceId => 68,
            },
        }
    }
}

/// Error codes with the same number and meaning in `CUresult` and `hipError_t`.
pub mod error {
    use super::Status;

    pub const OUT_OF_MEMORY: Status = 2;
    /// CUDA: the toolkit's link stub `libcuda.so` was loaded instead of the driver.
    pub const CUDA_STUB_LIBRARY: Status = 34;
    pub const NO_DEVICE: Status = 100;
    pub const INVALID_DEVICE: Status = 101;
    pub const ECC_UNCORRECTABLE: Status = 214;
    pub const ILLEGAL_ADDRESS: Status = 700;
    pub const LAUNCH_TIMEOUT: Status = 702;
    /// A peer-access request for a pair that already has it.
    pub const PEER_ACCESS_ALREADY_ENABLED: Status = 704;
    pub const CONTEXT_IS_DESTROYED: Status = 709;
    pub const ASSERT: Status = 710;
    pub const HARDWARE_STACK_ERROR: Status = 714;
    pub const ILLEGAL_INSTRUCTION: Status = 715;
    pub const MISALIGNED_ADDRESS: Status = 716;
    pub const INVALID_ADDRESS_SPACE: Status = 717;
    pub const INVALID_PC: Status = 718;
    pub const LAUNCH_FAILED: Status = 719;
}

/// `CU_STREAM_NON_BLOCKING` / `hipStreamNonBlocking`: the stream does not synchronise with
/// the legacy default stream, which this crate never uses.
pub const STREAM_NON_BLOCKING: u32 = 1;
/// `CU_EVENT_DEFAULT` / `hipEventDefault`: timing enabled.
pub const EVENT_DEFAULT: u32 = 0;
/// `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL` / `hipStreamCaptureModeThreadLocal`: a capture
/// forbids unsafe calls on the capturing thread only, so other threads (other contexts on
/// the same model) keep working while one captures.
pub const CAPTURE_MODE_THREAD_LOCAL: c_int = 1;
