//! The GPU implementation of the backend boundary: one context's K/V cache, activations
//! and step inputs in device memory, on one stream. Every operation only queues kernels;
//! the step's one synchronisation waits for each output's argmax, which the device writes
//! straight into host memory (4 bytes a row: all a greedy sampler needs). The logits
//! themselves are copied only when asked for. A decode step runs as one graph launch
//! (`graph_step`).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::device_step::{self, DeviceStep};
use super::graph_step::{DecodeGraph, GraphStats};
use super::ops::{
    AddNormInput, ArgmaxScratch, AttentionWorkspace, BlockLayout, DecodeRope, DeviceMatrix,
    FusedKind, Gate, GpuOps, HeadShape, LeadingMatrix, MAX_Q8_TOKENS, MixedProduct, PagedKv,
    PeerExchange, PrefillScratch, ProductInput, ProductOutput, Q8_GROUP, Q8Buffers, RopeKvWrite,
    RopeParams, SecondMatrix, StepTokens, StreamNorm, UnscaledNorm,
};
use super::safe::{Blas, Device, DeviceBuffer, Event, MappedHost, Stream};
use crate::backend::{
    Act, Backend, BackendMemory, ContextSizes, KvRowSlots, KvType, Rope, Shape, Step,
    check_row_bytes, saturating_bytes,
};
use crate::error::{Error, Result};
use crate::host_memory::resize;
use crate::tensor::{GgmlType, WeightMatrix};

/// A weight matrix uploaded to a device: the GGUF tensor's bytes, their rows split where
/// that layout serves the decode products better ([`BlockLayout::for_upload`]).
pub struct GpuMatrix {
    pub dtype: GgmlType,
    pub layout: BlockLayout,
    pub n_rows: usize,
    pub n_cols: usize,
    data: DeviceBuffer<u8>,
}

impl GpuMatrix {
    /// Uploads `matrix` to `stream`'s device, splitting its rows there when that is its
    /// layout (rows padded to the layout's stride first where they need it); waits for the
    /// copy and the split.
    pub fn upload(stream: &Stream, ops: &GpuOps, matrix: &WeightMatrix<'_>) -> Result<GpuMatrix> {
        let WeightMatrix {
            dtype,
            n_rows,
            n_cols,
            ..
        } = *matrix;
        let layout = BlockLayout::for_upload(dtype, n_cols);
        let rows = layout.rows_at_stride(dtype, n_cols, matrix.data)?;
        let mut data = stream.device().upload(stream, &rows)?;
        if layout == BlockLayout::SplitRows {
            ops.split_rows(stream, dtype, &mut data, n_rows, n_cols)?;
            stream.synchronize()?;
        }
        let uploaded = GpuMatrix {
            dtype,
            layout,
            n_rows,
            n_cols,
            data,
        };
        uploaded.view()?;
        Ok(uploaded)
    }

    fn view(&self) -> Result<DeviceMatrix<'_>> {
        DeviceMatrix::with_layout(
            self.dtype,
            self.layout,
            &self.data,
            self.n_rows,
            self.n_cols,
        )
    }

    pub fn bytes(&self) -> u64 {
        self.data.size_bytes() as u64
    }
}

/// Keys per split of the decode attention: one chunk of keys for each warp of its block
/// (16 x 32 on NVIDIA, 8 x 64 on AMD), so a context of up to 512 tokens is one block per
/// head whose warps merge in shared memory, with no second pass over global memory;
/// splits past the live keys leave at once.
const KEYS_PER_SPLIT: usize = 512;

/// The largest weight panel the prefill products dequantize at once (f16 values): a
/// matrix larger than this (an 8B-class FFN matrix, any output head) runs in panels.
const MAX_PREFILL_PANEL: usize = 32 << 20;

/// Steps of more tokens than the integer kernels take go through the vendor BLAS, where
/// it loads: tensor-core products of the weights and activations rounded to f16.
struct Prefill {
    blas: Blas,
    scratch: PrefillScratch,
}

impl Prefill {
    /// The vendor BLAS and its scratch for steps of up to `n_batch` tokens, or why there
    /// is none (not installed, failed to start, no batch large enough): products then run
    /// on the library's own kernels.
    fn new(
        device: &Device,
        stream: &Stream,
        shape: &Shape,
        n_batch: usize,
    ) -> std::result::Result<Prefill, String> {
        if n_batch <= MAX_Q8_TOKENS {
            return Err(format!("batches of at most {n_batch} tokens"));
        }
        let overflow = || "the scratch size overflows".to_string();
        let largest = shape.largest_matrix().ok_or_else(overflow)?;
        let activations = n_batch.checked_mul(shape.widest()).ok_or_else(overflow)?;
        let blas = Blas::new(stream).map_err(|e| e.to_string())?;
        let scratch = PrefillScratch::new(device, largest.min(MAX_PREFILL_PANEL), activations)
            .map_err(|e| e.to_string())?;
        Ok(Prefill { blas, scratch })
    }
}

/// One context's state on a GPU: for all of a model's layers, or for the share of them
/// that GPU holds under a layer split (see `GpuParts`).
pub struct GpuBackend {
    /// Dropped first: it replays work over the buffers below.
    decode: DecodeGraph,
    state: DeviceState,
    /// Every operation of the context is queued here, in order.
    stream: Stream,
    /// Recorded after a step's forward pass, for the GPU of the next layers to wait on
    /// before it copies the residual stream over.
    handed_over: Event,
}

/// What a forward pass reads and writes on the device, apart from the stream it is queued
/// on (a capture borrows the stream while the forward pass borrows this).
struct DeviceState {
    shape: Shape,
    heads: HeadShape,
    ops: Arc<GpuOps>,
    /// The layers this state runs and holds the K/V of: all of them, or a layer split's
    /// share.
    layers: Range<usize>,
    /// A tensor split device's part in the sums over the split.
    exchange: Option<PeerExchange>,
    /// Per layer, `[n_slots, kv_dim]` values each, as `kv_type` stores them; empty for
    /// the layers outside `layers`.
    k_cache: Vec<DeviceBuffer<u8>>,
    v_cache: Vec<DeviceBuffer<u8>>,
    kv_type: KvType,
    /// Indexed by `Act as usize`: `[n_batch, shape.width(act)]` each.
    acts: Vec<DeviceBuffer<f32>>,
    /// One activation as Q8 for the integer products (room for the widest), and which
    /// one it currently holds.
    q8: Q8Buffers,
    q8_of: Option<Act>,
    /// A one-token step's residual stream prepared by its residual product for the norm
    /// that follows (for integer readers; F16 readers' is in the norm's output buffer),
    /// and which norm it is.
    unscaled: UnscaledNorm,
    unscaled_of: Option<PreparedNorm>,
    prefill: Option<Prefill>,
    /// What multiplies batches of more tokens than the integer kernels take.
    prefill_products: String,
    /// `[n_batch, n_embd]` the rows of the tokens that want logits, then their norms.
    out_rows: DeviceBuffer<f32>,
    out_norm: DeviceBuffer<f32>,
    /// `[n_batch, n_vocab]`
    logits_device: DeviceBuffer<f32>,
    /// The host copy of the last step's logits, valid when `logits_copied`.
    logits: Vec<f32>,
    logits_copied: bool,
    /// The host copy of the last step's normalised output rows (`out_norm`), valid when
    /// `embeddings_copied`.
    embeddings: Vec<f32>,
    embeddings_copied: bool,
    /// Where the device writes each output row's argmax (only where this state runs the
    /// output head), and its copy (`[n_outputs]`) taken once the step is over.
    device_argmax: Option<DeviceArgmax>,
    argmax: Vec<i32>,
    step: DeviceStep,
    workspace: AttentionWorkspace,
    /// A one-token step's RoPE and cache write of this layer, left to its attention launch
    /// (`rope_and_store_kv` sets it, `attention` takes it).
    deferred_rope: Option<(usize, RopeParams)>,
    n_seq: usize,
    block_size: usize,
    /// Which layers read the window cache.
    sizes: ContextSizes,
}

