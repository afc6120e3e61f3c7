//! One context's state on whichever backend its model runs on: the closed set of
//! backends, so call sites carry no `#[cfg]` and no generic parameter.

use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::{Backend, BackendMemory, Step};
use crate::error::Result;

/// Boxed: a context holds one for its life, and the two differ in size.
pub enum BackendState {
    Cpu(Box<CpuBackend>),
    Gpu(Box<GpuBackend>),
}

impl BackendState {
    pub fn begin_step(&mut self, step: &Step) -> Result<()> {
        match self {
            BackendState::Cpu(b) => b.begin_step(step),
            BackendState::Gpu(b) => b.begin_step(step),
        }
    }

    pub fn logits(&self) -> &[f32] {
        match self {
            BackendState::Cpu(b) => b.logits(),
            BackendState::Gpu(b) => b.logits(),
        }
    }

    /// What runs the products of large batches, where the backend has a choice.
    pub fn prefill_products(&self) -> Option<&str> {
        match self {
            BackendState::Cpu(_) => None,
            BackendState::Gpu(b) => Some(b.prefill_products()),
        }
    }

    pub fn memory(&self) -> BackendMemory {
        match self {
            BackendState::Cpu(b) => b.memory(),
            BackendState::Gpu(b) => b.memory(),
        }
    }
}
