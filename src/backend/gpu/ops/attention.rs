//! Attention over the paged KV cache (`kernels/attention.hip`): one query head of one
//! token a block (rf_attention_token_d*) wherever its limits allow, decode's keys split
//! over blocks ("flash-decoding") that merge their own results; beyond those limits
//! (heads over 256 values or not a multiple of the warp), a tiled flash-attention kernel,
//! with a combine launch for decode's splits. Prefill over an F16 cache runs on the
//! tensor cores where the device has them (`attention_mma.rs`).

use super::super::safe::{
    Device, DeviceBuffer, Dim3, Function, KernelArgs, LaunchConfig, Module, Stream,
};
use super::attention_mma::{self, MmaAttentionKernels};
use super::matvec_q8::Q8Buffers;
use super::rope::RopeParams;
use super::{
    GpuOps, HeadShape, MAX_GRID_X, MAX_GRID_YZ, PerKvType, cache_slots, check_buffer, product,
    to_u32,
};
use crate::backend::{KvType, RopeStyle};
use crate::error::{Error, Result};

/// Threads per attention block.
const THREADS: u32 = 256;
/// The kernel's `MAX_OUTPUTS_PER_THREAD`: a block's query rows times head_dim may be at
/// most THREADS times this.
const MAX_OUTPUTS_PER_THREAD: usize = 16;
/// Dynamic shared memory every target grants a block without opting in (48 KiB), less
/// room for the kernel's static `stop` flag.
const MAX_SHARED_BYTES: usize = 48 * 1024 - 64;
/// Threads of a combine block (they walk head_dim).
const COMBINE_THREADS: u32 = 128;

/// rf_attention_token's block size and limits (its TOKEN_* constants).
const TOKEN_THREADS: u32 = 512;
const TOKEN_MAX_WARPS: usize = 16;
const TOKEN_MAX_HEAD_DIM: usize = 256;
/// Its instances: head dimensions per lane (`rf_attention_token_d{N}`).
const TOKEN_DIMS_PER_LANE: [usize; 4] = [1, 2, 4, 8];

/// One layer's paged KV cache and the block tables of the step's sequences, in device
/// memory (the layout of `src/kv_cache/sequence_table.rs`).
pub struct PagedKv<'a> {
    /// `[n_slots, n_kv_heads * head_dim]` values each, as `kv_type` stores them. Mutable:
    /// decode attention with a [`DecodeRope`] stores the step's key and value.
    pub k_cache: &'a mut DeviceBuffer<u8>,
    pub v_cache: &'a mut DeviceBuffer<u8>,
    pub kv_type: KvType,
    /// `[n_seq, max_blocks]` each sequence's blocks in token order.
    pub block_tables: &'a DeviceBuffer<u32>,
    /// `[n_seq, max_blocks * block_size]` the position of each logical slot's token, or
    /// `EMPTY_SLOT` (i32::MAX) for a hole or an unwritten slot.
    pub slot_positions: &'a DeviceBuffer<i32>,
    /// `[n_seq]` logical slots in use per sequence, holes included.
    pub n_logical: &'a DeviceBuffer<u32>,
    pub n_seq: usize,
    pub max_blocks: usize,
    pub block_size: usize,
    /// A sliding window: each token sees only the last `window` positions.
    pub window: Option<usize>,
}

/// The step's query tokens: which sequence each belongs to and its position.
pub struct StepTokens<'a> {
    /// `[n_tokens]` index into the sequences of [`PagedKv`].
    pub seq_index: &'a DeviceBuffer<u32>,
    /// `[n_tokens]`
    pub pos: &'a DeviceBuffer<i32>,
    pub n_tokens: usize,
}

/// The step's RoPE and K/V cache write, done by decode attention itself (one launch fewer
/// a layer): the work of [`GpuOps::rope_kv_write`] for a one-token step, with the same
/// results bit for bit. The query given to attention is then the one before RoPE.
pub struct DecodeRope<'a> {
    pub params: &'a RopeParams,
    /// `[1, n_kv_heads * head_dim]` the token's key before RoPE, and its value.
    pub k: &'a DeviceBuffer<f32>,
    pub v: &'a DeviceBuffer<f32>,
    /// `[1]` the flat cache slot receiving them.
    pub write_slot: &'a DeviceBuffer<u32>,
}

