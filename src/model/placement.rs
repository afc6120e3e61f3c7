//! Which device holds a model's weights and runs its forward pass.

use crate::backend::devices::cpu_report;
use crate::backend::{DeviceChoice, DeviceReport, choose};
use crate::error::Result;

/// The device a model was placed on: its entry in the device list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index in the device list (`backend::enumerate`, `rf_device_info`); 0 is the CPU.
    pub index: usize,
    pub device: DeviceReport,
}

impl Placement {
    /// The CPU, device 0 of every device list.
    pub fn cpu() -> Placement {
        Placement {
            index: 0,
            device: cpu_report(),
        }
    }

    /// The device `choice` selects from `devices`: `Auto` takes the best usable GPU, else
    /// the CPU; an index must name a usable device.
    pub fn choose(devices: &[DeviceReport], choice: DeviceChoice) -> Result<Placement> {
        let index = choose(devices, choice)?;
        Ok(Placement {
            index,
            device: devices[index].clone(),
        })
    }
}
