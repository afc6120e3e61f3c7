//! The prefill matrix product (`GpuOps::matmul_prefill`: weights dequantized to f16,
//! activations rounded to f16, one vendor-BLAS GEMM with f32 accumulation) on a real
//! device, against the CPU reference dequantizer and float64 dot products; and its two
//! f16 conversion kernels bit for bit against the reference rounded with `half`.
//! Ignored unless asked for (see gpu_common); asked for, a missing cuBLAS or rocBLAS fails.

mod gpu_common;

use gpu_common::{DeviceIo, assert_all_freed, gpu};
use half::f16;
use rocmforge::Error;
use rocmforge::backend::gpu::ops::{DeviceMatrix, GpuOps, PrefillScratch, supported_weight_types};
use rocmforge::backend::gpu::safe::{Blas, GemmShape};
use rocmforge::backend::gpu::{Device, DeviceBuffer, Stream};
use rocmforge::gguf::synthetic::{SplitMix64, random_weights};
use rocmforge::tensor::{GgmlType, dequantize_to_vec};

struct Gpu {
    device: Device,
    stream: Stream,
    ops: GpuOps,
    blas: Blas,
}

fn setup() -> Gpu {
    let device = gpu();
    let stream = Stream::new(&device).unwrap();
    let ops = GpuOps::load(&device).expect("the embedded op kernels load");
    let blas = Blas::new(&stream).expect("the vendor BLAS (cuBLAS or rocBLAS) loads");
    println!("BLAS: {}", blas.library_path());
    Gpu {
        device,
        stream,
        ops,
        blas,
    }
}

impl DeviceIo for Gpu {
    fn device(&self) -> &Device {
        &self.device
    }

    fn stream(&self) -> &Stream {
        &self.stream
    }
}

/// A row length that is a whole number of blocks but, where the format allows, not of
/// 256 values, so partial tiles are exercised.
fn odd_width(dtype: GgmlType) -> usize {
    match dtype.block_size() {
        1 => 577,
        32 => 480,
        _ => 768,
    }
}

/// Weights of `dtype` with values of order 0.05 (integer types: random bytes).
fn weights(rng: &mut SplitMix64, dtype: GgmlType, n_values: usize) -> Vec<u8> {
    match random_weights(dtype, n_values as u64, 0.05, rng) {
        Ok(bytes) => bytes,
        Err(Error::Unsupported(_)) => {
            let n_bytes = dtype.bytes_for(n_values as u64).unwrap() as usize;
            (0..n_bytes).map(|_| rng.next_u64() as u8).collect()
        }
        Err(e) => panic!("{dtype} weights: {e}"),
    }
}

/// Values whose f16 rounding is at an edge: ties, the largest finite value and just past
/// it, subnormals, signed zero.
const ROUNDING_EDGES: [f32; 12] = [
    1.0 + 1.0 / 2048.0,
    1.0 + 3.0 / 2048.0,
    65504.0,
    65519.0,
    65520.0,
    -70000.0,
    6.0e-5,
    1.0e-7,
    -3.0e-8,
    2.0e-8,
    -0.0,
    0.1,
];