/// Decode's greedy choice on the device: `[n_batch]` each output row's argmax, written by
/// the device into host memory, and the scratch the argmax kernel keeps between its blocks.
struct DeviceArgmax {
    choices: MappedHost<i32>,
    scratch: ArgmaxScratch,
}

impl DeviceArgmax {
    fn new(device: &Device, n_batch: usize, n_vocab: usize) -> Result<DeviceArgmax> {
        Ok(DeviceArgmax {
            choices: MappedHost::new(device, n_batch)?,
            scratch: ArgmaxScratch::new(device, n_batch, n_vocab)?,
        })
    }
}

/// The operations of one step, queued on `stream` over a context's device state: the
/// [`Backend`] the forward pass runs on, kernel by kernel or while a graph records it.
/// Its `output_logits` only queues the logits' and their argmax's computation;
/// [`GpuBackend::finish_step`] waits for the argmax.
pub(crate) struct GpuStep<'a> {
    stream: &'a Stream,
    state: &'a mut DeviceState,
}

impl GpuBackend {
    /// What [`GpuBackend::new`] allocates for `layers`, as [`GpuBackend::memory`] reports
    /// it once a step has produced `n_outputs` logit rows (when `layers` end with the
    /// model's), assuming the vendor BLAS loads (its prefill scratch is counted whenever
    /// `n_batch` calls for it). Computed from the sizes alone, for estimates before
    /// loading; each term is one allocation below.
    pub fn planned_memory(
        shape: &Shape,
        sizes: &ContextSizes,
        n_outputs: usize,
        layers: Range<usize>,
    ) -> BackendMemory {
        let logits = computes_logits(shape, &layers);
        GpuBackend::planned(shape, sizes, n_outputs, layers, logits)
    }

    /// What [`GpuBackend::new_tensor_share`] allocates, with its part in the sums of a
    /// split over `n_devices`, as [`GpuBackend::planned_memory`] counts it: `shape` counts
    /// the device's own heads and FFN slice.
    pub fn planned_tensor_share(
        shape: &Shape,
        sizes: &ContextSizes,
        n_outputs: usize,
        computes_logits: bool,
        n_devices: usize,
    ) -> BackendMemory {
        let layers = 0..shape.n_layer;
        let share = GpuBackend::planned(shape, sizes, n_outputs, layers, computes_logits);
        let sums = PeerExchange::planned_bytes(n_devices, sizes.n_batch * shape.n_embd);
        BackendMemory {
            device_bytes: saturating_bytes(u128::from(share.device_bytes) + sums),
            ..share
        }
    }

    fn planned(
        shape: &Shape,
        sizes: &ContextSizes,
        n_outputs: usize,
        layers: Range<usize>,
        computes_logits: bool,
    ) -> BackendMemory {
        let n_batch = sizes.n_batch;
        let u = |v: usize| v as u128;
        let (n_output_rows, n_outputs) = match computes_logits {
            true => (n_batch, n_outputs),
            false => (0, 0),
        };
        let kv = sizes.kv_bytes_of(shape, layers);
        let widest = u(shape.widest());
        let acts = shape.activation_bytes(n_batch);
        // Per group of 32: the quants, a scale and a sum.
        let q8 = 40 * (u(n_batch.min(MAX_Q8_TOKENS)) * widest).div_ceil(32);
        // One token's stream as Q8 and its groups' sums of squares.
        let unscaled = 48 * u(shape.n_embd).div_ceil(32);
        let prefill = if n_batch > MAX_Q8_TOKENS {
            // An overflowing matrix still takes the whole panel.
            let panel = shape
                .largest_matrix()
                .map_or(MAX_PREFILL_PANEL, |m| m.min(MAX_PREFILL_PANEL));
            2 * (u(panel) + u(n_batch) * widest)
        } else {
            0
        };
        let rows = 2 * 4 * u(n_output_rows) * u(shape.n_embd);
        let logits = 4 * u(n_output_rows) * u(shape.n_vocab);
        // The step's inputs, 4 bytes each, on the device and in the staging buffer.
        let input_values = device_step::input_values(sizes);
        let heads = HeadShape {
            n_head: shape.n_head,
            n_kv_heads: shape.n_head_kv,
            head_dim: shape.head_dim,
        };
        let workspace = AttentionWorkspace::planned_bytes(
            &heads,
            n_batch,
            longest_table(sizes),
            KEYS_PER_SPLIT,
        );
        // The logits' and argmax's host copies, and the argmax the device writes.
        let host = device_step::staging_bytes(sizes)
            + 4 * u(n_outputs) * (u(shape.n_vocab) + 1)
            + 4 * u(n_output_rows);
        let argmax = match computes_logits {
            true => ArgmaxScratch::planned_bytes(n_output_rows, shape.n_vocab),
            false => 0,
        };
        let device = kv
            + acts
            + q8
            + unscaled
            + prefill
            + rows
            + logits
            + 4 * input_values
            + workspace
            + argmax;
        BackendMemory {
            kv_bytes: saturating_bytes(kv),
            host_bytes: saturating_bytes(host),
            device_bytes: saturating_bytes(device),
        }
    }

    /// State on `ops`' device for a context of `sizes` that runs `layers` of the model
    /// (all of them, or a layer split's share; the last share computes the logits).
    pub fn new(
        device: &Device,
        ops: Arc<GpuOps>,
        shape: Shape,
        sizes: &ContextSizes,
        layers: Range<usize>,
    ) -> Result<GpuBackend> {
        let logits = computes_logits(&shape, &layers);
        GpuBackend::build(device, ops, shape, sizes, layers, logits)
    }

    /// State on `ops`' device for a context of `sizes` on a tensor split's device, whose
    /// `shape` counts its own heads and FFN slice: every layer, and the logits where
    /// `computes_logits` (one device of the split). Its sums over the split's devices
    /// need [`GpuBackend::join_sums`] before a step runs.
    pub fn new_tensor_share(
        device: &Device,
        ops: Arc<GpuOps>,
        shape: Shape,
        sizes: &ContextSizes,
        computes_logits: bool,
    ) -> Result<GpuBackend> {
        let layers = 0..shape.n_layer;
        GpuBackend::build(device, ops, shape, sizes, layers, computes_logits)
    }

