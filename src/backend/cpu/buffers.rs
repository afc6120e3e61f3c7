//! The activation buffers of a step on the host, one per [`Act`], each sized for
//! `n_batch` tokens.

use crate::backend::{Act, Shape};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;

pub struct Buffers {
    /// Indexed by `Act as usize`: `[n_batch, shape.width(act)]` each.
    buffers: [Vec<f32>; Act::ALL.len()],
}

impl Buffers {
    pub fn new(shape: &Shape, n_batch: usize) -> Result<Buffers> {
        let what = format!("working memory for batches of {n_batch} tokens");
        let mut buffers: [Vec<f32>; Act::ALL.len()] = Default::default();
        for act in Act::ALL {
            let len = n_batch
                .checked_mul(shape.width(act))
                .ok_or_else(|| Error::OutOfMemory(format!("{what} overflows")))?;
            buffers[act as usize] = filled_vec(len, 0.0f32, &what)?;
        }
        Ok(Buffers { buffers })
    }

    pub fn get(&self, act: Act) -> &[f32] {
        &self.buffers[act as usize]
    }

    pub fn get_mut(&mut self, act: Act) -> &mut [f32] {
        &mut self.buffers[act as usize]
    }

    /// Moves a buffer out, so that several can be borrowed at once; give it back with
    /// [`Buffers::put`]. Moving a `Vec` allocates nothing.
    pub fn take(&mut self, act: Act) -> Vec<f32> {
        std::mem::take(&mut self.buffers[act as usize])
    }

    pub fn put(&mut self, act: Act, buffer: Vec<f32>) {
        self.buffers[act as usize] = buffer;
    }

    pub fn bytes(&self) -> u64 {
        let floats: usize = self.buffers.iter().map(Vec::capacity).sum();
        (floats * size_of::<f32>()) as u64
    }
}
