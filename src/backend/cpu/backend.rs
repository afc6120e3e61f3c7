//! The CPU implementation of the backend boundary: one context's K/V storage, activation
//! buffers and step inputs on the host, and the worker pool its matmuls and attention
//! run on.

use std::sync::Mutex;

use super::attention::{AttentionScratch, Layer, attention};
use super::buffers::Buffers;
use super::kv_storage::KvStorage;
use super::lock;
use super::matmul::CpuMatmul;
use super::ops::{RopeAngles, add_assign, geglu, rms_norm, rms_norm_in_place, rope, swiglu};
use crate::backend::{
    Act, Backend, BackendMemory, ContextSizes, KvRowSlots, Rope, Shape, Step, check_row_bytes,
    saturating_bytes,
};
use crate::error::{Error, Result};
use crate::host_memory::resize;
use crate::tensor::{WeightMatrix, dequantize_row};

/// Below this many values an element-wise pass runs on the calling thread: waking the pool
/// costs more than it saves.
const PARALLEL_ELEMENTWISE: usize = 1 << 14;

/// The most parts an element-wise pass is split into.
const MAX_PARTS: usize = 16;

pub struct CpuBackend {
    shape: Shape,
    /// Which layers read the window cache.
    sizes: ContextSizes,
    matmul: CpuMatmul,
    kv: KvStorage,
    acts: Buffers,
    /// This step's inputs, copied in by `begin_step`.
    step: Step,
    /// `[n_outputs, n_vocab]`
    logits: Vec<f32>,
    /// Kept from step to step, so that a decode step allocates nothing.
    attention: AttentionScratch,
    rope_angles: RopeAngles,
}

impl CpuBackend {
    /// `Gate = activation(Gate) * Up` over the step's tokens.
    fn gate_with_up(&mut self, activation: fn(&mut [f32], &[f32])) {
        let n = self.step.n_tokens * self.shape.n_ff;
        let up = self.acts.take(Act::Up);
        let gate = &mut self.acts.get_mut(Act::Gate)[..n];
        let n_parts = self.matmul.n_threads().min(MAX_PARTS);
        if n < PARALLEL_ELEMENTWISE || n_parts < 2 {
            activation(gate, &up[..n]);
        } else {
            // Value by value, so the split changes no result.
            let part_len = n.div_ceil(n_parts);
            let mut gate_parts = gate.chunks_mut(part_len);
            let parts: [Mutex<Option<&mut [f32]>>; MAX_PARTS] =
                std::array::from_fn(|_| Mutex::new(gate_parts.next()));
            self.matmul.run_parallel(n_parts, &|i| {
                if let Some(gate) = lock(&parts[i]).as_deref_mut() {
                    activation(gate, &up[i * part_len..][..gate.len()]);
                }
            });
        }
        self.acts.put(Act::Up, up);
    }

    /// State for a context of `sizes`, with a pool of `n_threads` threads.
    pub fn new(shape: Shape, sizes: &ContextSizes, n_threads: usize) -> Result<CpuBackend> {
        let ContextSizes {
            n_slots, n_batch, ..
        } = *sizes;
        let window_slots = sizes.window.map(|w| w.n_slots);
        Ok(CpuBackend {
            kv: KvStorage::new(&shape, sizes)?,
            acts: Buffers::new(&shape, n_batch)?,
            step: Step::new(
                n_batch,
                sizes.n_seq,
                n_slots,
                sizes.block_size,
                window_slots,
            )?,
            sizes: *sizes,
            matmul: CpuMatmul::new(n_threads)?,
            logits: Vec::new(),
            attention: AttentionScratch::new(n_threads, n_slots)?,
            rope_angles: RopeAngles::default(),
            shape,
        })
    }

