//! The GPUs each vendor runtime reports, for the device list (`backend::devices`), and
//! each runtime's state.

use super::kernels;
use super::result::{Driver, DriverVersion};
use super::safe::{Device, DeviceFacts};
use super::sys::Vendor;
use crate::backend::devices::{DeviceKind, DeviceReport};

impl From<Vendor> for DeviceKind {
    fn from(vendor: Vendor) -> DeviceKind {
        match vendor {
            Vendor::Hip => DeviceKind::Hip,
            Vendor::Cuda => DeviceKind::Cuda,
        }
    }
}

/// Whether a vendor runtime started, and why not when it did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeReport {
    pub vendor: Vendor,
    /// The library that was opened.
    pub library: Option<String>,
    pub version: Option<DriverVersion>,
    pub devices: usize,
    /// Missing library or symbol, no device, driver too old…
    pub problem: Option<String>,
}

/// Each vendor runtime's state. Loading is attempted (and succeeds only once per process).
pub fn runtimes() -> Vec<RuntimeReport> {
    Vendor::ALL
        .into_iter()
        .map(|vendor| match Driver::load(vendor) {
            Ok(driver) => RuntimeReport {
                vendor,
                library: Some(driver.library().to_owned()),
                version: Some(driver.version()),
                devices: driver.device_count(),
                problem: None,
            },
            Err(e) => RuntimeReport {
                vendor,
                library: None,
                version: None,
                devices: 0,
                problem: Some(e.to_string()),
            },
        })
        .collect()
}

/// The GPUs of every runtime that starts (HIP's, then CUDA's), usable or not.
pub fn gpu_reports() -> Vec<DeviceReport> {
    let mut reports = Vec::new();
    for vendor in Vendor::ALL {
        if let Ok(driver) = Driver::load(vendor) {
            reports.extend((0..driver.device_count()).map(|ordinal| gpu_report(driver, ordinal)));
        }
    }
    reports
}

fn gpu_report(driver: &'static Driver, ordinal: usize) -> DeviceReport {
    let kind = DeviceKind::from(driver.vendor());
    let facts = match DeviceFacts::query(driver, ordinal) {
        Ok((_, facts)) => facts,
        Err(e) => {
            return DeviceReport {
                kind,
                ordinal,
                name: "unknown".into(),
                arch: "unknown".into(),
                total_bytes: 0,
                free_bytes: 0,
                compute_units: 0,
                warp_size: 0,
                usable: false,
                why_unusable: Some(e.to_string()),
            };
        }
    };
    let mut why_unusable = kernels::check_device(&facts, driver.version()).err();
    // Free memory needs the device's context, which also proves the device can be opened.
    let free_bytes = match Device::open(driver.vendor(), ordinal).and_then(|d| d.memory_info()) {
        Ok(info) => info.free_bytes,
        Err(e) => {
            why_unusable.get_or_insert_with(|| e.to_string());
            0
        }
    };
    DeviceReport {
        kind,
        ordinal,
        name: facts.name,
        arch: facts.arch.unwrap_or_else(|| "unknown".into()),
        total_bytes: facts.total_bytes,
        free_bytes,
        compute_units: facts.compute_units,
        warp_size: facts.warp_size,
        usable: why_unusable.is_none(),
        why_unusable,
    }
}
