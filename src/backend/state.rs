//! One context's state on whichever backend its model runs on: the closed set of
//! backends, so call sites carry no `#[cfg]` and no generic parameter.

use super::cpu::CpuBackend;
use super::gpu::GpuParts;
use super::{Backend, BackendMemory, ContextSizes, Step};
use crate::error::{Error, Result};

/// Boxed: a context holds one for its life, and the two differ in size.
pub enum BackendState {
    Cpu(Box<CpuBackend>),
    /// On one GPU or a layer split's several.
    Gpu(Box<GpuParts>),
}

impl BackendState {
    pub fn begin_step(&mut self, step: &Step) -> Result<()> {
        match self {
            BackendState::Cpu(b) => b.begin_step(step),
            BackendState::Gpu(b) => b.begin_step(step),
        }
    }

    /// `[n_outputs, n_vocab]`: the logits of the last step's tokens that asked for them
    /// (a GPU copies them from the device on the first call after a step).
    pub fn logits(&mut self) -> Result<&[f32]> {
        match self {
            BackendState::Cpu(b) => Ok(b.logits()),
            BackendState::Gpu(b) => b.logits(),
        }
    }

    /// `[n_outputs, n_embd]`: the last step's outputs after the output norm, the
    /// head's input (llama.cpp's embeddings). A GPU copies them on the first call after a
    /// step.
    pub fn embeddings(&mut self) -> Result<&[f32]> {
        match self {
            BackendState::Cpu(b) => Ok(b.embeddings()),
            BackendState::Gpu(b) => b.embeddings(),
        }
    }

    /// `[n_outputs]`: each output's argmax where the backend computed it beside the
    /// logits (a GPU, so a greedy step copies back 4 bytes, not the vocabulary); `None`
    /// where the logits are at hand anyway (the CPU).
    pub fn argmax(&self) -> Option<&[i32]> {
        match self {
            BackendState::Cpu(_) => None,
            BackendState::Gpu(b) => Some(b.argmax()),
        }
    }

    /// What runs the products of large batches, where the backend has a choice.
    pub fn prefill_products(&self) -> Option<&str> {
        match self {
            BackendState::Cpu(_) => None,
            BackendState::Gpu(b) => Some(b.prefill_products()),
        }
    }

    /// Reads the K and V of `slots` into `out`, `[n_layer][K, V][the layer's slots]` rows
    /// of `kv_dim` values as the cache's [`KvType`](crate::backend::KvType) stores them:
    /// layer by layer, the K rows of the slots of the cache that layer reads in order,
    /// then their V rows. `out` holds exactly that many bytes; every slot is one of its
    /// cache's.
    pub fn read_kv_rows(&mut self, slots: &KvRowSlots<'_>, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        match self {
            BackendState::Cpu(b) => b.read_kv_rows(slots, out),
            BackendState::Gpu(b) => b.read_kv_rows(slots, out),
        }
    }

    /// Writes rows laid out as [`BackendState::read_kv_rows`] gives them into `slots`.
    pub fn write_kv_rows(&mut self, slots: &KvRowSlots<'_>, rows: &[u8]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            BackendState::Cpu(b) => b.write_kv_rows(slots, rows),
            BackendState::Gpu(b) => b.write_kv_rows(slots, rows),
        }
    }

    pub fn memory(&self) -> BackendMemory {
        match self {
            BackendState::Cpu(b) => b.memory(),
            BackendState::Gpu(b) => b.memory(),
        }
    }
}

/// The slots whose K/V rows are read or written, in each cache: a layer's rows are those
/// of the slots of the cache it reads.
#[derive(Clone, Copy, Debug)]
pub struct KvRowSlots<'a> {
    pub full: &'a [u32],
    /// The same tokens' slots in the window layers' cache (ignored without one).
    pub window: &'a [u32],
}

impl<'a> KvRowSlots<'a> {
    /// The slots of a layer that reads the window cache (`window`) or the full one.
    pub fn of_layer(&self, window: bool) -> &'a [u32] {
        if window { self.window } else { self.full }
    }
}

/// `Ok` when `len` bytes are the K and V rows of `slots` of `row_bytes` each in
/// `n_layer` layers, as [`BackendState::read_kv_rows`] lays them out for a context of
/// `sizes`.
pub(crate) fn check_row_bytes(
    sizes: &ContextSizes,
    n_layer: usize,
    row_bytes: usize,
    slots: &KvRowSlots<'_>,
    len: usize,
) -> Result<()> {
    let rows: u128 = (0..n_layer)
        .map(|layer| 2 * slots.of_layer(sizes.reads_window(layer)).len() as u128)
        .sum();
    if rows * row_bytes as u128 != len as u128 {
        return Err(Error::InvalidArgument(format!(
            "{len} bytes for {rows} K/V rows of {row_bytes} bytes"
        )));
    }
    Ok(())
}
