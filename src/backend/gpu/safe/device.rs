//! An opened GPU: the loaded driver, the device's context, its facts, its allocation
//! counters and whether it has been lost. Shared (`Clone` is an `Arc` clone) by every
//! buffer, stream and module made on it, so the context outlives them all.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::super::arch::{self, PciAddress};
use super::super::result::{Driver, DriverError, ErrorKind};
use super::super::sys::constants::Attribute;
use super::super::sys::{DeviceHandle, RawContext, Vendor};
use super::tracker::{MemoryStats, MemoryTracker};
use crate::error::{Error, Result};

/// What a device is, read from attribute and name queries when it is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFacts {
    pub vendor: Vendor,
    /// The vendor runtime's index for the device.
    pub ordinal: usize,
    /// The marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// `sm_90`, `gfx90a`; `None` for an AMD GPU whose KFD node could not be read.
    pub arch: Option<String>,
    /// NVIDIA's compute capability, or AMD's major and minor ISA version.
    pub compute_capability: (i32, i32),
    pub total_bytes: u64,
    /// Streaming multiprocessors (NVIDIA) or compute units (AMD).
    pub compute_units: u32,
    /// Lanes per warp or wavefront: 32 on NVIDIA, 32 or 64 on AMD.
    pub warp_size: u32,
    pub pci: PciAddress,
}

impl DeviceFacts {
    /// Queries a device without creating a context on it.
    pub fn query(
        driver: &Driver,
        ordinal: usize,
    ) -> Result<(DeviceHandle, DeviceFacts), DriverError> {
        let handle = driver.device_get(ordinal)?;
        let attribute = |a| driver.device_attribute(handle, a);
        let non_negative = |v: i32| u32::try_from(v).unwrap_or(0);
        let compute_capability = (
            attribute(Attribute::ComputeCapabilityMajor)?,
            attribute(Attribute::ComputeCapabilityMinor)?,
        );
        let pci = PciAddress {
            domain: non_negative(attribute(Attribute::PciDomainId)?),
            bus: non_negative(attribute(Attribute::PciBusId)?),
            device: non_negative(attribute(Attribute::PciDeviceId)?),
        };
        let arch = match driver.vendor() {
            Vendor::Cuda => Some(arch::cuda_arch(compute_capability.0, compute_capability.1)),
            Vendor::Hip => arch::amd_arch_from_kfd(Path::new(arch::KFD_TOPOLOGY), pci),
        };
        let facts = DeviceFacts {
            vendor: driver.vendor(),
            ordinal,
            name: driver.device_name(handle)?,
            arch,
            compute_capability,
            total_bytes: driver.device_total_mem(handle)?,
            compute_units: non_negative(attribute(Attribute::MultiprocessorCount)?),
            warp_size: non_negative(attribute(Attribute::WarpSize)?),
            pci,
        };
        Ok((handle, facts))
    }
}

/// Free and total memory as the runtime reports it (other processes included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryInfo {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// An opened GPU. Cheap to clone; every clone is the same device with the same counters.
#[derive(Clone)]
pub struct Device {
    shared: Arc<DeviceShared>,
}

struct DeviceShared {
    driver: &'static Driver,
    handle: DeviceHandle,
    /// CUDA's primary context, retained while this device is open; NULL for HIP.
    context: RawContext,
    facts: DeviceFacts,
    tracker: MemoryTracker,
    /// Set by the first call that corrupted the context; every later call fails with it.
    lost: OnceLock<String>,
}

// SAFETY: the only non-thread-safe-looking field is the context pointer, which is passed
// to the driver and never dereferenced here; the vendors document contexts as usable
// from any thread (each call binds it to the calling thread first).
unsafe impl Send for DeviceShared {}
// SAFETY: as above; all other fields are `Sync`.
unsafe impl Sync for DeviceShared {}

impl Drop for DeviceShared {
    fn drop(&mut self) {
        // Everything made on the device holds a clone, so nothing uses the context now.
        // SAFETY: balances the retain in `Device::open`.
        let _ = unsafe { self.driver.context_release(self.handle) };
    }
}

impl Device {
    /// Opens device `ordinal` of `vendor`'s runtime, loading the runtime on first use.
    pub fn open(vendor: Vendor, ordinal: usize) -> Result<Device> {
        Device::open_with_limit(vendor, ordinal, None)
    }

    /// [`Device::open`], with the buffers allocated through this handle (and its clones)
    /// held under `limit` bytes in all: an allocation that would pass it fails with
    /// [`Error::DeviceOutOfMemory`]. The vendor libraries' own workspaces and the
    /// kernels' code are not counted.
    pub fn open_with_limit(vendor: Vendor, ordinal: usize, limit: Option<u64>) -> Result<Device> {
        let driver = Driver::load(vendor)?;
        if ordinal >= driver.device_count() {
            return Err(Error::InvalidArgument(format!(
                "{vendor} device {ordinal} does not exist ({} found)",
                driver.device_count()
            )));
        }
        let (handle, facts) = DeviceFacts::query(driver, ordinal)?;
        let context = driver.context_acquire(handle)?;
        Ok(Device {
            shared: Arc::new(DeviceShared {
                driver,
                handle,
                context,
                facts,
                tracker: MemoryTracker::with_limit(limit),
                lost: OnceLock::new(),
            }),
        })
    }

