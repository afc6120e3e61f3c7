//! The devices a model can run on, for `rf_device_count` / `rf_device_info` and for
//! choosing one: the CPU first, then every GPU each vendor runtime reports, with why a
//! GPU cannot be used when it cannot.

use super::cpu::SimdLevel;
use super::gpu::{Device, Vendor, gpu_reports};
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Cpu,
    Hip,
    Cuda,
}

/// One entry of the device list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceReport {
    pub kind: DeviceKind,
    /// The vendor runtime's index for a GPU; 0 for the CPU.
    pub ordinal: usize,
    pub name: String,
    /// `gfx90a`, `sm_90`; the instruction set for the CPU (`x86_64+avx2`); `unknown` when an
    /// AMD GPU's target could not be read.
    pub arch: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Multiprocessors or compute units; CPU threads for the CPU.
    pub compute_units: u32,
    /// Lanes per warp; 1 for the CPU.
    pub warp_size: u32,
    pub usable: bool,
    pub why_unusable: Option<String>,
}

impl DeviceReport {
    /// Opens the GPU this entry describes.
    pub fn open(&self) -> Result<Device> {
        self.open_with_limit(None)
    }

    /// Opens the GPU this entry describes, its buffers held under `limit` bytes (see
    /// [`Device::open_with_limit`]).
    pub fn open_with_limit(&self, limit: Option<u64>) -> Result<Device> {
        let vendor = match self.kind {
            DeviceKind::Hip => Vendor::Hip,
            DeviceKind::Cuda => Vendor::Cuda,
            DeviceKind::Cpu => {
                return Err(Error::InvalidArgument("the CPU is not a GPU device".into()));
            }
        };
        Device::open_with_limit(vendor, self.ordinal, limit)
    }

    /// This entry with its free memory read again: it changes as models load, in this
    /// process and in others. A GPU that cannot be opened now keeps the figure it had.
    pub fn with_current_free_bytes(&self) -> DeviceReport {
        let mut report = self.clone();
        match self.kind {
            DeviceKind::Cpu => report.free_bytes = meminfo_bytes(&meminfo(), "MemAvailable"),
            DeviceKind::Hip | DeviceKind::Cuda if self.usable => {
                if let Ok(info) = self.open().and_then(|device| device.memory_info()) {
                    report.free_bytes = info.free_bytes;
                }
            }
            DeviceKind::Hip | DeviceKind::Cuda => {}
        }
        report
    }
}

/// The CPU (index 0), then the GPUs of every runtime that starts (HIP's, then CUDA's).
/// Never fails: a runtime that does not start contributes no entries (see
/// [`gpu::runtimes`](super::gpu::runtimes)), and a GPU that cannot be used is listed with
/// the reason.
pub fn enumerate() -> Vec<DeviceReport> {
    let mut reports = vec![cpu_report()];
    reports.extend(gpu_reports());
    reports
}

/// The CPU's entry, device 0 of every list.
pub fn cpu_report() -> DeviceReport {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or_else(|| "CPU".to_owned(), |(_, model)| model.trim().to_owned());
    let meminfo = meminfo();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    DeviceReport {
        kind: DeviceKind::Cpu,
        ordinal: 0,
        name,
        arch: match SimdLevel::detect() {
            SimdLevel::Avx2 => format!("{}+avx2", std::env::consts::ARCH),
            SimdLevel::Scalar => std::env::consts::ARCH.to_owned(),
        },
        total_bytes: meminfo_bytes(&meminfo, "MemTotal"),
        free_bytes: meminfo_bytes(&meminfo, "MemAvailable"),
        compute_units: u32::try_from(threads).unwrap_or(u32::MAX),
        warp_size: 1,
        usable: true,
        why_unusable: None,
    }
}

/// The kernel's memory figures; empty where there are none.
fn meminfo() -> String {
    std::fs::read_to_string("/proc/meminfo").unwrap_or_default()
}

/// Bytes of `/proc/meminfo`'s `key` line (given in KiB); 0 when it is missing.
fn meminfo_bytes(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// Which device a model should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The usable GPU with the most memory (then the most compute units, then the lowest
    /// index); the CPU when no GPU is usable.
    Auto,
    /// An index into [`enumerate`]'s list.
    Index(usize),
}

/// The index in `reports` that `choice` selects; an error when it names a device that
/// does not exist or cannot be used.
pub fn choose(reports: &[DeviceReport], choice: DeviceChoice) -> Result<usize> {
    match choice {
        DeviceChoice::Auto => Ok(reports
            .iter()
            .enumerate()
            .filter(|(_, r)| r.usable && r.kind != DeviceKind::Cpu)
            // `max_by_key` keeps the last maximum; reversing makes ties go to the first.
            .rev()
            .max_by_key(|(_, r)| (r.total_bytes, r.compute_units))
            .map_or(0, |(index, _)| index)),
        DeviceChoice::Index(index) => {
            let report = reports.get(index).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "device {index} does not exist ({} devices)",
                    reports.len()
                ))
            })?;
            if report.usable {
                Ok(index)
            } else {
                Err(Error::Device(format!(
                    "device {index} ({}) cannot be used: {}",
                    report.name,
                    report.why_unusable.as_deref().unwrap_or("unknown reason")
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(total_gib: u64, compute_units: u32, usable: bool) -> DeviceReport {
        DeviceReport {
            kind: DeviceKind::Cuda,
            ordinal: 0,
            name: "gpu".into(),
            arch: "sm_90".into(),
            total_bytes: total_gib << 30,
            free_bytes: 0,
            compute_units,
            warp_size: 32,
            usable,
            why_unusable: (!usable).then(|| "no kernels".into()),
        }
    }

    #[test]
    fn auto_prefers_the_biggest_usable_gpu_and_falls_back_to_the_cpu() {
        let cpu = cpu_report();
        assert_eq!(
            choose(std::slice::from_ref(&cpu), DeviceChoice::Auto).unwrap(),
            0
        );
        let list = [
            cpu.clone(),
            gpu(80, 132, true),
            gpu(141, 132, false),
            gpu(141, 132, true),
        ];
        assert_eq!(choose(&list, DeviceChoice::Auto).unwrap(), 3);
        let ties = [cpu.clone(), gpu(80, 132, true), gpu(80, 132, true)];
        assert_eq!(choose(&ties, DeviceChoice::Auto).unwrap(), 1);
        let none_usable = [cpu, gpu(80, 132, false)];
        assert_eq!(choose(&none_usable, DeviceChoice::Auto).unwrap(), 0);
    }

    #[test]
    fn an_index_must_exist_and_be_usable() {
        let list = [cpu_report(), gpu(80, 132, false)];
        assert_eq!(choose(&list, DeviceChoice::Index(0)).unwrap(), 0);
        assert!(matches!(
            choose(&list, DeviceChoice::Index(1)),
            Err(Error::Device(m)) if m.contains("no kernels")
        ));
        assert!(matches!(
            choose(&list, DeviceChoice::Index(2)),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_cpu_is_described() {
        let cpu = cpu_report();
        assert_eq!(cpu.kind, DeviceKind::Cpu);
        assert!(cpu.usable && cpu.compute_units >= 1 && !cpu.name.is_empty());
    }
}