    fn build(
        device: &Device,
        ops: Arc<GpuOps>,
        shape: Shape,
        sizes: &ContextSizes,
        layers: Range<usize>,
        computes_logits: bool,
    ) -> Result<GpuBackend> {
        if layers.is_empty() || layers.end > shape.n_layer {
            return Err(Error::InvalidArgument(format!(
                "layers {layers:?} of a model of {} layers",
                shape.n_layer
            )));
        }
        let ContextSizes {
            block_size,
            n_seq,
            n_batch,
            kv_type,
            ..
        } = *sizes;
        kv_type.check_head_dim(shape.head_dim)?;
        let heads = HeadShape {
            n_head: shape.n_head,
            n_kv_heads: shape.n_head_kv,
            head_dim: shape.head_dim,
        };
        let checked = |what: &str, factors: &[usize]| -> Result<usize> {
            factors
                .iter()
                .try_fold(1usize, |a, &f| a.checked_mul(f))
                .ok_or_else(|| Error::DeviceOutOfMemory(format!("{what}: {factors:?} overflows")))
        };
        let row_bytes = kv_type.bytes(shape.kv_dim());
        let cache = || -> Result<Vec<DeviceBuffer<u8>>> {
            // Zeroed: a cache's unwritten slots must hold finite values (attention
            // multiplies them by a zero weight).
            (0..shape.n_layer)
                .map(|layer| {
                    let slots = sizes.layer_slots(layer);
                    if layers.contains(&layer) {
                        device.alloc_zeroed(checked("the KV cache", &[slots, row_bytes])?)
                    } else {
                        device.alloc(0)
                    }
                })
                .collect()
        };
        let acts = Act::ALL
            .iter()
            .map(|&act| device.alloc(checked("activations", &[n_batch, shape.width(act)])?))
            .collect::<Result<Vec<_>>>()?;
        let widest = shape.widest();
        let q8 = Q8Buffers::new(
            device,
            checked(
                "quantized activations",
                &[n_batch.min(MAX_Q8_TOKENS), widest],
            )?,
        )?;
        let stream = Stream::new(device)?;
        let step = DeviceStep::new(device, &stream, sizes)?;
        let (prefill, prefill_products) = match Prefill::new(device, &stream, &shape, n_batch) {
            Ok(p) => {
                let note = format!("the vendor BLAS ({})", p.blas.library_path());
                (Some(p), note)
            }
            Err(why) => (None, format!("the library's own kernels ({why})")),
        };
        let n_output_rows = if computes_logits { n_batch } else { 0 };
        let rows = checked("output rows", &[n_output_rows, shape.n_embd])?;
        let state = DeviceState {
            k_cache: cache()?,
            v_cache: cache()?,
            kv_type,
            acts,
            q8,
            q8_of: None,
            unscaled: UnscaledNorm::new(device, shape.n_embd)?,
            unscaled_of: None,
            prefill,
            prefill_products,
            out_rows: device.alloc(rows)?,
            out_norm: device.alloc(rows)?,
            logits_device: device.alloc(checked("logits", &[n_output_rows, shape.n_vocab])?)?,
            logits: Vec::new(),
            logits_copied: false,
            embeddings: Vec::new(),
            embeddings_copied: false,
            device_argmax: computes_logits
                .then(|| DeviceArgmax::new(device, n_output_rows, shape.n_vocab))
                .transpose()?,
            argmax: Vec::new(),
            workspace: AttentionWorkspace::new(
                device,
                &heads,
                n_batch,
                longest_table(sizes),
                KEYS_PER_SPLIT,
            )?,
            step,
            deferred_rope: None,
            ops,
            heads,
            layers,
            exchange: None,
            shape,
            n_seq,
            block_size,
            sizes: *sizes,
        };
        Ok(GpuBackend {
            decode: DecodeGraph::new(device),
            state,
            stream,
            handed_over: Event::new(device)?,
        })
    }

    /// Takes the step's inputs into the device buffers; see [`Backend::begin_step`].
    pub fn begin_step(&mut self, step: &Step) -> Result<()> {
        self.queue().begin_step(step)
    }

    /// Queues the step given to [`GpuBackend::begin_step`]; [`GpuBackend::finish_step`]
    /// waits for its outputs' argmax.
    /// `forward` queues the model's forward pass on the [`GpuStep`] it is given; it is
    /// recorded into a graph on the first decode step and replayed on every later one,
    /// and called again as it is for every other step. `model_ops` are the kernels of the
    /// model whose weights `forward` reads: a graph holds those weights' addresses, so
    /// this context runs only for the model it was made for.
    pub(crate) fn queue_step(
        &mut self,
        model_ops: &Arc<GpuOps>,
        cancel: &AtomicBool,
        mut forward: impl FnMut(&mut GpuStep<'_>) -> Result<()>,
    ) -> Result<()> {
        let GpuBackend {
            decode,
            state,
            stream,
            ..
        } = self;
        if !Arc::ptr_eq(&state.ops, model_ops) {
            return Err(Error::InvalidArgument(
                "a context's GPU state runs only the model it was made for".into(),
            ));
        }
        let decode_shaped = state.step.is_decode();
        decode.run(stream, decode_shaped, cancel, |stream| {
            forward(&mut GpuStep {
                stream,
                state: &mut *state,
            })
        })
    }

    /// Waits for the step [`GpuBackend::queue_step`] queued and takes its argmax, where
    /// this state computes logits.
    pub(crate) fn finish_step(&mut self) -> Result<()> {
        if self.state.computes_logits() {
            self.state.read_argmax(&self.stream)
        } else {
            self.stream.synchronize()
        }
    }

    /// Copies the step's residual stream from `earlier`, the GPU of the layers before
    /// this state's, once its queued work has written it; returns without waiting.
    pub(crate) fn take_residual(&mut self, earlier: &GpuBackend) -> Result<()> {
        if earlier.state.layers.end != self.state.layers.start {
            return Err(Error::InvalidArgument(format!(
                "layers {:?} do not follow layers {:?}",
                self.state.layers, earlier.state.layers
            )));
        }
        earlier.handed_over.record(&earlier.stream)?;
        self.stream.wait_for(&earlier.handed_over)?;
        let values = self.state.step.n_tokens * self.state.shape.n_embd;
        let x = Act::X as usize;
        self.state.acts[x].copy_range_from(&self.stream, &earlier.state.acts[x], 0, 0, values)
    }

    /// Takes `exchange` for this state's sums over the devices of its tensor split,
    /// `exchange`'s group: one device of the split each.
    pub(crate) fn join_sums(&mut self, exchange: PeerExchange) {
        self.state.exchange = Some(exchange);
    }

    /// The stream every operation of this state is queued on.
    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Lets this state's sums stop waiting for the other devices of its tensor split: the
    /// way out of a step that failed on one of them before it queued its part.
    pub(crate) fn abort_sums(&self) {
        if let Some(exchange) = &self.state.exchange {
            exchange.abort();
        }
    }

    /// Clears this state's sum counts after [`GpuBackend::abort_sums`], once every device
    /// of the split has stopped, so that the next step starts them together again.
    pub(crate) fn clear_sums(&mut self) -> Result<()> {
        match &mut self.state.exchange {
            Some(exchange) => self.state.ops.peer_sum_clear(&self.stream, exchange),
            None => Ok(()),
        }
    }

    /// Values of the largest sum over a tensor split a step can take: the residual
    /// stream of a full batch.
    pub(crate) fn largest_sum(&self) -> usize {
        self.state.sizes.n_batch * self.state.shape.n_embd
    }

    /// Waits until every operation queued so far has finished.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.stream.synchronize()
    }

    /// The layers this state runs.
    pub fn layers(&self) -> Range<usize> {
        self.state.layers.clone()
    }

    /// Whether this state runs the model's last layer and its output head.
    pub fn computes_logits(&self) -> bool {
        self.state.computes_logits()
    }

    /// Turns decode graphs on (where the runtime has them) or off; they are on unless
    /// `ROCMFORGE_GPU_GRAPHS=0`. Off, every step runs kernel by kernel (tests compare).
    pub fn set_graphs(&mut self, enabled: bool) {
        self.decode.set_enabled(self.stream.device(), enabled);
    }

    /// What multiplies this context's prefill batches: the vendor BLAS (and which
    /// library), or the library's own kernels and why.
    pub fn prefill_products(&self) -> &str {
        &self.state.prefill_products
    }

    /// How this context's steps have run: captured, replayed, kernel by kernel.
    pub fn graph_stats(&self) -> GraphStats {
        self.decode.stats()
    }