fn f16_bits(values: &[f32]) -> Vec<u16> {
    values.iter().map(|&v| f16::from_f32(v).to_bits()).collect()
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn dequantize_f16_is_the_reference_rounded_to_f16_for_every_weight_type() {
    let g = setup();
    let mut rng = SplitMix64(21);
    let (n_rows, first_row, rows) = (37, 5, 20);
    for dtype in supported_weight_types() {
        let n_cols = odd_width(dtype);
        let mut bytes = weights(&mut rng, dtype, n_rows * n_cols);
        if dtype == GgmlType::F32 {
            for (value, edge) in bytes[first_row * n_cols * 4..]
                .chunks_exact_mut(4)
                .zip(ROUNDING_EDGES)
            {
                value.copy_from_slice(&edge.to_le_bytes());
            }
        }
        let reference = dequantize_to_vec(dtype, &bytes, n_rows * n_cols).unwrap();
        let expected = f16_bits(&reference[first_row * n_cols..(first_row + rows) * n_cols]);
        let bytes_dev = g.upload(&bytes);
        let matrix = DeviceMatrix::new(dtype, &bytes_dev, n_rows, n_cols).unwrap();
        let mut out = g.poisoned::<f16>(rows * n_cols + 1);
        g.ops
            .dequantize_f16(&g.stream, &matrix, first_row, rows, &mut out)
            .unwrap();
        let got: Vec<u16> = g.download(&out).iter().map(|v| v.to_bits()).collect();
        for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                a,
                b,
                "{dtype} row {} value {}: {a:#06x} vs {b:#06x} (from {})",
                first_row + i / n_cols,
                i % n_cols,
                reference[first_row * n_cols + i]
            );
        }
        assert_eq!(got[rows * n_cols], 0xFFFF, "{dtype}: wrote past the rows");
        let past_the_end =
            g.ops
                .dequantize_f16(&g.stream, &matrix, n_rows - rows + 1, rows, &mut out);
        assert!(matches!(past_the_end, Err(Error::InvalidArgument(_))));
    }
    drop(g.blas);
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn convert_to_f16_rounds_to_nearest_even() {
    let g = setup();
    let mut rng = SplitMix64(22);
    let mut x: Vec<f32> = (0..5000).map(|_| 3.0 * rng.symmetric()).collect();
    x.extend(ROUNDING_EDGES);
    let x_dev = g.upload(&x);
    let mut out = g.poisoned::<f16>(x.len() + 1);
    g.ops
        .convert_to_f16(&g.stream, &x_dev, x.len(), &mut out)
        .unwrap();
    let got: Vec<u16> = g.download(&out).iter().map(|v| v.to_bits()).collect();
    for (i, (a, b)) in got.iter().zip(f16_bits(&x)).enumerate() {
        assert_eq!(*a, b, "x[{i}] = {}: {a:#06x} vs {b:#06x}", x[i]);
    }
    assert_eq!(got[x.len()], 0xFFFF, "wrote past n");
    drop((x_dev, out, g.blas));
    assert_all_freed(&g.device);
}

/// f16's smallest normal magnitude: below it f16 rounds absolutely (to 2^-25), and AMD
/// MI200 matrix cores flush such inputs to zero.
fn below_f16_normal(v: f32) -> bool {
    v != 0.0 && v.abs() < f16::MIN_POSITIVE.to_f32()
}

fn round_f16(values: &[f32]) -> Vec<f32> {
    values.iter().map(|&v| f16::from_f32(v).to_f32()).collect()
}

/// One output compared with its two references.
struct Reference {
    /// Σ w x over the exact (f32) operands, in f64.
    exact: f64,
    /// Σ w̃ x̃ over the operands rounded to f16, in f64: what a GEMM summing exactly gives.
    rounded: f64,
    /// Σ |w x|: the scale relative errors are measured against.
    magnitude: f64,
    /// What terms with an operand below f16's normal range may add: the whole product
    /// (flushed to zero) plus the absolute rounding of each operand.
    slack: f64,
}

fn reference(w: &[f32], x: &[f32], w16: &[f32], x16: &[f32]) -> Reference {
    let mut r = Reference {
        exact: 0.0,
        rounded: 0.0,
        magnitude: 0.0,
        slack: 0.0,
    };
    for c in 0..w.len() {
        let (a, b) = (f64::from(w[c]), f64::from(x[c]));
        let (a16, b16) = (f64::from(w16[c]), f64::from(x16[c]));
        r.exact += a * b;
        r.rounded += a16 * b16;
        r.magnitude += (a * b).abs();
        if below_f16_normal(w[c]) || below_f16_normal(x[c]) {
            r.slack += (a16 * b16).abs() + 2f64.powi(-24) * (a.abs() + b.abs());
        }
    }
    r
}

/// The worst errors of one product, relative to Σ |w x|.
#[derive(Default)]
struct Worst {
    /// Against the f16-rounded operands: the GEMM's own summation.
    gemm: f64,
    /// Against the exact operands: the rounding to f16 and the summation.
    total: f64,
}

