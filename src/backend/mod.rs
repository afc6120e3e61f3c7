//! Backends: the operations a forward pass runs, on the CPU today and on GPUs as their
//! issues land.

pub mod cpu;
pub mod gpu;