    /// `[n_outputs, n_vocab]`: the last step's logits, copied from the device on the
    /// first call after the step.
    pub fn logits(&mut self) -> Result<&[f32]> {
        let state = &mut self.state;
        if !state.logits_copied {
            let len = state.step.n_outputs * state.shape.n_vocab;
            resize(&mut state.logits, len, 0.0, "the logits of a batch")?;
            state
                .logits_device
                .copy_range_to_host(&self.stream, 0, &mut state.logits[..len])?;
            state.logits_copied = true;
        }
        Ok(&state.logits)
    }

    /// `[n_outputs, n_embd]`: the last step's output rows after the output norm (the
    /// head's input), copied from the device on the first call after the step.
    pub fn embeddings(&mut self) -> Result<&[f32]> {
        let state = &mut self.state;
        if !state.embeddings_copied {
            let len = state.step.n_outputs * state.shape.n_embd;
            resize(&mut state.embeddings, len, 0.0, "the embeddings of a batch")?;
            state
                .out_norm
                .copy_range_to_host(&self.stream, 0, &mut state.embeddings[..len])?;
            state.embeddings_copied = true;
        }
        Ok(&state.embeddings)
    }

    /// `[n_outputs]`: the index of the largest logit of each of the last step's outputs,
    /// as the sampler's greedy choice (NaN as -inf, ties to the lowest index).
    pub fn argmax(&self) -> &[i32] {
        &self.state.argmax
    }

    pub fn memory(&self) -> BackendMemory {
        self.state.memory()
    }

    /// The K and V rows of `slots` in every layer into `out` as stored, laid out as
    /// [`crate::backend::BackendState::read_kv_rows`] describes, for the layers this state
    /// holds (the rest of `out` is left as it is): one copy per run of
    /// consecutive slots (a cache block holds 16).
    pub fn read_kv_rows(&mut self, slots: &KvRowSlots<'_>, out: &mut [u8]) -> Result<()> {
        let (state, stream) = (&self.state, &self.stream);
        let row = state.kv_type.bytes(state.shape.kv_dim());
        check_row_bytes(&state.sizes, state.shape.n_layer, row, slots, out.len())?;
        let caches = state.k_cache.iter().zip(&state.v_cache).enumerate();
        let mut rest = out;
        for (layer, (k, v)) in caches {
            let slots = slots.of_layer(state.sizes.reads_window(layer));
            for cache in [k, v] {
                let (rows, tail) = std::mem::take(&mut rest).split_at_mut(slots.len() * row);
                rest = tail;
                if !state.layers.contains(&layer) {
                    continue; // another share's rows
                }
                for (first, slot, len) in slot_runs(slots) {
                    let run = &mut rows[first * row..(first + len) * row];
                    cache.copy_range_to_host(stream, slot as usize * row, run)?;
                }
            }
        }
        Ok(())
    }

    /// Writes rows laid out as [`GpuBackend::read_kv_rows`] gives them into `slots`.
    pub fn write_kv_rows(&mut self, slots: &KvRowSlots<'_>, rows: &[u8]) -> Result<()> {
        let (state, stream) = (&mut self.state, &self.stream);
        let row = state.kv_type.bytes(state.shape.kv_dim());
        let sizes = state.sizes;
        check_row_bytes(&sizes, state.shape.n_layer, row, slots, rows.len())?;
        let caches = state.k_cache.iter_mut().zip(state.v_cache.iter_mut());
        let mut rest = rows;
        for (layer, (k, v)) in caches.enumerate() {
            let slots = slots.of_layer(sizes.reads_window(layer));
            for cache in [k, v] {
                let (layer_rows, tail) = rest.split_at(slots.len() * row);
                rest = tail;
                if !state.layers.contains(&layer) {
                    continue; // another share's rows
                }
                for (first, slot, len) in slot_runs(slots) {
                    let run = &layer_rows[first * row..(first + len) * row];
                    cache.copy_range_from_host(stream, slot as usize * row, run)?;
                }
            }
        }
        Ok(())
    }

    fn queue(&mut self) -> GpuStep<'_> {
        GpuStep {
            stream: &self.stream,
            state: &mut self.state,
        }
    }
}

impl DeviceState {
    /// Whether it runs the output head (the last share of a layer split, one device of a
    /// tensor split): where the argmax has its host memory.
    fn computes_logits(&self) -> bool {
        self.device_argmax.is_some()
    }

    /// Notes that `act` is about to be overwritten: its Q8 copy is stale from here.
    fn wrote(&mut self, act: Act) {
        if self.q8_of == Some(act) {
            self.q8_of = None;
        }
        // An F16 reader's scale comes from the stream itself, so it goes stale with it.
        if self.unscaled_of.is_some_and(|p| {
            p.of == act || (act == Act::X && p.held_in == PreparedIn::StreamTimesWeights)
        }) {
            self.unscaled_of = None;
        }
    }

    /// Fails if `x`'s buffer was not written because only integer products were to read
    /// it (`unscaled_of`): a caller that named other readers broke the contract.
    fn readable(&self, x: Act) -> Result<()> {
        match self.unscaled_of {
            Some(prepared) if prepared.of == x => Err(Error::InvalidArgument(format!(
                "{x:?} was prepared for the products named as its readers only"
            ))),
            _ => Ok(()),
        }
    }

    /// The form in which a one-token step's norm of `X` into `out` can be prepared for
    /// `readers` (`n_embd` wide, all with integer kernels or all with the one-token F16
    /// one), if it can: what the residual product with the next norm and `prepare_norm`
    /// both go by. One prepared activation at a time: preparing another would leave the
    /// first one's buffer unwritten with nothing to say so.
    fn prepared_form(
        &self,
        norm: &DeviceBuffer<f32>,
        out: Act,
        readers: &[&GpuMatrix],
    ) -> Option<PreparedIn> {
        let n_embd = self.shape.n_embd;
        let may_prepare = self.step.n_tokens == 1
            && out != Act::X
            && self.unscaled_of.is_none_or(|p| p.of == out)
            && (norm.len(), self.shape.width(out)) == (n_embd, n_embd);
        let all_read_by = |kind: FusedKind| {
            readers.iter().all(|r| {
                r.view()
                    .is_ok_and(|r| r.n_cols == n_embd && self.ops.fused_kind(&r, 1) == Some(kind))
            })
        };
        if !may_prepare {
            None
        } else if all_read_by(FusedKind::Integer) {
            Some(PreparedIn::Unscaled)
        } else if all_read_by(FusedKind::F16) {
            Some(PreparedIn::StreamTimesWeights)
        } else {
            None
        }
    }

    /// [`DeviceState::readable`] for each of `acts`.
    fn readable_all(&self, acts: &[Act]) -> Result<()> {
        acts.iter().try_for_each(|&x| self.readable(x))
    }

    /// Makes `self.q8` hold `x` as Q8 activations, quantizing it unless it already does.
    fn quantize(&mut self, stream: &Stream, x: Act) -> Result<()> {
        if self.q8_of == Some(x) {
            return Ok(());
        }
        self.readable(x)?;
        let n_values = self.step.n_tokens * self.shape.width(x);
        self.ops
            .quantize_q8(stream, &self.acts[x as usize], n_values, &mut self.q8)?;
        self.q8_of = Some(x);
        Ok(())
    }