/// Scratch for the split-K decode launch: each split's unnormalised result, max and sum.
/// Allocated once per context for its largest decode batch.
pub struct AttentionWorkspace {
    /// `[max_tokens, n_head, max_splits, head_dim]`
    partial_acc: DeviceBuffer<f32>,
    /// `[max_tokens, n_head, max_splits, 2]`
    partial_ml: DeviceBuffer<f32>,
    /// `[max_tokens, n_head]` rf_attention_token's tickets: zero between launches.
    tickets: DeviceBuffer<u32>,
    keys_per_split: usize,
}

impl AttentionWorkspace {
    /// Room for `max_tokens` decode tokens over sequences of up to `max_slots` logical
    /// slots (max_blocks * block_size), split into pieces of `keys_per_split` slots.
    pub fn new(
        device: &Device,
        heads: &HeadShape,
        max_tokens: usize,
        max_slots: usize,
        keys_per_split: usize,
    ) -> Result<AttentionWorkspace> {
        heads.check()?;
        if keys_per_split == 0 {
            return Err(Error::InvalidArgument(
                "keys_per_split must be at least 1".into(),
            ));
        }
        let max_splits = max_slots.div_ceil(keys_per_split).max(1);
        let rows = product(
            "attention workspace",
            &[max_tokens, heads.n_head, max_splits],
        )?;
        let tickets =
            device.alloc_zeroed(product("attention tickets", &[max_tokens, heads.n_head])?)?;
        Ok(AttentionWorkspace {
            partial_acc: device.alloc(product("attention workspace", &[rows, heads.head_dim])?)?,
            partial_ml: device.alloc(product("attention workspace", &[rows, 2])?)?,
            tickets,
            keys_per_split,
        })
    }

    /// Device bytes held.
    pub fn bytes(&self) -> u64 {
        [
            self.partial_acc.size_bytes(),
            self.partial_ml.size_bytes(),
            self.tickets.size_bytes(),
        ]
        .iter()
        .map(|&b| b as u64)
        .sum()
    }

    /// What [`AttentionWorkspace::new`] allocates for the same arguments: per split row
    /// its head_dim values, max and sum, and a ticket per token and head, 4 bytes each.
    pub fn planned_bytes(
        heads: &HeadShape,
        max_tokens: usize,
        max_slots: usize,
        keys_per_split: usize,
    ) -> u128 {
        let max_splits = max_slots.div_ceil(keys_per_split.max(1)).max(1) as u128;
        let per_token_head = max_splits * (heads.head_dim as u128 + 2) + 1;
        4 * max_tokens as u128 * heads.n_head as u128 * per_token_head
    }
}

pub(super) struct AttentionKernels {
    paged: PerKvType,
    /// By head dimensions per lane, as TOKEN_DIMS_PER_LANE.
    per_token: Vec<PerKvType>,
    combine: Function,
    /// Prefill on tensor cores, where the vendor has the kernel.
    mma: Option<MmaAttentionKernels>,
    warp_size: usize,
}

impl AttentionKernels {
    /// `warp_size` is 32 or 64 (checked by the caller).
    pub(super) fn load(
        device: &Device,
        module: &Module,
        warp_size: u32,
    ) -> Result<AttentionKernels> {
        Ok(AttentionKernels {
            paged: PerKvType::load(module, "rf_attention_paged")?,
            per_token: TOKEN_DIMS_PER_LANE
                .iter()
                .map(|dims| PerKvType::load(module, &format!("rf_attention_token_d{dims}")))
                .collect::<Result<_>>()?,
            combine: module.function("rf_attention_combine")?,
            mma: MmaAttentionKernels::load(device)?,
            warp_size: warp_size as usize,
        })
    }