/// Runs `matmul_prefill` of a random `dtype` matrix over `n_tokens` random tokens, with a
/// weight scratch of `scratch_rows` rows (fewer than `n_rows`: panels), and checks every
/// output against both references.
///
/// The bounds, relative to Σ |w x|:
/// - the GEMM sums exact products (f16 x f16 fits f32's significand) in f32. Tensor cores
///   align each small block of products to the largest exponent and truncate (Fasi et al.,
///   "Numerical behavior of NVIDIA tensor cores", 2021), so each addition may lose up to
///   2^-23 rather than 2^-24, and a block's alignment a little more: k·2^-22 covers a sum
///   of k = n_cols terms in any order and blocking;
/// - rounding w and x to f16 changes each product by at most 2^-11 + 2^-11 + 2^-22
///   relative (f16 has an 11-bit significand), so 2^-10 + 2^-22 on top;
/// - terms with an operand below f16's normal range round absolutely and may be flushed:
///   `slack`, added as it is.
fn check_prefill(
    g: &mut Gpu,
    rng: &mut SplitMix64,
    dtype: GgmlType,
    n_rows: usize,
    n_tokens: usize,
    scratch_rows: usize,
) -> Worst {
    let n_cols = odd_width(dtype);
    let bytes = weights(rng, dtype, n_rows * n_cols);
    let w = dequantize_to_vec(dtype, &bytes, n_rows * n_cols).unwrap();
    let x: Vec<f32> = (0..n_tokens * n_cols).map(|_| rng.symmetric()).collect();
    let (w16, x16) = (round_f16(&w), round_f16(&x));

    let bytes_dev = g.upload(&bytes);
    let matrix = DeviceMatrix::new(dtype, &bytes_dev, n_rows, n_cols).unwrap();
    let x_dev = g.upload(&x);
    // One spare token row of output: it must stay untouched.
    let mut y_dev = g.poisoned::<f32>((n_tokens + 1) * n_rows);
    let mut scratch =
        PrefillScratch::new(&g.device, scratch_rows * n_cols, n_tokens * n_cols).unwrap();
    g.ops
        .matmul_prefill(
            &g.stream,
            &mut g.blas,
            &matrix,
            &x_dev,
            n_tokens,
            &mut y_dev,
            &mut scratch,
        )
        .unwrap();
    let y = g.download(&y_dev);

    let k = n_cols as f64;
    let gemm_bound = k * 2f64.powi(-22);
    let total_bound = 2f64.powi(-10) + 2f64.powi(-22) + gemm_bound;
    let mut worst = Worst::default();
    for t in 0..n_tokens {
        let xs = t * n_cols..(t + 1) * n_cols;
        for r in 0..n_rows {
            let ws = r * n_cols..(r + 1) * n_cols;
            let want = reference(&w[ws.clone()], &x[xs.clone()], &w16[ws], &x16[xs.clone()]);
            let got = f64::from(y[t * n_rows + r]);
            let scale = want.magnitude.max(f64::MIN_POSITIVE);
            let gemm_error = (got - want.rounded).abs();
            let total_error = (got - want.exact).abs();
            let context = || {
                format!(
                    "{dtype} {n_rows}x{n_cols}, {n_tokens} tokens, panels of {scratch_rows} \
                     rows: y[{t}][{r}] = {got}, exact {}, with f16 operands {} (Σ|wx| {}, \
                     slack {})",
                    want.exact, want.rounded, want.magnitude, want.slack
                )
            };
            assert!(
                gemm_error <= gemm_bound * scale + want.slack,
                "summation error {:.2e} > {gemm_bound:.2e}: {}",
                gemm_error / scale,
                context()
            );
            assert!(
                total_error <= total_bound * scale + 2.0 * want.slack,
                "error {:.2e} > {total_bound:.2e}: {}",
                total_error / scale,
                context()
            );
            worst.gemm = worst.gemm.max(gemm_error / scale);
            worst.total = worst.total.max(total_error / scale);
        }
    }
    assert!(
        y[n_tokens * n_rows..].iter().all(|v| v.is_nan()),
        "{dtype}: wrote past the output"
    );
    worst
}

