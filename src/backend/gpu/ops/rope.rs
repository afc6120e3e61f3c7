//! RoPE fused with the K/V cache write (`kernels/rope.hip`).

use super::super::safe::{DeviceBuffer, KernelArgs, LaunchConfig, Module, Stream};
use super::{
    GpuOps, HeadShape, MAX_GRID_X, MAX_GRID_YZ, PerKvType, cache_slots, check_buffer, product,
    to_u32,
};
use crate::backend::{KvType, RopeStyle};
use crate::error::{Error, Result};

/// Threads per block, one block per token and head: a pair each for heads of up to 128
/// values (a head's values each for the V copy).
const THREADS: u32 = 64;

/// How a model rotates its query and key heads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    pub style: RopeStyle,
    /// Frequency base (`rope.freq_base`).
    pub base: f32,
    /// Leading dimensions of each head that are rotated (even, at most head_dim).
    pub rope_dims: usize,
}

impl RopeParams {
    /// Checks `rope_dims` against the heads' `head_dim`.
    pub(super) fn check(&self, head_dim: usize) -> Result<()> {
        if !self.rope_dims.is_multiple_of(2) || self.rope_dims > head_dim {
            return Err(Error::InvalidArgument(format!(
                "rope_dims {} must be even and at most head_dim {head_dim}",
                self.rope_dims
            )));
        }
        Ok(())
    }

    /// The kernels' theta_scale: the CPU's expression, so both compute the same f32 angles.
    pub(super) fn theta_scale(&self) -> f32 {
        self.base.powf(-2.0 / self.rope_dims as f32)
    }
}

pub(super) struct RopeKernel {
    rope_kv_write: PerKvType,
}

impl RopeKernel {
    pub(super) fn load(module: &Module) -> Result<RopeKernel> {
        Ok(RopeKernel {
            rope_kv_write: PerKvType::load(module, "rf_rope_kv_write")?,
        })
    }
}

/// Device buffers of one layer's RoPE and cache write.
pub struct RopeKvWrite<'a> {
    /// `[n_tokens, n_head * head_dim]`, rotated in place.
    pub q: &'a mut DeviceBuffer<f32>,
    /// `[n_tokens, n_kv_heads * head_dim]`, rotated in place.
    pub k: &'a mut DeviceBuffer<f32>,
    /// `[n_tokens, n_kv_heads * head_dim]`.
    pub v: &'a DeviceBuffer<f32>,
    /// `[n_tokens]` each token's position.
    pub pos: &'a DeviceBuffer<i32>,
    /// `[n_tokens]` the flat cache slot receiving each token's K and V.
    pub write_slot: &'a DeviceBuffer<u32>,
    /// `[n_slots, n_kv_heads * head_dim]` values each, the layer's caches as `kv_type`
    /// stores them.
    pub k_cache: &'a mut DeviceBuffer<u8>,
    pub v_cache: &'a mut DeviceBuffer<u8>,
    pub kv_type: KvType,
}

impl GpuOps {
    /// Rotates the first `n_tokens` tokens' query and key heads by their positions (as
    /// `src/backend/cpu/ops.rs` `rope` with `RopeAngles`) and stores their keys and values
    /// in the caches at their write slots, as the caches' type. A slot outside the cache is not written
    /// (validate slots on the host to report them).
    pub fn rope_kv_write(
        &self,
        stream: &Stream,
        rope: &RopeParams,
        heads: &HeadShape,
        n_tokens: usize,
        b: RopeKvWrite<'_>,
    ) -> Result<()> {
        let HeadShape {
            n_head,
            n_kv_heads,
            head_dim,
        } = *heads;
        heads.check()?;
        rope.check(head_dim)?;
        let (q_dim, kv_dim) = (heads.q_dim(), heads.kv_dim());
        check_buffer(
            "rope q",
            b.q,
            product("rope q", &[n_tokens, q_dim])?,
            stream,
        )?;
        let kv_values = product("rope k", &[n_tokens, kv_dim])?;
        check_buffer("rope k", b.k, kv_values, stream)?;
        check_buffer("rope v", b.v, kv_values, stream)?;
        check_buffer("rope pos", b.pos, n_tokens, stream)?;
        check_buffer("rope write_slot", b.write_slot, n_tokens, stream)?;
        b.kv_type.check_head_dim(head_dim)?;
        let n_slots = cache_slots(
            "rope caches",
            b.k_cache,
            b.v_cache,
            b.kv_type,
            kv_dim,
            stream,
        )?;
        if n_tokens == 0 {
            return Ok(());
        }
        let theta_scale = rope.theta_scale();
        let mut args = KernelArgs::new();
        args.push(&mut *b.q)
            .push(&mut *b.k)
            .push(b.v)
            .push(b.pos)
            .push(b.write_slot)
            .push(&mut *b.k_cache)
            .push(&mut *b.v_cache)
            .push(to_u32("rope tokens", n_tokens, MAX_GRID_X)?)
            .push(to_u32("n_head", n_head, u32::MAX)?)
            .push(to_u32("n_kv_heads", n_kv_heads, u32::MAX)?)
            .push(to_u32("head_dim", head_dim, u32::MAX)?)
            .push(rope.rope_dims as u32)
            .push(theta_scale)
            .push(u32::from(rope.style == RopeStyle::Neox))
            .push(n_slots as u64);
        let n_heads = n_head
            .checked_add(n_kv_heads)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n <= MAX_GRID_YZ)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "rope over {n_head} + {n_kv_heads} heads: more than {MAX_GRID_YZ}"
                ))
            })?;
        let mut config = LaunchConfig::linear(n_tokens as u32, THREADS);
        config.grid.y = n_heads;
        let kernel = self.rope.rope_kv_write.get(b.kv_type);
        // SAFETY: the arguments match rf_rope_kv_write_*(q, k, v, pos, slot, k_cache, v_cache,
        // n_tokens, n_head, n_kv_heads, head_dim, rope_dims, theta_scale, neox, n_slots); q,
        // k, v, pos and write_slot hold what n_tokens tokens need (checked); the caches hold
        // n_slots rows of kv_dim values of the instance's type (a Q8_0 head whole blocks,
        // checked) and the kernel skips slots >= n_slots; the grid is n_tokens by the
        // heads, within the launch limits (checked).
        unsafe { kernel.launch(stream, &config, &args) }
    }
}
