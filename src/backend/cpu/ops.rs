//! The element-wise and per-row operations of a forward pass on the CPU, in f32 with
//! wider accumulation where a sum runs over a whole row.

use crate::backend::{KvType, Rope, RopeStyle};
use crate::error::Result;

/// `out = x / sqrt(mean(x²) + eps) * weight` for one row.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// [`rms_norm`] of one row in place.
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = *v * scale * w;
    }
}

/// `1 / sqrt(mean(x²) + eps)`, the squares summed in f64 and the mean rounded to f32.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum_sq: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean = (sum_sq / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `gate = silu(gate) * up`, the SwiGLU activation, in place.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `gate = gelu(gate) * up` with GELU's tanh form (as ggml's `gelu`), in place.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh()) * u;
    }
}

pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// The cosines and sines RoPE multiplies by at one position.
#[derive(Default)]
pub struct RopeAngles {
    pub cos: Vec<f32>, // [rope_dims / 2]
    pub sin: Vec<f32>, // [rope_dims / 2]
}

impl RopeAngles {
    /// Angle `pos * base^(-2i / rope_dims)` for pair `i`.
    pub fn new(pos: i32, base: f32, rope_dims: usize) -> RopeAngles {
        let mut angles = RopeAngles::default();
        angles.set(pos, base, rope_dims);
        angles
    }

    /// The angles of another position, in place: once the vectors have grown to
    /// `rope_dims / 2`, this allocates nothing (a decode step sets them per token).
    pub fn set(&mut self, pos: i32, base: f32, rope_dims: usize) {
        let theta_scale = base.powf(-2.0 / rope_dims as f32);
        let mut theta = pos as f32;
        self.cos.clear();
        self.sin.clear();
        for _ in 0..rope_dims / 2 {
            self.cos.push(theta.cos());
            self.sin.push(theta.sin());
            theta *= theta_scale;
        }
    }
}

/// Rotates the first `2 * angles.cos.len()` dimensions of every head in `x`
/// (`[n_heads, head_dim]`) by the angles of one position.
pub fn rope(x: &mut [f32], head_dim: usize, style: RopeStyle, angles: &RopeAngles) {
    let n_pairs = angles.cos.len();
    for head in x.chunks_exact_mut(head_dim) {
        for (i, (&cos, &sin)) in angles.cos.iter().zip(&angles.sin).enumerate() {
            let (a, b) = match style {
                RopeStyle::Normal => (2 * i, 2 * i + 1),
                RopeStyle::Neox => (i, i + n_pairs),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos - x1 * sin;
            head[b] = x0 * sin + x1 * cos;
        }
    }
}

/// Rotates cached key rows (`kv_dim` values each, stored as `kv_type`) by the RoPE
/// angles of position `delta`, in f32: what moving them `delta` positions takes, since
/// rotations by angles proportional to the position compose. A Q8_0 row is quantized
/// afresh, one more rounding of at most half a step.
pub fn rotate_stored_rows(
    rows: &mut [u8],
    kv_type: KvType,
    kv_dim: usize,
    head_dim: usize,
    params: &Rope,
    delta: i32,
) -> Result<()> {
    let angles = RopeAngles::new(delta, params.base, params.dims);
    let mut values = vec![0.0f32; kv_dim];
    for row in rows.chunks_exact_mut(kv_type.bytes(kv_dim)) {
        kv_type.decode(row, &mut values)?;
        for head in values.chunks_exact_mut(head_dim) {
            rope(head, head_dim, params.style, &angles);
        }
        kv_type.encode(&values, row);
    }
    Ok(())
}

/// Softmax of `scores` in place: max-subtracted so ±1e4 stays finite, the normaliser
/// summed in f64 so long rows keep their precision.
pub fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += f64::from(*s);
    }
    let inv = (1.0 / sum) as f32;
    for s in scores.iter_mut() {
        *s *= inv;
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums let the compiler vectorise without reassociating.
    let mut acc = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out += weight * v`.
pub fn axpy(out: &mut [f32], weight: f32, v: &[f32]) {
    for (o, &x) in out.iter_mut().zip(v) {
        *o += weight * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax_f64(scores: &[f32]) -> Vec<f64> {
        let max = scores
            .iter()
            .map(|&s| f64::from(s))
            .fold(f64::MIN, f64::max);
        let exps: Vec<f64> = scores.iter().map(|&s| (f64::from(s) - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.iter().map(|e| e / sum).collect()
    }

    #[test]
    fn softmax_matches_f64_with_extreme_scores_and_long_rows() {
        let mut state = 1u64;
        for len in [1usize, 7, 512, 8192] {
            for spread in [1.0f32, 100.0, 1e4] {
                let scores: Vec<f32> = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * spread
                    })
                    .collect();
                let expected = softmax_f64(&scores);
                let mut got = scores.clone();
                softmax(&mut got);
                for (g, e) in got.iter().zip(&expected) {
                    assert!(g.is_finite());
                    assert!(
                        (f64::from(*g) - e).abs() <= 1e-6,
                        "len {len} spread {spread}: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn rope_rotates_pairs_by_position() {
        let angles = RopeAngles::new(3, 10_000.0, 4);
        let mut normal = vec![1.0, 0.0, 1.0, 0.0];
        rope(&mut normal, 4, RopeStyle::Normal, &angles);
        assert!((normal[0] - 3f32.cos()).abs() < 1e-6);
        assert!((normal[1] - 3f32.sin()).abs() < 1e-6);
        let theta1 = 3.0 * 10_000f32.powf(-0.5);
        assert!((normal[2] - theta1.cos()).abs() < 1e-6);
        let mut neox = vec![1.0, 1.0, 0.0, 0.0];
        rope(&mut neox, 4, RopeStyle::Neox, &angles);
        assert!((neox[0] - 3f32.cos()).abs() < 1e-6);
        assert!((neox[2] - 3f32.sin()).abs() < 1e-6);
        assert!((neox[3] - theta1.sin()).abs() < 1e-6);
    }

    #[test]
    fn rms_norm_against_f64() {
        let x: Vec<f32> = (0..576).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let w: Vec<f32> = (0..576).map(|i| 1.0 + i as f32 / 1000.0).collect();
        let mut out = vec![0.0; 576];
        rms_norm(&x, &w, 1e-5, &mut out);
        let ms: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 576.0;
        for i in 0..576 {
            let e = f64::from(x[i]) / (ms + 1e-5).sqrt() * f64::from(w[i]);
            assert!((f64::from(out[i]) - e).abs() < 1e-5 * e.abs().max(1.0));
        }
    }
}