    /// The input of a fused product of `kind` over `x` (quantized first for the integer
    /// kernels) and the activations `outs` it writes.
    fn fused_buffers<const N: usize>(
        &mut self,
        stream: &Stream,
        kind: FusedKind,
        x: Act,
        outs: [Act; N],
    ) -> Result<(ProductInput<'_>, [&mut DeviceBuffer<f32>; N])> {
        if outs.contains(&x) {
            return Err(Error::InvalidArgument(format!(
                "a product of {x:?} writes into {outs:?}"
            )));
        }
        let prepared = self.unscaled_of.filter(|p| p.of == x);
        match (kind, prepared) {
            (FusedKind::Integer, None) => self.quantize(stream, x)?,
            (FusedKind::Integer, Some(p)) if p.held_in == PreparedIn::Unscaled => {}
            (FusedKind::F16, Some(p)) if p.held_in == PreparedIn::StreamTimesWeights => {}
            (FusedKind::F16, None) => {}
            (_, Some(p)) => {
                return Err(Error::InvalidArgument(format!(
                    "{x:?} was prepared ({:?}) for other products than a {kind:?} one",
                    p.held_in
                )));
            }
        }
        let mut input = None;
        let mut stream_x = None;
        let mut slots: [Option<&mut DeviceBuffer<f32>>; N] = [const { None }; N];
        for (at, buffer) in self.acts.iter_mut().enumerate() {
            if let Some(slot) = outs.iter().position(|&out| out as usize == at) {
                slots[slot] = Some(buffer);
            } else {
                let buffer: &DeviceBuffer<f32> = buffer;
                if at == x as usize {
                    input = Some(buffer);
                }
                if at == Act::X as usize {
                    stream_x = Some(buffer);
                }
            }
        }
        if let Some(at) = slots.iter().position(Option::is_none) {
            return Err(Error::InvalidArgument(format!(
                "no activation buffer for {:?}, or products into {outs:?} share one",
                outs[at]
            )));
        }
        let outputs = slots.map(|slot| slot.expect("every slot was checked to be filled"));
        let missing =
            |act: Act| Error::InvalidArgument(format!("no activation buffer for {act:?}"));
        let input = match (kind, prepared) {
            (FusedKind::Integer, None) => ProductInput::Q8(&self.q8, None),
            (FusedKind::Integer, Some(p)) => {
                ProductInput::Q8(&self.unscaled.q8, Some(self.unscaled.scale(p.eps)))
            }
            (FusedKind::F16, None) => ProductInput::F32(input.ok_or_else(|| missing(x))?, None),
            (FusedKind::F16, Some(p)) => {
                let norm = StreamNorm {
                    stream: stream_x.ok_or_else(|| missing(Act::X))?,
                    eps: p.eps,
                };
                ProductInput::F32(input.ok_or_else(|| missing(x))?, Some(norm))
            }
        };
        Ok((input, outputs))
    }

    /// Waits for the step (its one wait) and takes the argmax of each output, which the
    /// device wrote into host memory. The logits stay on the device until
    /// [`GpuBackend::logits`] asks.
    fn read_argmax(&mut self, stream: &Stream) -> Result<()> {
        self.logits_copied = false;
        self.embeddings_copied = false;
        let n = self.step.n_outputs;
        resize(&mut self.argmax, n, 0, "the argmax of a batch")?;
        stream.synchronize()?;
        match &mut self.device_argmax {
            Some(device_argmax) => device_argmax.choices.load_into(&mut self.argmax[..n]),
            None => Err(Error::InvalidArgument(
                "a state without logits has no argmax".into(),
            )),
        }
    }

    fn memory(&self) -> BackendMemory {
        let bytes = |b: &DeviceBuffer<f32>| b.size_bytes() as u64;
        let kv_bytes: u64 = self
            .k_cache
            .iter()
            .chain(&self.v_cache)
            .map(|c| c.size_bytes() as u64)
            .sum();
        let device_bytes = kv_bytes
            + self.acts.iter().map(bytes).sum::<u64>()
            + self.q8.size_bytes() as u64
            + self.unscaled.size_bytes() as u64
            + self.prefill.as_ref().map_or(0, |p| p.scratch.bytes())
            + bytes(&self.out_rows)
            + bytes(&self.out_norm)
            + bytes(&self.logits_device)
            + self.step.device_bytes()
            + self.workspace.bytes()
            + self.device_argmax.as_ref().map_or(0, |a| a.scratch.bytes())
            + self.exchange.as_ref().map_or(0, PeerExchange::device_bytes);
        let host_bytes = (self.logits.capacity() + self.embeddings.capacity()) * size_of::<f32>()
            + (self.argmax.capacity() + self.device_argmax.as_ref().map_or(0, |a| a.choices.len()))
                * size_of::<i32>()
            + self.step.staging_bytes();
        BackendMemory {
            kv_bytes,
            host_bytes: host_bytes as u64,
            device_bytes,
        }
    }
}

/// Whether a state running `layers` runs the model's last layer, and so its output head:
/// only that share of a layer split has output rows.
fn computes_logits(shape: &Shape, layers: &Range<usize>) -> bool {
    layers.end == shape.n_layer
}

/// The most logical slots one sequence's table can hold, in either cache: what the decode
/// attention's splits are sized for.
fn longest_table(sizes: &ContextSizes) -> usize {
    let slots = sizes
        .window
        .map_or(sizes.n_slots, |w| w.n_slots.max(sizes.n_slots));
    slots.div_ceil(sizes.block_size) * sizes.block_size
}

/// The runs of consecutive slots in `slots`: (index of the run's first entry, its slot,
/// its length).
fn slot_runs(slots: &[u32]) -> impl Iterator<Item = (usize, u32, usize)> + '_ {
    let mut first = 0;
    std::iter::from_fn(move || {
        let &start = slots.get(first)?;
        let len = slots[first..]
            .iter()
            .zip(start..)
            .take_while(|&(&slot, expected)| slot == expected)
            .count();
        let run = (first, start, len);
        first += len;
        Some(run)
    })
}

/// A one-token step's norm output that the residual product before it prepared
/// (`matmul_into_residual_and_norm`): the products that read it finish the norm, and its
/// buffer holds nothing anything else may read.
#[derive(Clone, Copy)]
struct PreparedNorm {
    of: Act,
    eps: f32,
    held_in: PreparedIn,
}

/// Where a [`PreparedNorm`]'s input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreparedIn {
    /// `DeviceState::unscaled`, for integer readers.
    Unscaled,
    /// The norm output's own buffer: the stream `X` times the norm's weights, for F16
    /// readers, which work out the norm's scale from `X` (so writing `X` makes it stale).
    StreamTimesWeights,
}

/// Two activation buffers, one to read and one to write.
fn pair(
    acts: &mut [DeviceBuffer<f32>],
    read: Act,
    write: Act,
) -> Result<(&DeviceBuffer<f32>, &mut DeviceBuffer<f32>)> {
    let (input, output) = two_acts(acts, read, write)?;
    Ok((input, output))
}

impl GpuOps {
    /// `y = x · Wᵀ` for `n_tokens` f32 tokens: through the vendor BLAS for more tokens
    /// than the integer kernels take, where it loaded, else the f32 kernel.
    fn matvec_any(
        &self,
        stream: &Stream,
        prefill: &mut Option<Prefill>,
        w: &DeviceMatrix<'_>,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        y: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        match prefill {
            Some(p) if n_tokens > MAX_Q8_TOKENS => {
                self.matmul_prefill(stream, &mut p.blas, w, x, n_tokens, y, &mut p.scratch)
            }
            _ => self.matvec(stream, w, x, n_tokens, y),
        }
    }
}