    /// rf_attention_token's instance for `heads`, if its limits (`kernels/attention.hip`)
    /// admit them: a head of 8-value pieces, at most TOKEN_MAX_HEAD_DIM values, spread
    /// evenly over a warp's lanes.
    fn per_token(&self, heads: &HeadShape, kv_type: KvType) -> Option<&Function> {
        let hd = heads.head_dim;
        if !hd.is_multiple_of(8)
            || !hd.is_multiple_of(self.warp_size)
            || hd > TOKEN_MAX_HEAD_DIM
            || TOKEN_THREADS as usize / self.warp_size > TOKEN_MAX_WARPS
        {
            return None;
        }
        let at = TOKEN_DIMS_PER_LANE
            .iter()
            .position(|&d| d == hd / self.warp_size)?;
        self.per_token.get(at).map(|kernels| kernels.get(kv_type))
    }
}

/// How one launch of `rf_attention_paged` divides the work.
struct Tiling {
    tokens_per_tile: usize,
    keys_per_tile: usize,
    keys_per_split: usize,
    n_splits: usize,
}

impl Tiling {
    /// Keys staged per tile: fewer for wide heads, so K and V tiles fit beside the queries.
    fn keys_per_tile(head_dim: usize) -> usize {
        if head_dim <= 128 { 32 } else { 16 }
    }

    /// The most tokens a block can hold: its query rows times head_dim outputs must fit
    /// the threads' accumulators, and the rows with their K and V tiles the shared memory
    /// (which binds first for small heads: 128 tokens of two 16-value heads would need 53
    /// KiB).
    fn max_tokens_per_tile(heads: &HeadShape) -> Result<usize> {
        let group = heads.n_head / heads.n_kv_heads;
        let per_token = group * heads.head_dim;
        let capacity = THREADS as usize * MAX_OUTPUTS_PER_THREAD;
        let (hd, t) = (heads.head_dim, Tiling::keys_per_tile(heads.head_dim));
        let fixed = 4 * 2 * t + 2 * 2 * t * hd;
        let per_row = 4 * (hd + t + 3);
        let rows_in_shared = MAX_SHARED_BYTES.saturating_sub(fixed) / per_row;
        let tokens = (capacity / per_token).min(rows_in_shared / group);
        if tokens == 0 {
            return Err(Error::Unsupported(format!(
                "GPU attention with {group} query heads of {hd} values per K/V head (at most \
                 {capacity} values, and {rows_in_shared} query rows in shared memory)"
            )));
        }
        Ok(tokens)
    }

    /// Bytes of dynamic shared memory: the layout at the top of `rf_attention_paged`.
    fn shared_bytes(&self, heads: &HeadShape) -> usize {
        let rows = self.tokens_per_tile * (heads.n_head / heads.n_kv_heads);
        let (hd, t) = (heads.head_dim, self.keys_per_tile);
        4 * (rows * hd + rows * t + 3 * rows + 2 * t) + 2 * 2 * t * hd
    }
}

/// The inputs and output of one attention launch.
struct Launch<'a> {
    heads: &'a HeadShape,
    scale: f32,
    tokens: &'a StepTokens<'a>,
    q: &'a DeviceBuffer<f32>,
    tiling: Tiling,
    /// Whether the tensor-core prefill kernel may take it (a prefill with no Q8 output).
    tensor_cores: bool,
    /// The step's RoPE, for the per-token kernel to do (decode of one token).
    rope: Option<DecodeRope<'a>>,
}