    pub fn facts(&self) -> &DeviceFacts {
        &self.shared.facts
    }

    pub fn vendor(&self) -> Vendor {
        self.shared.facts.vendor
    }

    /// The loaded runtime's version.
    pub fn driver_version(&self) -> super::super::result::DriverVersion {
        self.shared.driver.version()
    }

    /// Allocations made through this device (and its clones) so far.
    pub fn memory_stats(&self) -> MemoryStats {
        self.shared.tracker.stats()
    }

    pub fn memory_info(&self) -> Result<MemoryInfo> {
        // SAFETY: `run` made the device current.
        let (free_bytes, total_bytes) = self.run(|driver| unsafe { driver.mem_get_info() })?;
        Ok(MemoryInfo {
            free_bytes,
            total_bytes,
        })
    }

    /// Why the device is unusable, once a call has corrupted its context.
    pub fn lost_reason(&self) -> Option<&str> {
        self.shared.lost.get().map(String::as_str)
    }

    /// Whether two handles name the same physical device (and so the same context).
    pub fn same_device(&self, other: &Device) -> bool {
        self.vendor() == other.vendor() && self.facts().ordinal == other.facts().ordinal
    }

    /// Runs driver calls with the device current on this thread. A device already lost
    /// fails at once with the first loss; a call that loses it records why.
    pub(crate) fn run<T>(
        &self,
        calls: impl FnOnce(&'static Driver) -> Result<T, DriverError>,
    ) -> Result<T> {
        if let Some(reason) = self.lost_reason() {
            return Err(Error::DeviceLost(reason.to_owned()));
        }
        let driver = self.shared.driver;
        // SAFETY: the context is retained until `DeviceShared` drops, after this call.
        let bound = unsafe { driver.make_current(self.shared.handle, self.shared.context) };
        self.check(bound.and_then(|()| calls(driver)))
    }

    /// Converts the result of a call made on this device, marking the device lost when
    /// the call corrupted its context.
    pub(crate) fn check<T>(&self, result: Result<T, DriverError>) -> Result<T> {
        result.map_err(|e| {
            if e.kind() == ErrorKind::DeviceLost {
                let reason = format!("{} device {}: {e}", e.vendor, self.facts().ordinal);
                let _ = self.shared.lost.set(reason);
            }
            Error::from(e)
        })
    }

    /// For destructors: the calls run unless the device is lost (a lost context refuses
    /// everything, and the vendor reclaims its resources with it). `Ok(false)` means
    /// skipped.
    pub(crate) fn run_cleanup(
        &self,
        calls: impl FnOnce(&'static Driver) -> Result<(), DriverError>,
    ) -> Result<bool> {
        if self.lost_reason().is_some() {
            return Ok(false);
        }
        self.run(calls).map(|()| true)
    }

    /// Lets this device read and write `peer`'s memory directly (a layer split's copies
    /// then go over NVLink, xGMI or PCIe peer to peer instead of through the host), where
    /// the hardware allows: whether it does. A device is always its own peer.
    pub fn enable_peer_access(&self, peer: &Device) -> Result<bool> {
        if self.same_device(peer) {
            return Ok(true);
        }
        if self.vendor() != peer.vendor() {
            return Ok(false);
        }
        let (handle, peer_parts) = (self.shared.handle, peer.raw_parts());
        // SAFETY: `run` made this device current; `peer`'s context stays retained while
        // `peer` lives, which outlasts the call.
        self.run(|driver| unsafe { driver.enable_peer_access(handle, peer_parts) })
    }

    /// The device's handle and context, for a call that names two devices (a copy
    /// between them).
    pub(crate) fn raw_parts(&self) -> (DeviceHandle, RawContext) {
        (self.shared.handle, self.shared.context)
    }

    pub(crate) fn tracker(&self) -> &MemoryTracker {
        &self.shared.tracker
    }

    /// Whether the runtime lacks graph capture, and which entry point it is missing.
    pub(crate) fn missing_graph_entry_point(&self) -> Option<&'static str> {
        self.shared.driver.missing_graph_entry_point()
    }

    /// Whether the runtime can launch a kernel to overlap the one before it.
    pub(crate) fn can_overlap_launches(&self) -> bool {
        self.shared.driver.can_overlap_launches()
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let facts = self.facts();
        write!(
            f,
            "Device({} {}: {})",
            facts.vendor, facts.ordinal, facts.name
        )
    }
}
