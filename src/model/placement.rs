//! Which device holds a model's weights and runs its forward pass.

use crate::backend::devices::cpu_report;
use crate::backend::{DeviceChoice, DeviceKind, DeviceReport, choose};
use crate::error::{Error, Result};

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

    /// The device `choice` selects from `devices`, and a note for the log when the choice
    /// was automatic and fell back. The forward pass runs on the CPU only in this build:
    /// a GPU asked for by index is `Unsupported`; `Auto` falls back to the CPU and says why.
    pub fn choose(
        devices: &[DeviceReport],
        choice: DeviceChoice,
    ) -> Result<(Placement, Option<String>)> {
        let index = choose(devices, choice)?;
        let chosen = &devices[index];
        if chosen.kind == DeviceKind::Cpu {
            return Ok((Placement::cpu(), None));
        }
        let why = format!(
            "{} ({}) is usable, but this build runs the forward pass on the CPU only",
            chosen.name, chosen.arch
        );
        match choice {
            DeviceChoice::Auto => Ok((Placement::cpu(), Some(why))),
            DeviceChoice::Index(_) => Err(Error::Unsupported(why)),
        }
    }
}
