//! A stream prepared for the RMS norm that follows it without a residual product before
//! it (`rf_prepare_norm_*` in `kernels/norm.hip`): the form the residual products that
//! prepare the next norm leave ([`GpuOps::matvec_q8_add_norm`],
//! [`GpuOps::matvec1_f16_add_norm`]), for the first layer of a layer split's later share,
//! so that a split computes what one device does.

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::elementwise::{MAX_BLOCKS, THREADS};
use super::matvec_q8::{Q8_GROUP, UnscaledNorm};
use super::{GpuOps, MAX_GRID_X, check_buffer};
use crate::error::{Error, Result};

pub(super) struct PreparedNormKernels {
    q8: Function,
    f32: Function,
}

impl PreparedNormKernels {
    pub(super) fn load(module: &Module) -> Result<PreparedNormKernels> {
        Ok(PreparedNormKernels {
            q8: module.function("rf_prepare_norm_q8")?,
            f32: module.function("rf_prepare_norm_f32")?,
        })
    }
}

impl GpuOps {
    /// One token's stream `x` (`weight.len()` values, whole groups of 32) prepared for the
    /// norm of `weight` as [`GpuOps::matvec_q8_add_norm`] leaves it in `out`: the same bits
    /// where that product's new stream is `x`.
    pub fn prepare_norm_q8(
        &self,
        stream: &Stream,
        x: &DeviceBuffer<f32>,
        weight: &DeviceBuffer<f32>,
        out: &mut UnscaledNorm,
    ) -> Result<()> {
        let n = weight.len();
        if !n.is_multiple_of(Q8_GROUP) {
            return Err(Error::InvalidArgument(format!(
                "prepare_norm_q8: {n} values are not whole groups of {Q8_GROUP}"
            )));
        }
        check_buffer("prepare_norm_q8 stream", x, n, stream)?;
        check_buffer("prepare_norm_q8 weight", weight, n, stream)?;
        out.q8.check("prepare_norm_q8 output", n, stream)?;
        let groups = n / Q8_GROUP;
        check_buffer("prepare_norm_q8 sums", &out.square_sums, groups, stream)?;
        let blocks = u32::try_from(groups)
            .ok()
            .filter(|&b| b <= MAX_GRID_X)
            .ok_or_else(|| Error::InvalidArgument(format!("prepare_norm_q8 of {n} values")))?;
        if blocks == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(x)
            .push(weight)
            .push(&mut out.q8.quants)
            .push(&mut out.q8.scales)
            .push(&mut out.q8.sums)
            .push(&mut out.square_sums);
        let config = LaunchConfig::linear(blocks, Q8_GROUP as u32);
        // SAFETY: the arguments match rf_prepare_norm_q8(x, w, q, qd, qs, square_sums); x
        // and weight hold n floats, out n quants and n / 32 groups and sums (all checked);
        // each of the n / 32 blocks of 32 threads is one group, whose shuffles stay within
        // 32 lanes.
        unsafe { self.prepared_norm.q8.launch(stream, &config, &args) }
    }

    /// One token's stream `x` prepared for the norm of `weight` as
    /// [`GpuOps::matvec1_f16_add_norm`] leaves it: `out = x * weight`, which the F16
    /// products read with a `StreamNorm` of `x`.
    pub fn prepare_norm_f32(
        &self,
        stream: &Stream,
        x: &DeviceBuffer<f32>,
        weight: &DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        let n = weight.len();
        check_buffer("prepare_norm_f32 stream", x, n, stream)?;
        check_buffer("prepare_norm_f32 weight", weight, n, stream)?;
        check_buffer("prepare_norm_f32 output", out, n, stream)?;
        if n == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(x).push(weight).push(&mut *out).push(n as u64);
        let config = LaunchConfig::for_elements(n as u64, THREADS, MAX_BLOCKS);
        // SAFETY: the arguments match rf_prepare_norm_f32(x, w, y, n); x, weight and out
        // hold n floats (checked), and the grid-stride loop stays below n.
        unsafe { self.prepared_norm.f32.launch(stream, &config, &args) }
    }
}
