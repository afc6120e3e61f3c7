//! A step's inputs in device memory ([`Step`]'s buffers): sized once per context and
//! refreshed by one gather out of page-locked staging, one set of block tables per cache
//! (the full one, and the window layers' where the context has one).

use super::ops::GpuOps;
use super::safe::{Device, DeviceBuffer, STAGING_HEADER_BYTES, Stream, UploadSet, UploadStaging};
use crate::backend::{ContextSizes, Step, StepTables};
use crate::error::{Error, Result};

/// The step's inputs in device memory.
pub(super) struct DeviceStep {
    pub tokens: DeviceBuffer<i32>,
    pub positions: DeviceBuffer<i32>,
    pub seq_of_token: DeviceBuffer<u32>,
    pub full: DeviceTables,
    pub window: Option<DeviceTables>,
    /// Page-locked room for all of the above, so their gather is queued, not waited for.
    staging: UploadStaging,
    pub n_tokens: usize,
    pub n_outputs: usize,
    /// Host copy of which tokens want logits, for gathering their rows.
    pub output_tokens: Vec<u32>,
}

/// One cache's [`StepTables`] in device memory.
pub(super) struct DeviceTables {
    /// `[n_batch]`
    pub write_slots: DeviceBuffer<u32>,
    /// `[n_seq, max_blocks]`
    pub block_tables: DeviceBuffer<u32>,
    /// `[n_seq, max_blocks * block_size]`
    pub slot_positions: DeviceBuffer<i32>,
    /// `[n_seq]`
    pub n_logical: DeviceBuffer<u32>,
    pub max_blocks: usize,
}

/// Where each upload starts in the staging area: `UploadStaging`'s alignment, in 4-byte
/// values.
const UPLOAD_ALIGN_VALUES: u128 = 4;

impl DeviceStep {
    pub fn new(device: &Device, stream: &Stream, sizes: &ContextSizes) -> Result<DeviceStep> {
        let n_batch = sizes.n_batch;
        let staging_len = usize::try_from(staged_input_bytes(sizes))
            .map_err(|_| Error::DeviceOutOfMemory("the step's inputs overflow".into()))?;
        Ok(DeviceStep {
            staging: UploadStaging::new(stream, staging_len)?,
            tokens: device.alloc(n_batch)?,
            positions: device.alloc(n_batch)?,
            seq_of_token: device.alloc(n_batch)?,
            full: DeviceTables::new(device, sizes, sizes.n_slots)?,
            window: sizes
                .window
                .map(|w| DeviceTables::new(device, sizes, w.n_slots))
                .transpose()?,
            n_tokens: 0,
            n_outputs: 0,
            output_tokens: Vec::new(),
        })
    }

    /// Device bytes of the inputs (the staging buffer is host memory).
    pub fn device_bytes(&self) -> u64 {
        let tables = [Some(&self.full), self.window.as_ref()];
        [
            self.tokens.size_bytes(),
            self.positions.size_bytes(),
            self.seq_of_token.size_bytes(),
        ]
        .iter()
        .map(|&b| b as u64)
        .chain(tables.iter().flatten().map(|t| t.device_bytes()))
        .sum()
    }

    /// Page-locked host bytes of the staging area.
    pub fn staging_bytes(&self) -> usize {
        self.staging.size_bytes()
    }

    /// The tables of the window cache when `window_layer` and there is one, else the
    /// full cache's.
    pub fn tables(&self, window_layer: bool) -> &DeviceTables {
        match &self.window {
            Some(window) if window_layer => window,
            _ => &self.full,
        }
    }

    /// One token that wants its logits: the step a graph replays.
    pub fn is_decode(&self) -> bool {
        self.n_tokens == 1 && self.output_tokens == [0]
    }

    /// Whether the tokens that want logits are the first rows in order, so their rows
    /// need no gathering (always so in decode).
    pub fn outputs_are_leading_rows(&self) -> bool {
        self.output_tokens
            .iter()
            .enumerate()
            .all(|(i, &t)| t as usize == i)
    }