impl GpuOps {
    /// Attention of a batch of many tokens (prefill). `q` is `[n_tokens, n_head *
    /// head_dim]` with RoPE applied and the tokens' own K/V already in the cache; `out`
    /// receives `[n_tokens, n_head * head_dim]`. Each token attends to its sequence's
    /// logical slots below `n_logical` whose position is at most its own; `scale`
    /// multiplies the scores (1 / sqrt(head_dim)). With `quantized`, the one-token-a-block
    /// kernel also writes the output there as Q8 activations; returns whether it did (the
    /// tiled kernel does not). Without `quantized`, an F16 cache's prefill runs on the
    /// tensor cores where the device has them.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_prefill(
        &self,
        stream: &Stream,
        heads: &HeadShape,
        scale: f32,
        kv: &mut PagedKv<'_>,
        tokens: &StepTokens<'_>,
        q: &DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
        quantized: Option<&mut Q8Buffers>,
    ) -> Result<bool> {
        heads.check()?;
        let tiling = Tiling {
            tokens_per_tile: Tiling::max_tokens_per_tile(heads)?,
            keys_per_tile: Tiling::keys_per_tile(heads.head_dim),
            keys_per_split: product("attention slots", &[kv.max_blocks, kv.block_size])?.max(1),
            n_splits: 1,
        };
        let launch = Launch {
            heads,
            scale,
            tokens,
            q,
            tiling,
            tensor_cores: quantized.is_none(),
            rope: None,
        };
        self.launch_attention(stream, launch, kv, out, None, quantized)
    }

    /// Attention of a few tokens (decode), as [`GpuOps::attention_prefill`] computes it:
    /// one block per token, K/V head and split of `workspace`'s keys_per_split logical
    /// slots, then a combine of the splits. The launch geometry depends only on the
    /// shapes (never on the cached lengths), so a captured graph replays it for any length.
    /// With `rope` (one token, where [`GpuOps::decode_attention_rotates`]), `q` is the
    /// query before RoPE and the launch also does [`GpuOps::rope_kv_write`]'s work.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_decode(
        &self,
        stream: &Stream,
        heads: &HeadShape,
        scale: f32,
        kv: &mut PagedKv<'_>,
        tokens: &StepTokens<'_>,
        q: &DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
        workspace: &mut AttentionWorkspace,
        quantized: Option<&mut Q8Buffers>,
        rope: Option<DecodeRope<'_>>,
    ) -> Result<bool> {
        heads.check()?;
        Tiling::max_tokens_per_tile(heads)?;
        let max_slots = product("attention slots", &[kv.max_blocks, kv.block_size])?;
        let keys_per_split = workspace.keys_per_split;
        let tiling = Tiling {
            tokens_per_tile: 1,
            keys_per_tile: Tiling::keys_per_tile(heads.head_dim),
            keys_per_split,
            n_splits: max_slots.div_ceil(keys_per_split).max(1),
        };
        let launch = Launch {
            heads,
            scale,
            tokens,
            q,
            tiling,
            tensor_cores: false,
            rope,
        };
        self.launch_attention(stream, launch, kv, out, Some(workspace), quantized)
    }

    /// Whether [`GpuOps::attention_decode`] can do a one-token step's RoPE and cache write
    /// for these heads and cache type (its per-token kernel takes them).
    pub fn decode_attention_rotates(&self, heads: &HeadShape, kv_type: KvType) -> bool {
        self.attention.per_token(heads, kv_type).is_some()
    }

    fn launch_attention(
        &self,
        stream: &Stream,
        launch: Launch<'_>,
        kv: &mut PagedKv<'_>,
        out: &mut DeviceBuffer<f32>,
        workspace: Option<&mut AttentionWorkspace>,
        mut quantized: Option<&mut Q8Buffers>,
    ) -> Result<bool> {
        let Launch {
            heads,
            scale,
            tokens,
            q,
            ref tiling,
            tensor_cores,
            ref rope,
        } = launch;
        let n_tokens = tokens.n_tokens;
        let q_dim = heads.q_dim();
        let q_values = product("attention queries", &[n_tokens, q_dim])?;
        check_buffer("attention q", q, q_values, stream)?;
        check_buffer("attention output", out, q_values, stream)?;
        check_buffer("attention seq_index", tokens.seq_index, n_tokens, stream)?;
        check_buffer("attention pos", tokens.pos, n_tokens, stream)?;
        let n_slots = check_cache(kv, heads, stream)?;
        // 0 is the kernels' "no window"; one past u32 sees every position anyway.
        let window = match kv.window {
            None => 0,
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "a sliding window of 0 positions".into(),
                ));
            }
            Some(w) => u32::try_from(w).unwrap_or(0),
        };
        let slots_per_seq = product("attention slots", &[kv.max_blocks, kv.block_size])?;
        check_buffer(
            "attention block_tables",
            kv.block_tables,
            product("attention block_tables", &[kv.n_seq, kv.max_blocks])?,
            stream,
        )?;
        check_buffer(
            "attention slot_positions",
            kv.slot_positions,
            product("attention slot_positions", &[kv.n_seq, slots_per_seq])?,
            stream,
        )?;
        check_buffer("attention n_logical", kv.n_logical, kv.n_seq, stream)?;
        let shared_bytes = tiling.shared_bytes(heads);
        if shared_bytes > MAX_SHARED_BYTES {
            return Err(Error::Unsupported(format!(
                "GPU attention over heads {heads:?} needs {shared_bytes} bytes of shared memory"
            )));
        }
        if n_tokens == 0 {
            return Ok(false);
        }
        let n_splits = tiling.n_splits;
        let partials = match workspace {
            _ if n_splits == 1 => None,
            Some(w) => {
                let rows = product("attention partials", &[n_tokens, heads.n_head, n_splits])?;
                let acc_values = product("attention partials", &[rows, heads.head_dim])?;
                check_buffer(
                    "attention partial results",
                    &w.partial_acc,
                    acc_values,
                    stream,
                )?;
                check_buffer("attention partial sums", &w.partial_ml, rows * 2, stream)?;
                Some(w)
            }
            None => {
                return Err(Error::InvalidArgument(
                    "split-K attention needs a workspace".into(),
                ));
            }
        };
        let mma_kernel = match &self.attention.mma {
            Some(mma) if tensor_cores => mma.for_heads(heads, kv.kv_type),
            _ => None,
        };
        if let Some(kernel) = mma_kernel {
            attention_mma::launch(
                kernel, stream, heads, scale, kv, tokens, n_slots, window, q, out,
            )?;
            return Ok(false);
        }
        // Otherwise one query token a block wherever its limits allow: in decode and in
        // prefill (where it reads each key once per token, but with no barrier per tile of
        // keys, which is what the tiled kernel spends its time on).
        let token_kernel = self.attention.per_token(heads, kv.kv_type);
        let per_token = token_kernel.is_some();
        if let Some(rope) = rope {
            check_decode_rope(rope, heads, n_tokens, per_token, stream)?;
        }
        // The per-token kernel: a block per (token, query head); the tiled one per (tile
        // of tokens, K/V head).
        let (kernel, threads, shared_mem_bytes, tokens_per_block, heads_per_grid) =
            match token_kernel {
                Some(kernel) => (kernel, TOKEN_THREADS, 0, 1, heads.n_head),
                None => {
                    let tiled = self.attention.paged.get(kv.kv_type);
                    let tokens = tiling.tokens_per_tile;
                    (
                        tiled,
                        THREADS,
                        shared_bytes as u32,
                        tokens,
                        heads.n_kv_heads,
                    )
                }
            };
        let grid = Dim3 {
            x: to_u32(
                "attention token tiles",
                n_tokens.div_ceil(tokens_per_block),
                MAX_GRID_X,
            )?,
            y: to_u32("attention heads", heads_per_grid, MAX_GRID_YZ)?,
            z: to_u32("attention splits", n_splits, MAX_GRID_YZ)?,
        };
        let config = LaunchConfig {
            shared_mem_bytes,
            ..LaunchConfig::grid(grid, threads)
        };
        let mut args = KernelArgs::new();
        push_inputs(&mut args, q, kv, tokens, out);
        match &partials {
            Some(w) => args.push(&w.partial_acc).push(&w.partial_ml),
            // Never read with one split: null pointers.
            None => args.push(0u64).push(0u64),
        };
        push_shape(&mut args, heads, scale, kv, n_tokens, n_slots)?;
        args.push(tiling.tokens_per_tile as u32)
            .push(tiling.keys_per_tile as u32)
            .push(to_u32("keys_per_split", tiling.keys_per_split, u32::MAX)?)
            .push(n_splits as u32);
        if per_token {
            match &partials {
                Some(w) => {
                    check_buffer(
                        "attention tickets",
                        &w.tickets,
                        product("attention tickets", &[n_tokens, heads.n_head])?,
                        stream,
                    )?;
                    args.push(&w.tickets);
                }
                // One split: the tickets are never touched.
                None => {
                    args.push(0u64);
                }
            }
            match quantized.as_deref_mut() {
                Some(q8) => {
                    q8.check("attention quantized output", q_values, stream)?;
                    args.push(&mut q8.quants)
                        .push(&mut q8.scales)
                        .push(&mut q8.sums);
                }
                None => {
                    args.push(0u64).push(0u64).push(0u64);
                }
            }
        }
        args.push(window);
        if per_token {
            push_rope(&mut args, rope.as_ref());
        }
        // SAFETY: the arguments match rf_attention_paged's 25 parameters in order (and
        // rf_attention_token_d*'s, which add the tickets: n_tokens * n_head, checked, left
        // zero by every launch; null only with one split, when they are not read; and the
        // fused RoPE's k, v (kv_dim floats), write_slot (1) and scalars, checked for the one
        // token there is, or a null k that turns it off); q, out,
        // seq_index and pos hold what n_tokens tokens need, the tables what n_seq sequences
        // of max_blocks blocks need, the caches n_slots rows of kv_dim (all checked); the
        // kernel treats slots >= n_slots and sequences >= n_seq as empty; with n_splits > 1
        // the partial buffers hold n_tokens * n_head * n_splits rows (checked), with one
        // split they are never touched. THREADS * MAX_OUTPUTS_PER_THREAD covers a tile's
        // outputs (max_tokens_per_tile) and shared_bytes is the kernel's layout. The
        // per-token instance runs only within its limits (`per_token` chose it for this
        // head size), one block per token and query head (the grid covers both), its
        // shared memory static.
        unsafe { kernel.launch(stream, &config, &args) }?;

        // The per-token kernel merges its splits itself.
        if let Some(w) = partials.filter(|_| !per_token) {
            let mut args = KernelArgs::new();
            args.push(&w.partial_acc)
                .push(&w.partial_ml)
                .push(&mut *out)
                .push(n_tokens as u32)
                .push(heads.n_head as u32)
                .push(heads.head_dim as u32)
                .push(n_splits as u32);
            let grid = Dim3 {
                x: to_u32("attention tokens", n_tokens, MAX_GRID_X)?,
                y: to_u32("n_head", heads.n_head, MAX_GRID_YZ)?,
                z: 1,
            };
            let config = LaunchConfig::grid(grid, COMBINE_THREADS);
            // SAFETY: the arguments match rf_attention_combine(partial_acc, partial_ml, out,
            // n_tokens, n_head, head_dim, n_splits); the partials hold n_tokens * n_head *
            // n_splits rows, all written by the launch before it on this stream, and out
            // n_tokens * n_head * head_dim floats (checked above).
            unsafe { self.attention.combine.launch(stream, &config, &args) }?;
        }
        Ok(per_token && quantized.is_some())
    }
}

