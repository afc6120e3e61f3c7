//! Backends: where a forward pass runs. [`Backend`] is the boundary (the steps of a
//! transformer layer); `cpu/` implements it and is the oracle for every other backend;
//! `gpu/` implements it on HIP or CUDA. [`BackendState`] is a context's state on either,
//! [`Step`] one step's inputs, `devices` the list a model's device is chosen from.

mod boundary;
pub mod cpu;
pub mod devices;
pub mod gpu;
mod kv_type;
mod state;
mod step;

pub use boundary::{
    Act, Backend, BackendMemory, ContextSizes, Rope, RopeStyle, Shape, WindowSizes,
    is_window_layer, saturating_bytes,
};
pub use devices::{DeviceChoice, DeviceKind, DeviceReport, choose, enumerate};
pub use kv_type::KvType;
pub(crate) use kv_type::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
pub(crate) use state::check_row_bytes;
pub use state::{BackendState, KvRowSlots};
pub use step::{EMPTY_SLOT, Step, StepTables, VisibleSlots};