    /// Queues the gather of `step`'s inputs (after waiting for the previous step's gather
    /// to have read the staging area).
    pub fn upload(&mut self, stream: &Stream, ops: &GpuOps, step: &Step) -> Result<()> {
        let n = step.n_tokens;
        let window_blocks = step.window.as_ref().map(|w| w.max_blocks);
        if step.full.max_blocks != self.full.max_blocks
            || window_blocks != self.window.as_ref().map(|w| w.max_blocks)
        {
            return Err(Error::InvalidArgument(
                "the step's tables do not match this context's GPU state".into(),
            ));
        }
        let mut uploads = self.staging.begin(stream)?;
        uploads.upload(&step.tokens[..n], &mut self.tokens)?;
        uploads.upload(&step.positions[..n], &mut self.positions)?;
        uploads.upload(&step.seq_of_token[..n], &mut self.seq_of_token)?;
        self.full.upload(&mut uploads, &step.full, n)?;
        if let (Some(mine), Some(theirs)) = (&mut self.window, &step.window) {
            mine.upload(&mut uploads, theirs, n)?;
        }
        uploads.finish(|staged| ops.gather_staged(stream, staged))?;
        self.n_tokens = n;
        self.n_outputs = step.n_outputs;
        self.output_tokens.clear();
        self.output_tokens
            .extend_from_slice(&step.output_tokens[..step.n_outputs]);
        Ok(())
    }
}

impl DeviceTables {
    fn new(device: &Device, sizes: &ContextSizes, n_slots: usize) -> Result<DeviceTables> {
        let max_blocks = n_slots.div_ceil(sizes.block_size);
        let overflow = || Error::DeviceOutOfMemory("the step's block tables overflow".into());
        let table_len = sizes.n_seq.checked_mul(max_blocks).ok_or_else(overflow)?;
        let slots_len = table_len
            .checked_mul(sizes.block_size)
            .ok_or_else(overflow)?;
        Ok(DeviceTables {
            write_slots: device.alloc(sizes.n_batch)?,
            block_tables: device.alloc(table_len)?,
            slot_positions: device.alloc(slots_len)?,
            n_logical: device.alloc(sizes.n_seq)?,
            max_blocks,
        })
    }

    fn device_bytes(&self) -> u64 {
        [
            self.write_slots.size_bytes(),
            self.block_tables.size_bytes(),
            self.slot_positions.size_bytes(),
            self.n_logical.size_bytes(),
        ]
        .iter()
        .map(|&b| b as u64)
        .sum()
    }

    fn upload<'a>(
        &'a mut self,
        uploads: &mut UploadSet<'a>,
        tables: &StepTables,
        n_tokens: usize,
    ) -> Result<()> {
        uploads.upload(&tables.write_slots[..n_tokens], &mut self.write_slots)?;
        uploads.upload(&tables.block_tables, &mut self.block_tables)?;
        uploads.upload(&tables.slot_positions, &mut self.slot_positions)?;
        uploads.upload(&tables.n_logical, &mut self.n_logical)
    }
}

/// Every input of a step of `sizes`, as 4-byte values: three per token, and per cache a
/// write slot per token, the block tables with their slot positions and a length per
/// sequence.
pub(super) fn input_values(sizes: &ContextSizes) -> u128 {
    let u = |v: usize| v as u128;
    let tables = |n_slots: usize| {
        let max_blocks = n_slots.div_ceil(sizes.block_size);
        u(sizes.n_batch) + u(sizes.n_seq) * u(max_blocks) * u(sizes.block_size + 1) + u(sizes.n_seq)
    };
    3 * u(sizes.n_batch) + tables(sizes.n_slots) + sizes.window.map_or(0, |w| tables(w.n_slots))
}

/// The page-locked staging area for a step of `sizes`: the descriptions of its uploads,
/// then their values.
pub(super) fn staging_bytes(sizes: &ContextSizes) -> u128 {
    STAGING_HEADER_BYTES as u128 + staged_input_bytes(sizes)
}

/// A step's input values in the staging area, each upload starting aligned (three, and
/// four per cache).
fn staged_input_bytes(sizes: &ContextSizes) -> u128 {
    let n_uploads = 3 + 4 * (1 + u128::from(sizes.window.is_some()));
    4 * (input_values(sizes) + UPLOAD_ALIGN_VALUES * n_uploads)
}