    /// What [`CpuBackend::new`] allocates, as [`Backend::memory`] reports it once a step
    /// has produced `n_outputs` logit rows: the K/V storage, the activation buffers, the
    /// logits. Computed from the sizes alone, for estimates before loading.
    pub fn planned_memory(shape: &Shape, sizes: &ContextSizes, n_outputs: usize) -> BackendMemory {
        let kv_bytes = KvStorage::bytes_for(shape, sizes);
        let logits = 4 * (n_outputs * shape.n_vocab) as u128;
        let host = u128::from(kv_bytes) + shape.activation_bytes(sizes.n_batch) + logits;
        BackendMemory {
            kv_bytes,
            host_bytes: saturating_bytes(host),
            device_bytes: 0,
        }
    }

    /// `[n_outputs, n_vocab]`: the logits of the last step's tokens that asked for them.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// `[n_outputs, n_embd]`: the last step's output rows after the output norm (the
    /// head's input), which stay in the normalised activation buffer until the next step.
    pub fn embeddings(&self) -> &[f32] {
        let n = self.step.n_outputs * self.shape.n_embd;
        &self.acts.get(Act::Xn)[..n]
    }

    /// See [`crate::backend::BackendState::read_kv_rows`].
    pub fn read_kv_rows(&self, slots: &KvRowSlots<'_>, out: &mut [u8]) -> Result<()> {
        self.check_row_bytes(slots, out.len())?;
        self.kv.read_rows(slots, out);
        Ok(())
    }

    /// See [`crate::backend::BackendState::write_kv_rows`].
    pub fn write_kv_rows(&mut self, slots: &KvRowSlots<'_>, rows: &[u8]) -> Result<()> {
        self.check_row_bytes(slots, rows.len())?;
        self.kv.write_rows(slots, rows);
        Ok(())
    }

    fn check_row_bytes(&self, slots: &KvRowSlots<'_>, len: usize) -> Result<()> {
        let row_bytes = self.sizes.kv_type.bytes(self.shape.kv_dim());
        check_row_bytes(&self.sizes, self.shape.n_layer, row_bytes, slots, len)
    }
}

impl Backend for CpuBackend {
    type Matrix<'w> = WeightMatrix<'w>;
    type Vector = Vec<f32>;

    fn begin_step(&mut self, step: &Step) -> Result<()> {
        let n = step.n_tokens;
        let s = &mut self.step;
        if step.full.max_blocks != s.full.max_blocks
            || step.window.as_ref().map(|w| w.max_blocks) != s.window.as_ref().map(|w| w.max_blocks)
        {
            return Err(Error::InvalidArgument(
                "the step's tables do not match this context's CPU state".into(),
            ));
        }
        s.n_tokens = n;
        s.tokens[..n].copy_from_slice(&step.tokens[..n]);
        s.positions[..n].copy_from_slice(&step.positions[..n]);
        s.seq_of_token[..n].copy_from_slice(&step.seq_of_token[..n]);
        s.n_outputs = step.n_outputs;
        s.output_tokens[..step.n_outputs].copy_from_slice(&step.output_tokens[..step.n_outputs]);
        let seqs = &step.seq_of_token[..n];
        s.full.copy_from(&step.full, n, seqs);
        if let (Some(mine), Some(theirs)) = (&mut s.window, &step.window) {
            mine.copy_from(theirs, n, seqs);
        }
        for (window, tables) in [(false, Some(&s.full)), (true, s.window.as_ref())] {
            let Some(tables) = tables else { continue };
            let block = tables.block_size;
            for &(src, dst) in &tables.block_copies {
                self.kv
                    .copy_slots(window, src as usize * block, dst as usize * block, block);
            }
        }
        Ok(())
    }