/// The arguments every attention kernel begins with: `q, k_cache, v_cache,
/// block_tables, slot_positions, n_logical, seq_index, pos, out`.
pub(super) fn push_inputs(
    args: &mut KernelArgs,
    q: &DeviceBuffer<f32>,
    kv: &mut PagedKv<'_>,
    tokens: &StepTokens<'_>,
    out: &mut DeviceBuffer<f32>,
) {
    args.push(q)
        .push(&mut *kv.k_cache)
        .push(&mut *kv.v_cache)
        .push(kv.block_tables)
        .push(kv.slot_positions)
        .push(kv.n_logical)
        .push(tokens.seq_index)
        .push(tokens.pos)
        .push(out);
}

/// The shape arguments that follow: `n_tokens, n_head, n_kv_heads, head_dim, n_seq,
/// max_blocks, block_size, n_slots, scale`.
pub(super) fn push_shape(
    args: &mut KernelArgs,
    heads: &HeadShape,
    scale: f32,
    kv: &PagedKv<'_>,
    n_tokens: usize,
    n_slots: usize,
) -> Result<()> {
    args.push(to_u32("attention tokens", n_tokens, u32::MAX)?)
        .push(heads.n_head as u32)
        .push(heads.n_kv_heads as u32)
        .push(heads.head_dim as u32)
        .push(to_u32("attention sequences", kv.n_seq, u32::MAX)?)
        .push(to_u32("max_blocks", kv.max_blocks, u32::MAX)?)
        .push(to_u32("block_size", kv.block_size, u32::MAX)?)
        .push(n_slots as u64)
        .push(scale);
    Ok(())
}

