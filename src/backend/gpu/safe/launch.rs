//! Launch geometry and kernel arguments.

use std::ffi::c_void;

pub use super::super::result::Dim3;
use super::mapped_host::MappedHost;
use super::memory::{DeviceBuffer, DeviceCopy};
use crate::error::{Error, Result};

/// Grid and block sizes of one launch, and the dynamic shared memory it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: Dim3,
    pub block: Dim3,
    pub shared_mem_bytes: u32,
}

/// The most threads a block may have on every GPU this crate targets.
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;

impl LaunchConfig {
    /// A one-dimensional launch of `blocks` blocks of `threads_per_block` threads.
    pub fn linear(blocks: u32, threads_per_block: u32) -> LaunchConfig {
        let grid = Dim3 {
            x: blocks,
            y: 1,
            z: 1,
        };
        LaunchConfig::grid(grid, threads_per_block)
    }

    /// A launch of a `grid` of one-dimensional blocks of `threads_per_block` threads.
    pub fn grid(grid: Dim3, threads_per_block: u32) -> LaunchConfig {
        LaunchConfig {
            grid,
            block: Dim3 {
                x: threads_per_block,
                y: 1,
                z: 1,
            },
            shared_mem_bytes: 0,
        }
    }

    /// Enough blocks of `threads_per_block` for one thread per element of `n`, at most
    /// `max_blocks` (grid-stride kernels cover the rest), at least one.
    pub fn for_elements(n: u64, threads_per_block: u32, max_blocks: u32) -> LaunchConfig {
        let needed = n.div_ceil(u64::from(threads_per_block.max(1)));
        let blocks = needed.clamp(1, u64::from(max_blocks.max(1)));
        LaunchConfig::linear(blocks as u32, threads_per_block)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let dims = [self.grid, self.block];
        let threads = u64::from(self.block.x) * u64::from(self.block.y) * u64::from(self.block.z);
        if dims.iter().any(|d| d.x == 0 || d.y == 0 || d.z == 0) {
            return Err(Error::InvalidArgument(format!(
                "launch with an empty dimension: {self:?}"
            )));
        }
        if threads > u64::from(MAX_THREADS_PER_BLOCK) {
            return Err(Error::InvalidArgument(format!(
                "launch with {threads} threads per block, more than {MAX_THREADS_PER_BLOCK}"
            )));
        }
        Ok(())
    }
}

/// A value a kernel parameter can take.
pub trait KernelArg {
    /// The parameter's bytes, at the start of an 8-byte slot.
    fn slot(&self) -> u64;
}

/// Puts `bytes` at the start of an 8-byte slot, in memory order.
fn slot_of<const N: usize>(bytes: [u8; N]) -> u64 {
    let mut slot = [0u8; 8];
    slot[..N].copy_from_slice(&bytes);
    u64::from_ne_bytes(slot)
}

macro_rules! kernel_arg_number {
    ($($t:ty),*) => {
        $(impl KernelArg for $t {
            fn slot(&self) -> u64 {
                slot_of(self.to_ne_bytes())
            }
        })*
    };
}
kernel_arg_number!(u32, i32, u64, i64, f32, f64);

/// A buffer is passed as its device address.
impl<T: DeviceCopy> KernelArg for &DeviceBuffer<T> {
    fn slot(&self) -> u64 {
        self.device_ptr()
    }
}

impl<T: DeviceCopy> KernelArg for &mut DeviceBuffer<T> {
    fn slot(&self) -> u64 {
        self.device_ptr()
    }
}

/// Mapped host memory is passed as the address the device reaches it at.
impl<T: DeviceCopy> KernelArg for &MappedHost<T> {
    fn slot(&self) -> u64 {
        self.device_ptr()
    }
}

impl<T: DeviceCopy> KernelArg for &mut MappedHost<T> {
    fn slot(&self) -> u64 {
        self.device_ptr()
    }
}

/// The arguments of one launch, in parameter order. Every parameter is at most 8 bytes
/// (numbers and device pointers), so each gets one 8-byte aligned slot that the runtime
/// reads the parameter's size from.
#[derive(Clone, Debug, Default)]
pub struct KernelArgs {
    slots: Vec<u64>,
}

impl KernelArgs {
    pub fn new() -> KernelArgs {
        KernelArgs::default()
    }

    pub fn push(&mut self, arg: impl KernelArg) -> &mut KernelArgs {
        self.slots.push(arg.slot());
        self
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// One pointer per slot, as `cuLaunchKernel`'s `kernelParams` wants; valid while
    /// `self` is borrowed. The runtime only reads through them.
    pub(crate) fn param_pointers(&self) -> Vec<*mut c_void> {
        self.slots
            .iter()
            .map(|slot| std::ptr::from_ref(slot).cast_mut().cast::<c_void>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_values_in_memory_order() {
        let mut args = KernelArgs::new();
        args.push(7u32).push(-1i32).push(1.5f32).push(u64::MAX);
        let read = |i: usize| {
            let p = args.param_pointers()[i].cast::<u8>();
            // SAFETY: each pointer addresses an 8-byte slot of `args`, alive here.
            unsafe { std::slice::from_raw_parts(p, 8) }.to_vec()
        };
        assert_eq!(read(0)[..4], 7u32.to_ne_bytes());
        assert_eq!(read(1)[..4], (-1i32).to_ne_bytes());
        assert_eq!(read(2)[..4], 1.5f32.to_ne_bytes());
        assert_eq!(read(3), u64::MAX.to_ne_bytes());
    }

    #[test]
    fn geometry_is_checked() {
        assert!(LaunchConfig::linear(1, 1024).validate().is_ok());
        assert!(LaunchConfig::linear(1, 1025).validate().is_err());
        assert!(LaunchConfig::linear(0, 64).validate().is_err());
        let config = LaunchConfig::for_elements(1000, 256, 2);
        assert_eq!((config.grid.x, config.block.x), (2, 256));
        assert_eq!(LaunchConfig::for_elements(0, 256, 8).grid.x, 1);
    }
}
