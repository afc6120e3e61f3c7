//! Backends: where a forward pass runs. [`Backend`] is the boundary (the steps of a
//! transformer layer); `cpu/` implements it today and is the oracle for every other
//! backend; `gpu/` holds the GPU runtime its backend will run on. [`Step`] carries one
//! step's inputs.

mod boundary;
pub mod cpu;
pub mod devices;
pub mod gpu;
mod step;

pub use boundary::{Act, Backend, BackendMemory, Rope, RopeStyle, Shape};
pub use devices::{DeviceChoice, DeviceKind, DeviceReport, choose, enumerate};
pub use step::{EMPTY_SLOT, Step, VisibleSlots};