/// Checks that a decode launch can do the step's RoPE: one token, the per-token kernel,
/// and buffers that hold its key and value.
fn check_decode_rope(
    rope: &DecodeRope<'_>,
    heads: &HeadShape,
    n_tokens: usize,
    per_token: bool,
    stream: &Stream,
) -> Result<()> {
    if n_tokens != 1 || !per_token {
        return Err(Error::InvalidArgument(format!(
            "decode attention does RoPE for one token with a per-token kernel, not \
             {n_tokens} tokens over heads {heads:?}"
        )));
    }
    rope.params.check(heads.head_dim)?;
    check_buffer("attention rope k", rope.k, heads.kv_dim(), stream)?;
    check_buffer("attention rope v", rope.v, heads.kv_dim(), stream)?;
    check_buffer("attention rope write_slot", rope.write_slot, 1, stream)
}

/// The per-token kernel's last arguments: `k_new, v_new, write_slot, rope_dims,
/// theta_scale, neox`, a null `k_new` for none.
fn push_rope(args: &mut KernelArgs, rope: Option<&DecodeRope<'_>>) {
    match rope {
        Some(rope) => {
            args.push(rope.k)
                .push(rope.v)
                .push(rope.write_slot)
                .push(rope.params.rope_dims as u32)
                .push(rope.params.theta_scale())
                .push(u32::from(rope.params.style == RopeStyle::Neox));
        }
        None => {
            args.push(0u64)
                .push(0u64)
                .push(0u64)
                .push(0u32)
                .push(0f32)
                .push(0u32);
        }
    }
}