/// Two distinct activation buffers, both writable.
fn two_acts(
    acts: &mut [DeviceBuffer<f32>],
    a: Act,
    b: Act,
) -> Result<(&mut DeviceBuffer<f32>, &mut DeviceBuffer<f32>)> {
    let (ia, ib) = (a as usize, b as usize);
    if ia < ib {
        let (low, high) = acts.split_at_mut(ib);
        Ok((&mut low[ia], &mut high[0]))
    } else if ia > ib {
        let (low, high) = acts.split_at_mut(ia);
        Ok((&mut high[0], &mut low[ib]))
    } else {
        Err(Error::InvalidArgument(format!(
            "an operation uses {a:?} for two of its buffers"
        )))
    }
}

/// Whether two matrices can share one paired launch.
fn same_shape(a: &GpuMatrix, b: &GpuMatrix) -> bool {
    (a.dtype, a.layout, a.n_rows, a.n_cols) == (b.dtype, b.layout, b.n_rows, b.n_cols)
}

/// Whether `lead`'s rows can go first in a launch of `b`'s product (same type and width).
fn same_rows_of(lead: &GpuMatrix, b: &GpuMatrix) -> bool {
    (lead.dtype, lead.layout, lead.n_cols) == (b.dtype, b.layout, b.n_cols)
}

impl GpuStep<'_> {
    /// `X += input`, or with `over_split` on a tensor split's device, `X += Σ input` over
    /// the split's devices.
    fn join_residual(&mut self, input: Act, over_split: bool) -> Result<()> {
        let s = &mut *self.state;
        s.readable(input)?;
        s.wrote(Act::X);
        let n = s.step.n_tokens * s.shape.n_embd;
        let (input, x) = pair(&mut s.acts, input, Act::X)?;
        match &mut s.exchange {
            Some(exchange) if over_split => s.ops.peer_sum_into(self.stream, exchange, x, input, n),
            _ => s.ops.add_assign(self.stream, x, input, n),
        }
    }
}