/// The formats of the PEERS.md models (Q4_K_M mixes Q4_K and Q6_K).
const PREFILL_TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
    GgmlType::F16,
];

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn matmul_prefill_matches_float64_within_the_f16_bounds() {
    let mut g = setup();
    let mut rng = SplitMix64(23);
    let n_rows = 131;
    for dtype in PREFILL_TYPES {
        let mut worst = Worst::default();
        // Decode-sized, a partial tile, a few tiles, a pp512 batch.
        for n_tokens in [1, 7, 64, 512] {
            let w = check_prefill(&mut g, &mut rng, dtype, n_rows, n_tokens, n_rows);
            worst.gemm = worst.gemm.max(w.gemm);
            worst.total = worst.total.max(w.total);
        }
        println!(
            "matmul_prefill {dtype}: max |error| / Σ|wx| = {:.2e} against f16 operands, \
             {:.2e} against exact ones",
            worst.gemm, worst.total
        );
    }
    drop(g.blas);
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn matmul_prefill_in_row_panels_matches_float64() {
    let mut g = setup();
    let mut rng = SplitMix64(24);
    // Six panels of 20 rows and one of 11; then one row per panel.
    check_prefill(&mut g, &mut rng, GgmlType::Q4K, 131, 64, 20);
    check_prefill(&mut g, &mut rng, GgmlType::Q8_0, 37, 7, 1);
    drop(g.blas);
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn matmul_prefill_refuses_buffers_that_do_not_fit() {
    let mut g = setup();
    let mut rng = SplitMix64(25);
    let (dtype, n_rows, n_tokens) = (GgmlType::Q4_0, 40, 8);
    let n_cols = odd_width(dtype);
    let bytes_dev = g.upload(&weights(&mut rng, dtype, n_rows * n_cols));
    let matrix = DeviceMatrix::new(dtype, &bytes_dev, n_rows, n_cols).unwrap();
    let x_dev = g.poisoned::<f32>(n_tokens * n_cols);
    let mut y_dev = g.poisoned::<f32>(n_tokens * n_rows);
    let mut scratch = PrefillScratch::new(&g.device, n_rows * n_cols, n_tokens * n_cols).unwrap();
    let run = |g: &mut Gpu,
               n_tokens: usize,
               x: &DeviceBuffer<f32>,
               y: &mut DeviceBuffer<f32>,
               scratch: &mut PrefillScratch| {
        g.ops
            .matmul_prefill(&g.stream, &mut g.blas, &matrix, x, n_tokens, y, scratch)
    };
    let invalid = |result: Result<(), Error>, what: &str| {
        assert!(
            matches!(result, Err(Error::InvalidArgument(_))),
            "{what}: {result:?}"
        );
    };

    let short_x = g.poisoned::<f32>(n_tokens * n_cols - 1);
    invalid(
        run(&mut g, n_tokens, &short_x, &mut y_dev, &mut scratch),
        "input too short",
    );
    let mut short_y = g.poisoned::<f32>(n_tokens * n_rows - 1);
    invalid(
        run(&mut g, n_tokens, &x_dev, &mut short_y, &mut scratch),
        "output too short",
    );
    invalid(
        run(&mut g, n_tokens + 1, &x_dev, &mut y_dev, &mut scratch),
        "more tokens than the buffers hold",
    );
    let mut no_row = PrefillScratch::new(&g.device, n_cols - 1, n_tokens * n_cols).unwrap();
    invalid(
        run(&mut g, n_tokens, &x_dev, &mut y_dev, &mut no_row),
        "weight scratch smaller than a row",
    );
    let mut few_activations =
        PrefillScratch::new(&g.device, n_rows * n_cols, n_tokens * n_cols - 1).unwrap();
    invalid(
        run(&mut g, n_tokens, &x_dev, &mut y_dev, &mut few_activations),
        "activation scratch too small",
    );
    run(&mut g, 0, &x_dev, &mut y_dev, &mut scratch).expect("no tokens is nothing to do");

    // The GEMM itself: a panel that does not fit a row of y, and another stream.
    let w16 = g.poisoned::<f16>(n_rows * n_cols);
    let x16 = g.poisoned::<f16>(n_tokens * n_cols);
    let shape = GemmShape {
        n_rows: 10,
        n_cols,
        n_tokens,
        y_stride: n_rows,
        y_offset: n_rows - 9,
    };
    invalid(
        g.blas.gemm_f16(&g.stream, &shape, &w16, &x16, &mut y_dev),
        "panel past the end of a row",
    );
    let other = Stream::new(&g.device).unwrap();
    let fits = GemmShape {
        y_offset: 0,
        ..shape
    };
    invalid(
        g.blas.gemm_f16(&other, &fits, &w16, &x16, &mut y_dev),
        "another stream",
    );
    // Token rows 0..7 of 40 values and 10 of the last: one short.
    let mut short_panel = g.poisoned::<f32>((n_tokens - 1) * n_rows + 9);
    invalid(
        g.blas
            .gemm_f16(&g.stream, &fits, &w16, &x16, &mut short_panel),
        "gemm output too short",
    );

    assert!(
        g.download(&y_dev).iter().all(|v| v.is_nan()),
        "a refused call wrote to y"
    );
    drop((short_x, short_y, short_panel, no_row, few_activations));
    drop((w16, x16, other));
    drop((x_dev, y_dev, scratch, bytes_dev, g.blas));
    assert_all_freed(&g.device);
}