/// Checks the caches against `heads` and returns their slot count.
fn check_cache(kv: &PagedKv<'_>, heads: &HeadShape, stream: &Stream) -> Result<usize> {
    if kv.block_size == 0 || kv.max_blocks == 0 {
        return Err(Error::InvalidArgument(format!(
            "block_size {} and max_blocks {} must be at least 1",
            kv.block_size, kv.max_blocks
        )));
    }
    kv.kv_type.check_head_dim(heads.head_dim)?;
    let kv_dim = heads.kv_dim();
    cache_slots(
        "attention caches",
        kv.k_cache,
        kv.v_cache,
        kv.kv_type,
        kv_dim,
        stream,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every head shape the tiled kernel takes gets a tile that fits its shared memory.
    #[test]
    fn tiles_fit_shared_memory_for_every_head_shape() {
        for head_dim in [8, 16, 24, 40, 48, 64, 80, 96, 128, 160, 256, 320, 512] {
            for group in [1, 2, 3, 4, 8] {
                let heads = HeadShape {
                    n_head: 2 * group,
                    n_kv_heads: 2,
                    head_dim,
                };
                let Ok(tokens_per_tile) = Tiling::max_tokens_per_tile(&heads) else {
                    continue;
                };
                let tiling = Tiling {
                    tokens_per_tile,
                    keys_per_tile: Tiling::keys_per_tile(head_dim),
                    keys_per_split: 0,
                    n_splits: 1,
                };
                let bytes = tiling.shared_bytes(&heads);
                assert!(
                    bytes <= MAX_SHARED_BYTES,
                    "{heads:?}: {tokens_per_tile} tokens need {bytes} bytes"
                );
            }
        }
    }
}