impl Backend for GpuStep<'_> {
    type Matrix<'w> = GpuMatrix;
    type Vector = DeviceBuffer<f32>;

    /// Queues the gather of its inputs out of page-locked memory (after waiting for the
    /// previous step's to have read it) and never runs while a graph records: the gather
    /// precedes, in stream order, whatever reads the buffers.
    fn begin_step(&mut self, step: &Step) -> Result<()> {
        let (stream, state) = (self.stream, &mut *self.state);
        if step.full.block_size != state.block_size || step.full.n_logical.len() != state.n_seq {
            return Err(Error::InvalidArgument(
                "the step's tables do not match this context's GPU state".into(),
            ));
        }
        // A new step's activations are all written before they are read: nothing
        // quantized from the last step is current, and no RoPE is waiting for attention
        // (a step that failed between the two may have left one).
        state.q8_of = None;
        state.unscaled_of = None;
        state.deferred_rope = None;
        state.step.upload(stream, &state.ops, step)?;
        let block_bytes = state.block_size * state.kv_type.bytes(state.shape.kv_dim());
        let sizes = state.sizes;
        for (window, tables) in [(false, Some(&step.full)), (true, step.window.as_ref())] {
            let Some(tables) = tables else { continue };
            for &(src, dst) in &tables.block_copies {
                let (src, dst) = (src as usize * block_bytes, dst as usize * block_bytes);
                let caches = state.k_cache.iter_mut().zip(state.v_cache.iter_mut());
                for (layer, (k, v)) in caches.enumerate() {
                    if sizes.reads_window(layer) == window && state.layers.contains(&layer) {
                        k.copy_within(stream, src, dst, block_bytes)?;
                        v.copy_within(stream, src, dst, block_bytes)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn embed(&mut self, table: &GpuMatrix) -> Result<()> {
        let s = &mut *self.state;
        s.wrote(Act::X);
        let view = table.view()?;
        let x = &mut s.acts[Act::X as usize];
        s.ops
            .embedding(self.stream, &view, &s.step.tokens, s.step.n_tokens, x)
    }

    fn scale(&mut self, x: Act, factor: f32) -> Result<()> {
        let s = &mut *self.state;
        s.readable(x)?;
        s.wrote(x);
        let n = s.step.n_tokens * s.shape.width(x);
        s.ops.scale(self.stream, &mut s.acts[x as usize], factor, n)
    }

    fn add_bias(&mut self, x: Act, bias: &DeviceBuffer<f32>) -> Result<()> {
        let s = &mut *self.state;
        let width = s.shape.width(x);
        if bias.len() != width {
            return Err(Error::InvalidArgument(format!(
                "a bias of {} values for {x:?} rows of {width}",
                bias.len()
            )));
        }
        s.readable(x)?;
        s.wrote(x);
        let n = s.step.n_tokens;
        s.ops
            .add_bias(self.stream, &mut s.acts[x as usize], bias, n)
    }

    fn head_rms_norm(&mut self, x: Act, weight: &DeviceBuffer<f32>, eps: f32) -> Result<()> {
        let s = &mut *self.state;
        let hd = s.shape.head_dim;
        if !matches!(x, Act::Q | Act::K) || weight.len() != hd {
            return Err(Error::InvalidArgument(format!(
                "a per-head norm of {x:?} with {} weights: only Q and K are made of heads of \
                 {hd}",
                weight.len()
            )));
        }
        s.wrote(x);
        let n_rows = s.step.n_tokens * s.shape.width(x) / hd;
        s.ops
            .rms_norm_in_place(self.stream, &mut s.acts[x as usize], weight, eps, n_rows)
    }

    fn rms_norm(&mut self, x: Act, weight: &DeviceBuffer<f32>, eps: f32, out: Act) -> Result<()> {
        let s = &mut *self.state;
        s.readable(x)?;
        s.wrote(out);
        let n = s.step.n_tokens;
        let quantize = n <= MAX_Q8_TOKENS && weight.len().is_multiple_of(Q8_GROUP);
        let (input, output) = pair(&mut s.acts, x, out)?;
        let q8 = quantize.then_some(&mut s.q8);
        s.ops
            .rms_norm(self.stream, input, weight, eps, n, output, q8)?;
        if quantize {
            s.q8_of = Some(out);
        }
        Ok(())
    }

    /// Where a fused kernel takes them (the integer products, F16's one-token product),
    /// two consecutive products of matrices of one type and shape (K and V) run as one
    /// launch, and a product of the same type and width just before them (Q) rides along.
    /// For one token, three integer products whose third is of another type (V with more
    /// bits) run as one mixed launch.
    fn matmul(&mut self, x: Act, products: &[(&GpuMatrix, Act)]) -> Result<()> {
        let mut rest = products;
        while let [(w, out), tail @ ..] = rest {
            let s = &mut *self.state;
            let view = w.view()?;
            s.wrote(*out);
            let n = s.step.n_tokens;
            let ops = Arc::clone(&s.ops);
            let Some(kind) = ops.fused_kind(&view, n) else {
                s.readable(x)?;
                let (input, output) = pair(&mut s.acts, x, *out)?;
                ops.matvec_any(self.stream, &mut s.prefill, &view, input, n, output)?;
                rest = tail;
                continue;
            };
            let store = ProductOutput::Store;
            match tail {
                [(w_b, out_b), (w_c, out_c), after @ ..]
                    if same_shape(w_b, w_c) && same_rows_of(w, w_b) =>
                {
                    let (view_b, view_c) = (w_b.view()?, w_c.view()?);
                    s.wrote(*out_b);
                    s.wrote(*out_c);
                    let (input, [y_lead, y, y_b]) =
                        s.fused_buffers(self.stream, kind, x, [*out, *out_b, *out_c])?;
                    let lead = LeadingMatrix {
                        w: &view,
                        y: y_lead,
                    };
                    let second = SecondMatrix {
                        w: &view_c,
                        y: Some(y_b),
                    };
                    let (lead, second) = (Some(lead), Some(second));
                    ops.fused_matvec(self.stream, input, lead, &view_b, second, n, y, store)?;
                    rest = after;
                }
                [(w_b, out_b), (w_c, out_c), after @ ..]
                    if kind == FusedKind::Integer && n == 1 && mixed_launch(&ops, w, w_b, w_c) =>
                {
                    let (view_b, view_c) = (w_b.view()?, w_c.view()?);
                    s.wrote(*out_b);
                    s.wrote(*out_c);
                    let (input, [y, y_b, y_c]) =
                        s.fused_buffers(self.stream, kind, x, [*out, *out_b, *out_c])?;
                    let ProductInput::Q8(q8, norm) = input else {
                        return Err(Error::InvalidArgument(
                            "an integer product's input is not Q8".into(),
                        ));
                    };
                    let products = [(&view, y), (&view_b, y_b), (&view_c, y_c)]
                        .map(|(w, y)| MixedProduct { w, y });
                    ops.matvec_q8_mixed(self.stream, products, q8, norm)?;
                    rest = after;
                }
                [(w_b, out_b), after @ ..] if same_shape(w, w_b) => {
                    let view_b = w_b.view()?;
                    s.wrote(*out_b);
                    let (input, [y, y_b]) =
                        s.fused_buffers(self.stream, kind, x, [*out, *out_b])?;
                    let second = SecondMatrix {
                        w: &view_b,
                        y: Some(y_b),
                    };
                    ops.fused_matvec(self.stream, input, None, &view, Some(second), n, y, store)?;
                    rest = after;
                }
                _ => {
                    let (input, [y]) = s.fused_buffers(self.stream, kind, x, [*out])?;
                    ops.fused_matvec(self.stream, input, None, &view, None, n, y, store)?;
                    rest = tail;
                }
            }
        }
        Ok(())
    }

    /// In a one-token step whose attention kernel can do it, left to `attention` (one
    /// launch fewer a layer, the same results); otherwise a launch of its own.
    fn rope_and_store_kv(&mut self, layer: usize, rope: &Rope) -> Result<()> {
        let s = &mut *self.state;
        s.readable_all(&[Act::Q, Act::K, Act::V])?;
        s.wrote(Act::Q);
        s.wrote(Act::K);
        let params = RopeParams {
            style: rope.style,
            base: rope.base,
            rope_dims: rope.dims,
        };
        if s.step.n_tokens == 1 && s.ops.decode_attention_rotates(&s.heads, s.kv_type) {
            s.deferred_rope = Some((layer, params));
            return Ok(());
        }
        let [_, _, q, k, v, ..] = &mut s.acts[..] else {
            return Err(Error::InvalidArgument("activation buffers missing".into()));
        };
        let buffers = RopeKvWrite {
            q,
            k,
            v,
            pos: &s.step.positions,
            write_slot: &s.step.tables(s.sizes.reads_window(layer)).write_slots,
            k_cache: &mut s.k_cache[layer],
            v_cache: &mut s.v_cache[layer],
            kv_type: s.kv_type,
        };
        s.ops
            .rope_kv_write(self.stream, &params, &s.heads, s.step.n_tokens, buffers)
    }

    fn attention(&mut self, layer: usize, scale: f32, window: Option<usize>) -> Result<()> {
        let s = &mut *self.state;
        s.readable_all(&[Act::Q, Act::K, Act::V])?;
        s.wrote(Act::Attn);
        let n = s.step.n_tokens;
        let rope_params = match s.deferred_rope.take() {
            Some((rope_layer, params)) if rope_layer == layer => Some(params),
            None => None,
            Some((rope_layer, _)) => {
                return Err(Error::InvalidArgument(format!(
                    "layer {layer}'s attention after layer {rope_layer}'s RoPE"
                )));
            }
        };
        let (Some(k_cache), Some(v_cache)) = (s.k_cache.get_mut(layer), s.v_cache.get_mut(layer))
        else {
            return Err(Error::InvalidArgument(format!(
                "no KV cache for layer {layer}"
            )));
        };
        let tables = s.step.tables(s.sizes.reads_window(layer));
        let mut kv = PagedKv {
            k_cache,
            v_cache,
            kv_type: s.kv_type,
            block_tables: &tables.block_tables,
            slot_positions: &tables.slot_positions,
            n_logical: &tables.n_logical,
            n_seq: s.n_seq,
            max_blocks: tables.max_blocks,
            block_size: s.block_size,
            window,
        };
        let tokens = StepTokens {
            seq_index: &s.step.seq_of_token,
            pos: &s.step.positions,
            n_tokens: n,
        };
        let [_, _, q, k, v, out, ..] = &mut s.acts[..] else {
            return Err(Error::InvalidArgument("activation buffers missing".into()));
        };
        // The output as Q8 too, for the product that reads it next, where the attention
        // kernel can write it (it then holds no other activation).
        let q8 = (n <= MAX_Q8_TOKENS).then_some(&mut s.q8);
        if q8.is_some() {
            s.q8_of = None;
        }
        let quantized = if n == 1 {
            let rope = rope_params.as_ref().map(|params| DecodeRope {
                params,
                k,
                v,
                write_slot: &tables.write_slots,
            });
            s.ops.attention_decode(
                self.stream,
                &s.heads,
                scale,
                &mut kv,
                &tokens,
                q,
                out,
                &mut s.workspace,
                q8,
                rope,
            )?
        } else {
            s.ops
                .attention_prefill(self.stream, &s.heads, scale, &mut kv, &tokens, q, out, q8)?
        };
        if quantized {
            s.q8_of = Some(Act::Attn);
        }
        Ok(())
    }

    fn swiglu(&mut self) -> Result<()> {
        let s = &mut *self.state;
        s.readable_all(&[Act::Gate, Act::Up])?;
        s.wrote(Act::Gate);
        let n = s.step.n_tokens * s.shape.n_ff;
        let (up, gate) = pair(&mut s.acts, Act::Up, Act::Gate)?;
        s.ops.gated(self.stream, Gate::Silu, gate, up, n)
    }

    fn geglu(&mut self) -> Result<()> {
        let s = &mut *self.state;
        s.readable_all(&[Act::Gate, Act::Up])?;
        s.wrote(Act::Gate);
        let n = s.step.n_tokens * s.shape.n_ff;
        let (up, gate) = pair(&mut s.acts, Act::Up, Act::Gate)?;
        s.ops.gated(self.stream, Gate::Gelu, gate, up, n)
    }

    fn add_to_residual(&mut self, input: Act) -> Result<()> {
        self.join_residual(input, false)
    }

    fn add_sum_to_residual(&mut self, input: Act) -> Result<()> {
        self.join_residual(input, true)
    }

    fn sum_in_place(&mut self, x: Act) -> Result<()> {
        if self.state.exchange.is_none() {
            return Ok(());
        }
        let s = &mut *self.state;
        s.readable(x)?;
        s.wrote(x);
        let n = s.step.n_tokens * s.shape.width(x);
        let Some(exchange) = &mut s.exchange else {
            return Ok(());
        };
        s.ops
            .peer_sum_in_place(self.stream, exchange, &mut s.acts[x as usize], n)
    }

    /// Where a fused kernel takes it, one launch that adds each row's product into `X`.
    fn matmul_into_residual(&mut self, x: Act, w: &GpuMatrix) -> Result<()> {
        let s = &mut *self.state;
        let view = w.view()?;
        let n = s.step.n_tokens;
        let ops = Arc::clone(&s.ops);
        let kind = ops.fused_kind(&view, n).filter(|_| x != Act::X);
        let Some(kind) = kind else {
            self.matmul(x, &[(w, Act::Proj)])?;
            return self.add_to_residual(Act::Proj);
        };
        s.wrote(Act::X);
        let (input, [y]) = s.fused_buffers(self.stream, kind, x, [Act::X])?;
        let add = ProductOutput::Add;
        ops.fused_matvec(self.stream, input, None, &view, None, n, y, add)
    }

    /// In a one-token step where the product and every reader have integer kernels, or all
    /// have the one-token F16 kernel, one launch that adds the product into `X` and
    /// prepares the norm ([`PreparedNorm`]), which the readers' products finish: the norm's
    /// own launch is saved. Otherwise the two operations.
    fn matmul_into_residual_and_norm(
        &mut self,
        x: Act,
        w: &GpuMatrix,
        norm: &DeviceBuffer<f32>,
        eps: f32,
        out: Act,
        readers: &[&GpuMatrix],
    ) -> Result<()> {
        let s = &mut *self.state;
        let view = w.view()?;
        let ops = Arc::clone(&s.ops);
        let held_in = s.prepared_form(norm, out, readers).filter(|&form| {
            !matches!(x, Act::X | Act::Xn)
                && x != out
                && view.n_rows == s.shape.n_embd
                && match form {
                    PreparedIn::Unscaled => ops.has_q8_add_norm(&view),
                    PreparedIn::StreamTimesWeights => {
                        ops.fused_kind(&view, 1) == Some(FusedKind::F16)
                    }
                }
        });
        let Some(held_in) = held_in else {
            self.matmul_into_residual(x, w)?;
            return self.rms_norm(Act::X, norm, eps, out);
        };
        // An integer product's input not quantized yet (the SwiGLU before the down product)
        // and narrow enough is quantized by each block of the launch for itself: one launch
        // fewer.
        let staged = s.q8_of != Some(x) && ops.add_norm_stages_f32(&view);
        if held_in == PreparedIn::Unscaled && !staged {
            s.quantize(self.stream, x)?;
        }
        s.readable(x)?;
        s.wrote(Act::X);
        s.wrote(out);
        let [input, stream_x, output] = s
            .acts
            .get_disjoint_mut([x as usize, Act::X as usize, out as usize])
            .map_err(|_| {
                Error::InvalidArgument(format!("no distinct buffers for {x:?} and {out:?}"))
            })?;
        match held_in {
            PreparedIn::Unscaled => {
                let input = match staged {
                    true => AddNormInput::F32(input),
                    false => AddNormInput::Q8(&s.q8),
                };
                ops.matvec_q8_add_norm(self.stream, &view, input, stream_x, norm, &mut s.unscaled)?;
            }
            PreparedIn::StreamTimesWeights => {
                ops.matvec1_f16_add_norm(self.stream, &view, input, stream_x, norm, output)?;
            }
        }
        s.unscaled_of = Some(PreparedNorm {
            of: out,
            eps,
            held_in,
        });
        Ok(())
    }

    /// The norm prepared as `matmul_into_residual_and_norm` would prepare it, from `X` alone
    /// (`GpuOps::prepare_norm_*`): the same bits for the readers, one launch.
    fn prepare_norm(
        &mut self,
        norm: &DeviceBuffer<f32>,
        eps: f32,
        out: Act,
        readers: &[&GpuMatrix],
    ) -> Result<()> {
        let s = &mut *self.state;
        let Some(held_in) = s.prepared_form(norm, out, readers) else {
            return self.rms_norm(Act::X, norm, eps, out);
        };
        s.readable(Act::X)?;
        s.wrote(out);
        let (stream_x, output) = pair(&mut s.acts, Act::X, out)?;
        match held_in {
            PreparedIn::Unscaled => {
                s.ops
                    .prepare_norm_q8(self.stream, stream_x, norm, &mut s.unscaled)?
            }
            PreparedIn::StreamTimesWeights => {
                s.ops
                    .prepare_norm_f32(self.stream, stream_x, norm, output)?
            }
        }
        s.unscaled_of = Some(PreparedNorm {
            of: out,
            eps,
            held_in,
        });
        Ok(())
    }

    /// Where a fused kernel takes them, one launch that computes both products of each
    /// row and combines them.
    fn matmul_swiglu<'w>(&mut self, x: Act, gate: &GpuMatrix, up: &GpuMatrix) -> Result<()> {
        let s = &mut *self.state;
        let (gate_view, up_view) = (gate.view()?, up.view()?);
        let n = s.step.n_tokens;
        let ops = Arc::clone(&s.ops);
        let kind = ops
            .fused_kind(&gate_view, n)
            .filter(|_| !matches!(x, Act::Gate | Act::Up) && same_shape(gate, up));
        let Some(kind) = kind else {
            self.matmul(x, &[(gate, Act::Gate), (up, Act::Up)])?;
            return self.swiglu();
        };
        s.wrote(Act::Gate);
        let (input, [y]) = s.fused_buffers(self.stream, kind, x, [Act::Gate])?;
        let second = SecondMatrix {
            w: &up_view,
            y: None,
        };
        let swiglu = ProductOutput::Swiglu;
        ops.fused_matvec(
            self.stream,
            input,
            None,
            &gate_view,
            Some(second),
            n,
            y,
            swiglu,
        )
    }

    /// Queues the logits' computation and their argmax; [`GpuBackend::finish_step`] waits
    /// for the argmax after the forward pass (or its graph) has been queued.
    fn output_logits(
        &mut self,
        norm: &DeviceBuffer<f32>,
        eps: f32,
        output: &GpuMatrix,
    ) -> Result<()> {
        let (s, stream) = (&mut *self.state, self.stream);
        let (d, n_out) = (s.shape.n_embd, s.step.n_outputs);
        let rows = if s.step.outputs_are_leading_rows() {
            &s.acts[Act::X as usize]
        } else {
            for (i, &t) in s.step.output_tokens.iter().enumerate() {
                s.out_rows.copy_range_from(
                    stream,
                    &s.acts[Act::X as usize],
                    t as usize * d,
                    i * d,
                    d,
                )?;
            }
            &s.out_rows
        };
        let view = output.view()?;
        // The Q8 buffers may hold an activation; the norm's rows replace it.
        s.q8_of = None;
        let integer = s.ops.has_q8_matvec(&view, n_out);
        let q8 = integer.then_some(&mut s.q8);
        s.ops
            .rms_norm(stream, rows, norm, eps, n_out, &mut s.out_norm, q8)?;
        let logits = &mut s.logits_device;
        if integer {
            s.ops.matvec_q8(
                stream,
                &view,
                None,
                &s.q8,
                n_out,
                logits,
                ProductOutput::Store,
            )?;
        } else {
            s.ops
                .matvec_any(stream, &mut s.prefill, &view, &s.out_norm, n_out, logits)?;
        }
        let n_vocab = s.shape.n_vocab;
        let argmax = s.device_argmax.as_mut().ok_or_else(|| {
            Error::InvalidArgument("the output head runs where logits are computed".into())
        })?;
        s.ops.argmax(
            stream,
            logits,
            n_out,
            n_vocab,
            &mut argmax.scratch,
            &mut argmax.choices,
        )
    }

    fn memory(&self) -> BackendMemory {
        self.state.memory()
    }
}

/// Whether `a`, `b` and `c` (Q, K and V, where V's type is not the others') take one
/// mixed launch ([`GpuOps::matvec_q8_mixed`]).
fn mixed_launch(ops: &GpuOps, a: &GpuMatrix, b: &GpuMatrix, c: &GpuMatrix) -> bool {
    match (a.view(), b.view(), c.view()) {
        (Ok(a), Ok(b), Ok(c)) => ops.has_q8_mixed(&a, &b, &c),
        _ => false,
    }
}