    fn embed(&mut self, table: &WeightMatrix<'_>) -> Result<()> {
        let d = self.shape.n_embd;
        let x = self.acts.get_mut(Act::X);
        for (t, &token) in self.step.tokens[..self.step.n_tokens].iter().enumerate() {
            let row = usize::try_from(token)
                .ok()
                .filter(|&r| r < table.n_rows)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "token id {token} is outside the vocabulary of {}",
                        table.n_rows
                    ))
                })?;
            let row_bytes = table.row_bytes();
            let bytes = &table.data[row * row_bytes..(row + 1) * row_bytes];
            dequantize_row(table.dtype, bytes, &mut x[t * d..(t + 1) * d])?;
        }
        Ok(())
    }

    fn scale(&mut self, x: Act, factor: f32) -> Result<()> {
        let n = self.step.n_tokens * self.shape.width(x);
        for v in &mut self.acts.get_mut(x)[..n] {
            *v *= factor;
        }
        Ok(())
    }

    fn add_bias(&mut self, x: Act, bias: &Vec<f32>) -> Result<()> {
        let width = self.shape.width(x);
        if bias.len() != width {
            return Err(Error::InvalidArgument(format!(
                "a bias of {} values for {x:?} rows of {width}",
                bias.len()
            )));
        }
        let n = self.step.n_tokens * width;
        for row in self.acts.get_mut(x)[..n].chunks_exact_mut(width) {
            add_assign(row, bias);
        }
        Ok(())
    }

    fn head_rms_norm(&mut self, x: Act, weight: &Vec<f32>, eps: f32) -> Result<()> {
        if !matches!(x, Act::Q | Act::K) {
            return Err(Error::InvalidArgument(format!(
                "a per-head norm of {x:?}: only Q and K are made of heads"
            )));
        }
        let hd = self.shape.head_dim;
        let n = self.step.n_tokens * self.shape.width(x);
        for head in self.acts.get_mut(x)[..n].chunks_exact_mut(hd) {
            rms_norm_in_place(head, weight, eps);
        }
        Ok(())
    }

    fn rms_norm(&mut self, x: Act, weight: &Vec<f32>, eps: f32, out: Act) -> Result<()> {
        let d = self.shape.width(x);
        let input = self.acts.take(x);
        let output = self.acts.get_mut(out);
        for t in 0..self.step.n_tokens {
            let row = t * d..(t + 1) * d;
            rms_norm(&input[row.clone()], weight, eps, &mut output[row]);
        }
        self.acts.put(x, input);
        Ok(())
    }

    fn matmul(&mut self, x: Act, products: &[(&WeightMatrix<'_>, Act)]) -> Result<()> {
        let n = self.step.n_tokens;
        let input = self.acts.take(x);
        let mut outputs: [Vec<f32>; 3] = Default::default();
        let result = (|| {
            if products.is_empty() || products.len() > outputs.len() {
                return Err(Error::InvalidArgument(format!(
                    "{} products of one input; the CPU backend takes 1 to {}",
                    products.len(),
                    outputs.len()
                )));
            }
            for (slot, &(_, act)) in outputs.iter_mut().zip(products) {
                *slot = self.acts.take(act);
            }
            let input = &input[..n * self.shape.width(x)];
            let first = *products[0].0;
            let uniform = products
                .iter()
                .all(|(w, _)| w.dtype == first.dtype && w.n_cols == first.n_cols);
            if uniform {
                let mut matrices = [first; 3];
                for (m, (w, _)) in matrices.iter_mut().zip(products) {
                    *m = **w;
                }
                let [a, b, c] = &mut outputs;
                let mut ys: [&mut [f32]; 3] = [a, b, c];
                for (y, &(_, act)) in ys.iter_mut().zip(products) {
                    let len = n * self.shape.width(act);
                    *y = &mut std::mem::take(y)[..len];
                }
                let k = products.len();
                return self
                    .matmul
                    .matmul_many(&matrices[..k], input, n, &mut ys[..k]);
            }
            for (y, &(w, act)) in outputs.iter_mut().zip(products) {
                self.matmul
                    .matmul(w, input, n, &mut y[..n * self.shape.width(act)])?;
            }
            Ok(())
        })();
        for (y, &(_, act)) in outputs.into_iter().zip(products) {
            self.acts.put(act, y);
        }
        self.acts.put(x, input);
        result
    }

    fn rope_and_store_kv(&mut self, layer: usize, rope_params: &Rope) -> Result<()> {
        let (hd, q_dim, kv_dim) = (self.shape.head_dim, self.shape.q_dim(), self.shape.kv_dim());
        let mut q = self.acts.take(Act::Q);
        let mut k = self.acts.take(Act::K);
        let angles = &mut self.rope_angles;
        let write_slots = &self.step.tables(self.sizes.reads_window(layer)).write_slots;
        for t in 0..self.step.n_tokens {
            angles.set(self.step.positions[t], rope_params.base, rope_params.dims);
            rope(
                &mut q[t * q_dim..(t + 1) * q_dim],
                hd,
                rope_params.style,
                angles,
            );
            rope(
                &mut k[t * kv_dim..(t + 1) * kv_dim],
                hd,
                rope_params.style,
                angles,
            );
            let first = write_slots[t] as usize * kv_dim;
            let token = t * kv_dim..(t + 1) * kv_dim;
            self.kv.k[layer].write_f32(first, &k[token.clone()]);
            self.kv.v[layer].write_f32(first, &self.acts.get(Act::V)[token]);
        }
        self.acts.put(Act::Q, q);
        self.acts.put(Act::K, k);
        Ok(())
    }

    fn attention(&mut self, layer: usize, scale: f32, window: Option<usize>) -> Result<()> {
        let mut out = self.acts.take(Act::Attn);
        let result = attention(
            Layer {
                shape: &self.shape,
                k: &self.kv.k[layer],
                v: &self.kv.v[layer],
                tables: self.step.tables(self.sizes.reads_window(layer)),
                scale,
                window,
            },
            &self.matmul,
            &self.step,
            self.acts.get(Act::Q),
            &mut out,
            &mut self.attention,
        );
        self.acts.put(Act::Attn, out);
        result
    }

    fn swiglu(&mut self) -> Result<()> {
        self.gate_with_up(swiglu);
        Ok(())
    }

    fn geglu(&mut self) -> Result<()> {
        self.gate_with_up(geglu);
        Ok(())
    }

    fn add_to_residual(&mut self, x: Act) -> Result<()> {
        if x == Act::X || self.shape.width(x) != self.shape.n_embd {
            return Err(Error::InvalidArgument(format!(
                "adding {x:?} to the residual stream"
            )));
        }
        let n = self.step.n_tokens * self.shape.n_embd;
        let input = self.acts.take(x);
        add_assign(&mut self.acts.get_mut(Act::X)[..n], &input[..n]);
        self.acts.put(x, input);
        Ok(())
    }

    fn output_logits(
        &mut self,
        norm: &Vec<f32>,
        eps: f32,
        output: &WeightMatrix<'_>,
    ) -> Result<()> {
        let d = self.shape.n_embd;
        let n_out = self.step.n_outputs;
        let x = self.acts.take(Act::X);
        let xn = self.acts.get_mut(Act::Xn);
        for (i, &t) in self.step.output_tokens[..n_out].iter().enumerate() {
            let t = t as usize;
            rms_norm(
                &x[t * d..(t + 1) * d],
                norm,
                eps,
                &mut xn[i * d..(i + 1) * d],
            );
        }
        self.acts.put(Act::X, x);
        resize(
            &mut self.logits,
            n_out * self.shape.n_vocab,
            0.0,
            "the logits of a batch",
        )?;
        let xn = self.acts.take(Act::Xn);
        let result = self
            .matmul
            .matmul(output, &xn[..n_out * d], n_out, &mut self.logits);
        self.acts.put(Act::Xn, xn);
        result
    }

    fn memory(&self) -> BackendMemory {
        let kv_bytes = self.kv.bytes();
        BackendMemory {
            kv_bytes,
            host_bytes: kv_bytes + self.acts.bytes() + (self.logits.capacity() * 4) as u64,
            device_bytes: 0,
        }
    }
}
