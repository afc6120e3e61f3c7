//! The forward-pass kernels (`rocmforge::backend::gpu::ops`) on a real device, each against
//! its CPU reference over odd shapes: the `tensor` dequantizers, the CPU backend's row
//! operations (`backend::cpu::ops`), and float64 oracles for products and attention.
//! Ignored unless asked for (see gpu_common).

mod gpu_common;

use gpu_common::{DeviceIo, OpsGpu, Random, assert_all_freed, ops_gpu};
use half::{bf16, f16};
use rocmforge::Error;
use rocmforge::backend::KvType;
use rocmforge::backend::cpu::ops as cpu;
use rocmforge::backend::gpu::ops::{
    AddNormInput, ArgmaxScratch, AttentionWorkspace, BlockLayout, DecodeRope, DeviceMatrix, Gate,
    HeadShape, LeadingMatrix, MixedProduct, NormScale, PagedKv, ProductInput, ProductOutput,
    Q8Buffers, RopeKvWrite, RopeParams, SecondMatrix, StepTokens, StreamNorm, UnscaledNorm,
    integer_product_types, mixed_product_formats, supported_weight_types,
};
use rocmforge::backend::gpu::{DeviceBuffer, MappedHost, UploadStaging};
use rocmforge::kv_cache::{EMPTY_SLOT, KvCache, KvWritePlan};
use rocmforge::model::RopeStyle;
use rocmforge::tensor::{GgmlType, dequantize_to_vec};

fn random_vec(random: &mut Random, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| random.next_f32() * scale).collect()
}

// ------------------------------------------------------------------ weight formats

/// Where a block keeps its scales, so random test blocks get sane ones (random bytes
/// there would give infinities and NaNs that hide everything else).
enum ScaleField {
    Half(usize),
    Single(usize),
    E8m0(usize),
}

fn scale_fields(dtype: GgmlType) -> Vec<ScaleField> {
    use GgmlType::*;
    use ScaleField::{E8m0, Half, Single};
    match dtype {
        Q4_0 | Q5_0 | Q8_0 | Iq4Nl | Iq4Xs => vec![Half(0)],
        Q4_1 | Q5_1 | Q8_1 | Q4K | Q5K => vec![Half(0), Half(2)],
        Q2K => vec![Half(80), Half(82)],
        Q3K => vec![Half(108)],
        Q6K => vec![Half(208)],
        Q8K => vec![Single(0)],
        Mxfp4 => vec![E8m0(0)],
        _ => vec![],
    }
}

/// `n_rows * n_cols` values of `dtype`: random quants, scales of a few hundredths (so the
/// values are of order one), plain types random in [-1, 1) (integers: random bits).
fn put(bytes: &mut [u8], encoded: &[u8]) {
    bytes.copy_from_slice(encoded);
}

fn random_weights(random: &mut Random, dtype: GgmlType, n_rows: usize, n_cols: usize) -> Vec<u8> {
    let n_values = n_rows * n_cols;
    let n_bytes = dtype.bytes_for(n_values as u64).unwrap() as usize;
    let mut bytes: Vec<u8> = (0..n_bytes).map(|_| random.next_u64() as u8).collect();
    match dtype {
        GgmlType::F32 => {
            for value in bytes.chunks_exact_mut(4) {
                put(value, &random.next_f32().to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for value in bytes.chunks_exact_mut(2) {
                put(value, &f16::from_f32(random.next_f32()).to_le_bytes());
            }
        }
        GgmlType::Bf16 => {
            for value in bytes.chunks_exact_mut(2) {
                put(value, &bf16::from_f32(random.next_f32()).to_le_bytes());
            }
        }
        GgmlType::F64 => {
            for value in bytes.chunks_exact_mut(8) {
                put(value, &f64::from(random.next_f32()).to_le_bytes());
            }
        }
        _ => {}
    }
    let fields = scale_fields(dtype);
    for block in bytes.chunks_exact_mut(dtype.block_bytes() as usize) {
        for field in &fields {
            let scale = random.next_f32() * 0.05;
            match *field {
                ScaleField::Half(at) => {
                    put(&mut block[at..at + 2], &f16::from_f32(scale).to_le_bytes())
                }
                ScaleField::Single(at) => put(&mut block[at..at + 4], &scale.to_le_bytes()),
                // 2^(e - 127) for e in 118..134: 2^-9 to 2^6.
                ScaleField::E8m0(at) => block[at] = 118 + (random.next_u64() % 16) as u8,
            }
        }
    }
    bytes
}

/// A row length that is a whole number of blocks but, where the format allows, not of
/// 256 values (nor of a warp's chunks), so partial passes are exercised.
fn odd_width(dtype: GgmlType) -> usize {
    match dtype.block_size() {
        1 => 577,
        32 => 480,
        _ => 768,
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn embedding_rows_are_bit_exact_for_every_weight_type() {
    let g = ops_gpu();
    let mut random = Random::new(11);
    let n_vocab = 37;
    // Valid ids in any order, repeated, and ids outside the table (rows of zeros).
    let tokens = [5i32, 0, 36, 5, -1, 37, i32::MAX, 17, i32::MIN, 1];
    let tokens_dev = g.upload(&tokens);
    for dtype in supported_weight_types() {
        let n_embd = odd_width(dtype);
        let table = random_weights(&mut random, dtype, n_vocab, n_embd);
        let expected = dequantize_to_vec(dtype, &table, n_vocab * n_embd).unwrap();
        let table_dev = g.upload(&table);
        let matrix = DeviceMatrix::new(dtype, &table_dev, n_vocab, n_embd).unwrap();
        let mut x = g.poisoned::<f32>(tokens.len() * n_embd);
        g.ops
            .embedding(&g.stream, &matrix, &tokens_dev, tokens.len(), &mut x)
            .unwrap();
        let got = g.download(&x);
        for (t, &token) in tokens.iter().enumerate() {
            let row = &got[t * n_embd..(t + 1) * n_embd];
            let want: Vec<f32> = match usize::try_from(token).ok().filter(|&r| r < n_vocab) {
                Some(r) => expected[r * n_embd..(r + 1) * n_embd].to_vec(),
                None => vec![0.0; n_embd],
            };
            for (i, (a, b)) in row.iter().zip(&want).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{dtype} token {token} value {i}: {a} vs {b}"
                );
            }
        }
    }
    drop(tokens_dev);
    assert_all_freed(&g.device);
}

/// Σ_c w[r][c] x[t][c] in f64 and Σ |w x|, the scale of the f32 rounding error.
fn dot_f64(w: &[f32], x: &[f32]) -> (f64, f64) {
    w.iter().zip(x).fold((0.0, 0.0), |(sum, abs), (&a, &b)| {
        let p = f64::from(a) * f64::from(b);
        (sum + p, abs + p.abs())
    })
}

/// Runs a matvec of `dtype` and returns the largest error relative to Σ|w x|.
fn check_matvec(
    g: &OpsGpu,
    random: &mut Random,
    dtype: GgmlType,
    n_rows: usize,
    n_cols: usize,
    n_tokens: usize,
) -> f64 {
    let bytes = random_weights(random, dtype, n_rows, n_cols);
    let w = dequantize_to_vec(dtype, &bytes, n_rows * n_cols).unwrap();
    let x = random_vec(random, n_tokens * n_cols, 1.0);
    let bytes_dev = g.upload(&bytes);
    let matrix = DeviceMatrix::new(dtype, &bytes_dev, n_rows, n_cols).unwrap();
    let x_dev = g.upload(&x);
    // One spare row of output: it must stay untouched.
    let mut y_dev = g.poisoned::<f32>((n_tokens + 1) * n_rows);
    g.ops
        .matvec(&g.stream, &matrix, &x_dev, n_tokens, &mut y_dev)
        .unwrap();
    let y = g.download(&y_dev);
    // Each lane sums n_cols / warp products in f32 and the warp adds its lanes: the error
    // is at most about (n_cols / 32 + 6) * 2^-24 * Σ|w x| (<= 2e-5 for these widths; the
    // acceptance bound is 1e-4 relative).
    let tolerance = 2e-5;
    let mut worst = 0.0f64;
    for t in 0..n_tokens {
        for r in 0..n_rows {
            let (expected, magnitude) = dot_f64(
                &w[r * n_cols..(r + 1) * n_cols],
                &x[t * n_cols..(t + 1) * n_cols],
            );
            let got = f64::from(y[t * n_rows + r]);
            let error = (got - expected).abs() / magnitude.max(f64::MIN_POSITIVE);
            assert!(
                error <= tolerance,
                "{dtype} {n_rows}x{n_cols}, {n_tokens} tokens: y[{t}][{r}] = {got}, expected {expected} (Σ|wx| {magnitude})"
            );
            worst = worst.max(error);
        }
    }
    assert!(
        y[n_tokens * n_rows..].iter().all(|v| v.is_nan()),
        "{dtype}: wrote past the output"
    );
    worst
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn matvec_matches_float64_for_every_weight_type() {
    let g = ops_gpu();
    let mut random = Random::new(12);
    for dtype in supported_weight_types() {
        let mut worst = 0.0f64;
        // 1 token (decode), a partial tile, a full tile of 8 and one more.
        for n_tokens in [1, 3, 8, 11] {
            worst = worst.max(check_matvec(
                &g,
                &mut random,
                dtype,
                67,
                odd_width(dtype),
                n_tokens,
            ));
        }
        println!("matvec {dtype}: max |error| / Σ|wx| = {worst:.2e}");
    }
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn matvec_of_model_sized_matrices() {
    let g = ops_gpu();
    let mut random = Random::new(13);
    // Rows not a multiple of a block's rows, long rows (SmolLM2's n_ff is 1536, a 1B's
    // n_embd 2048; 4608 = 18 super-blocks).
    for (dtype, n_rows, n_cols, n_tokens) in [
        (GgmlType::Q4_0, 2049, 4096 + 96, 1),
        (GgmlType::Q4K, 1537, 4608, 9),
        (GgmlType::Q6K, 4099, 1536, 2),
        (GgmlType::F16, 577, 4097, 5),
        // Rows of whole 8-value pieces: the F16 kernels that read 16 bytes a lane (one
        // token: rows of more and of fewer pieces than a warp has lanes, and rows shared by
        // two and by four warps).
        (GgmlType::F16, 1025, 2048, 1),
        (GgmlType::F16, 301, 4104, 1),
        (GgmlType::F16, 2051, 8192, 1),
        (GgmlType::F16, 67, 136, 1),
        (GgmlType::F16, 131, 576, 9),
        (GgmlType::Q8_0, 3001, 2048, 17),
    ] {
        let worst = check_matvec(&g, &mut random, dtype, n_rows, n_cols, n_tokens);
        println!("matvec {dtype} {n_rows}x{n_cols} x{n_tokens}: max |error| / Σ|wx| = {worst:.2e}");
    }
    assert_all_freed(&g.device);
}

// ------------------------------------------------------------------ integer products

/// Q8 activations read back: per value its quant, per group of 32 its step and scaled sum.
#[derive(Debug, PartialEq)]
struct Q8Host {
    quants: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<f32>,
}

impl Q8Host {
    fn download(g: &OpsGpu, q8: &Q8Buffers, n_values: usize) -> Q8Host {
        let mut host = Q8Host {
            quants: g.download(&q8.quants),
            scales: g.download(&q8.scales),
            sums: g.download(&q8.sums),
        };
        host.quants.truncate(n_values);
        host.scales.truncate(n_values / 32);
        host.sums.truncate(n_values / 32);
        host
    }

    /// Asserts these are `x` quantized as the CPU's Q8 activations are, to the bit:
    /// d = amax / 127 (stored rounded to f16), q = round_half_even(x * 127 / amax),
    /// s = d * sum(q) with d unrounded.
    fn assert_quantizes(&self, x: &[f32], what: &str) {
        self.assert_quantizes_with(x, what, |d| f16::from_f32(d).to_f32());
    }

    /// As [`Q8Host::assert_quantizes`], with d kept in f32 (an `UnscaledNorm`'s form).
    fn assert_quantizes_f32_step(&self, x: &[f32], what: &str) {
        self.assert_quantizes_with(x, what, |d| d);
    }

    /// The quantization checks with the stored step `round(amax / 127)`.
    fn assert_quantizes_with(&self, x: &[f32], what: &str, round: fn(f32) -> f32) {
        for (group, values) in x.chunks_exact(32).enumerate() {
            let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let quants: Vec<i8> = values
                .iter()
                .map(|&v| (v * inverse).round_ties_even() as i8)
                .collect();
            let sum: i32 = quants.iter().map(|&q| i32::from(q)).sum();
            assert_eq!(
                &self.quants[32 * group..32 * (group + 1)],
                &quants[..],
                "{what}: quants of group {group}"
            );
            assert_eq!(
                self.scales[group].to_bits(),
                round(d).to_bits(),
                "{what}: step of group {group}"
            );
            assert_eq!(
                self.sums[group].to_bits(),
                (d * sum as f32).to_bits(),
                "{what}: scaled sum of group {group}"
            );
        }
    }

    /// Value `i` as the products see it.
    fn value(&self, i: usize) -> f64 {
        f64::from(self.quants[i]) * f64::from(self.scales[i / 32])
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn q8_quantization_and_fused_norm_match_the_cpu_method_to_the_bit() {
    let g = ops_gpu();
    let mut random = Random::new(31);
    // 9,216: wider than the values a norm thread holds in registers (8 x 1,024).
    for (n_rows, width) in [(1, 32), (3, 576), (2, 4096), (8, 1536), (2, 9216)] {
        let mut x = random_vec(&mut random, n_rows * width, 4.0);
        // A group of zeros (step 0) and one with a single large value.
        x[..32].fill(0.0);
        if x.len() >= 64 {
            x[40] = 1e4;
        }
        let n = x.len();
        let x_dev = g.upload(&x);
        let mut q8 = Q8Buffers::new(&g.device, n).unwrap();
        g.ops.quantize_q8(&g.stream, &x_dev, n, &mut q8).unwrap();
        Q8Host::download(&g, &q8, n).assert_quantizes(&x, "quantize_q8");

        // The norm's quantized rows are its own f32 output, quantized.
        let weight: Vec<f32> = (0..width).map(|_| 1.0 + random.next_f32() * 0.5).collect();
        let w_dev = g.upload(&weight);
        let mut out = g.poisoned::<f32>(n);
        let mut q8_norm = Q8Buffers::new(&g.device, n).unwrap();
        g.ops
            .rms_norm(
                &g.stream,
                &x_dev,
                &w_dev,
                1e-5,
                n_rows,
                &mut out,
                Some(&mut q8_norm),
            )
            .unwrap();
        let normed = g.download(&out);
        Q8Host::download(&g, &q8_norm, n).assert_quantizes(&normed, "rms_norm_q8");
    }
    assert_all_freed(&g.device);
}

/// F16's one-token product with what rides in its launch (a leading matrix, a second
/// matrix, an add into the residual, a SwiGLU) gives, bit for bit, what the plain product
/// and the separate add and SwiGLU kernels give (`matvec` is itself held to float64 by
/// `matvec_matches_float64_for_every_weight_type`), and writes nothing else.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn f16_one_token_product_fuses_bit_for_bit() {
    let g = ops_gpu();
    let mut random = Random::new(35);
    let spare = 7;
    // Rows shorter than a warp's pieces, SmolLM2's and the 1B's widths, a long row.
    for (n_lead, n_rows, n_cols) in [
        (67, 29, 40),
        (9, 70, 576),
        (128, 32, 2048),
        (5, 11, 4104),
        (3, 5, 8200),
    ] {
        let bytes = [n_lead, n_rows, n_rows]
            .map(|r| g.upload(&random_weights(&mut random, GgmlType::F16, r, n_cols)));
        let [lead_w, w, w_b] = [0, 1, 2].map(|i| {
            let rows = if i == 0 { n_lead } else { n_rows };
            DeviceMatrix::new(GgmlType::F16, &bytes[i], rows, n_cols).unwrap()
        });
        let x = g.upload(&random_vec(&mut random, n_cols, 2.0));
        let plain = |m: &DeviceMatrix<'_>| {
            let mut y = g.poisoned::<f32>(m.n_rows + spare);
            g.ops.matvec(&g.stream, m, &x, 1, &mut y).unwrap();
            y
        };
        let (lead_alone, y_alone, y_b_alone) = (plain(&lead_w), plain(&w), plain(&w_b));
        let label = format!("{n_lead} + {n_rows} rows of {n_cols}");

        // Store: the leading matrix, then a pair.
        let mut outputs = [n_lead, n_rows, n_rows].map(|r| g.poisoned::<f32>(r + spare));
        let [y_lead, y, y_b] = &mut outputs;
        let lead = LeadingMatrix {
            w: &lead_w,
            y: y_lead,
        };
        let second = SecondMatrix {
            w: &w_b,
            y: Some(y_b),
        };
        g.ops
            .matvec1_f16(
                &g.stream,
                Some(lead),
                &w,
                Some(second),
                &x,
                None,
                y,
                ProductOutput::Store,
            )
            .unwrap();
        for (i, (fused, alone)) in outputs
            .iter()
            .zip([&lead_alone, &y_alone, &y_b_alone])
            .enumerate()
        {
            assert_eq!(
                g.download_bits(fused),
                g.download_bits(alone),
                "{label}: stored output {i}"
            );
        }

        // Add: as the residual add kernel after the product.
        let residual = random_vec(&mut random, n_rows + spare, 1.0);
        let mut y = g.upload(&residual);
        g.ops
            .matvec1_f16(
                &g.stream,
                None,
                &w,
                None,
                &x,
                None,
                &mut y,
                ProductOutput::Add,
            )
            .unwrap();
        let mut expected = g.upload(&residual);
        g.ops
            .add_assign(&g.stream, &mut expected, &y_alone, n_rows)
            .unwrap();
        assert_eq!(
            g.download_bits(&y),
            g.download_bits(&expected),
            "{label}: added"
        );

        // SwiGLU: as the SwiGLU kernel over the two products.
        let mut y = g.poisoned::<f32>(n_rows + spare);
        let second = SecondMatrix { w: &w_b, y: None };
        g.ops
            .matvec1_f16(
                &g.stream,
                None,
                &w,
                Some(second),
                &x,
                None,
                &mut y,
                ProductOutput::Swiglu,
            )
            .unwrap();
        let mut expected = plain(&w);
        g.ops
            .gated(&g.stream, Gate::Silu, &mut expected, &y_b_alone, n_rows)
            .unwrap();
        assert_eq!(
            g.download_bits(&y),
            g.download_bits(&expected),
            "{label}: SwiGLU"
        );
    }
    assert_all_freed(&g.device);
}

/// The one-token F16 residual product that prepares the next norm
/// (`matvec1_f16_add_norm`): the stream it writes is the plain residual product's to the
/// bit and the norm's input it writes is the new stream times the norm's weights to the
/// bit, as is `prepare_norm_f32`'s from the new stream alone. The products that read that
/// input with the stream (`StreamNorm`) give what the norm kernel followed by the plain
/// product gives, up to where the norm's scale is rounded in (each output within 1e-5 of
/// its row's Σ|w x|): Q before a K+V pair and a SwiGLU pair, on rows read by one warp and
/// by several (4,104 values), for a stream of order 1 and one of order 1e-4.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn f16_residual_product_prepares_the_norm_its_readers_finish() {
    let g = ops_gpu();
    let mut random = Random::new(36);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (eps, spare) = (1e-5, 5);
    let cases = [
        (576, 1536, 3.0),
        (2048, 8192, 3.0),
        (4104, 576, 3.0),
        (576, 576, 1e-4),
    ];
    for (n_embd, n_in, stream_scale) in cases {
        let label = format!("{n_embd}x{n_in}, stream of scale {stream_scale}");
        let w_bytes = g.upload(&random_weights(&mut random, GgmlType::F16, n_embd, n_in));
        let w = DeviceMatrix::new(GgmlType::F16, &w_bytes, n_embd, n_in).unwrap();
        let x_in = g.upload(&random_vec(&mut random, n_in, stream_scale * 2.0 / 3.0));
        let stream0 = random_vec(&mut random, n_embd, stream_scale);
        let norm: Vec<f32> = (0..n_embd).map(|_| 1.0 + random.next_f32() * 0.5).collect();
        let norm_dev = g.upload(&norm);
        let mut stream = g.upload(&stream0);
        let mut prepared = g.poisoned::<f32>(n_embd + spare);
        g.ops
            .matvec1_f16_add_norm(&g.stream, &w, &x_in, &mut stream, &norm_dev, &mut prepared)
            .unwrap();
        let mut plain = g.upload(&stream0);
        let add = ProductOutput::Add;
        g.ops
            .matvec1_f16(&g.stream, None, &w, None, &x_in, None, &mut plain, add)
            .unwrap();
        let new_stream = g.download(&stream);
        assert_eq!(
            bits(&new_stream),
            bits(&g.download(&plain)),
            "{label}: stream"
        );
        let mut expected: Vec<f32> = new_stream.iter().zip(&norm).map(|(v, w)| v * w).collect();
        expected.extend([f32::from_bits(u32::MAX); 5]);
        assert_eq!(
            bits(&g.download(&prepared)),
            bits(&expected),
            "{label}: norm input"
        );
        let mut from_stream = g.poisoned::<f32>(n_embd + spare);
        g.ops
            .prepare_norm_f32(&g.stream, &stream, &norm_dev, &mut from_stream)
            .unwrap();
        let from_stream = bits(&g.download(&from_stream));
        assert_eq!(
            from_stream,
            bits(&expected),
            "{label}: from the stream alone"
        );

        let mut normed = g.poisoned::<f32>(n_embd);
        g.ops
            .rms_norm(&g.stream, &stream, &norm_dev, eps, 1, &mut normed, None)
            .unwrap();
        let normed_host = g.download(&normed);
        let n_rows = 37;
        let bytes =
            [(); 3].map(|_| g.upload(&random_weights(&mut random, GgmlType::F16, n_rows, n_embd)));
        let [a, b, c] =
            [0, 1, 2].map(|i| DeviceMatrix::new(GgmlType::F16, &bytes[i], n_rows, n_embd).unwrap());
        let values = bytes
            .each_ref()
            .map(|m| dequantize_to_vec(GgmlType::F16, &g.download(m), n_rows * n_embd).unwrap());
        let abs_dot =
            |m: usize, r: usize| dot_f64(&values[m][r * n_embd..(r + 1) * n_embd], &normed_host).1;
        let finish = StreamNorm {
            stream: &stream,
            eps,
        };
        // Store: a leading matrix, then a pair; both ways.
        let run = |x: &DeviceBuffer<f32>, norm| {
            let mut outputs = [(); 3].map(|_| g.poisoned::<f32>(n_rows));
            let [y_lead, y, y_b] = &mut outputs;
            let lead = Some(LeadingMatrix { w: &a, y: y_lead });
            let second = Some(SecondMatrix {
                w: &c,
                y: Some(y_b),
            });
            let store = ProductOutput::Store;
            g.ops
                .matvec1_f16(&g.stream, lead, &b, second, x, norm, y, store)
                .unwrap();
            outputs.map(|y| g.download(&y))
        };
        let (got, reference) = (run(&prepared, Some(finish)), run(&normed, None));
        for (m, (got, reference)) in got.iter().zip(&reference).enumerate() {
            for (r, (&got, &reference)) in got.iter().zip(reference).enumerate() {
                let diff = (f64::from(got) - f64::from(reference)).abs();
                assert!(
                    diff <= 1e-5 * abs_dot(m, r),
                    "{label}: matrix {m} row {r} = {got}, the norm kernel's path gives \
                     {reference}"
                );
            }
        }
        // SwiGLU: silu(a) * b passes a's error on times at most 1.1 |b|, b's times |silu(a)|.
        let swiglu = |x: &DeviceBuffer<f32>, norm| {
            let mut y = g.poisoned::<f32>(n_rows);
            let second = Some(SecondMatrix { w: &c, y: None });
            let mode = ProductOutput::Swiglu;
            g.ops
                .matvec1_f16(&g.stream, None, &a, second, x, norm, &mut y, mode)
                .unwrap();
            g.download(&y)
        };
        let (got, reference) = (swiglu(&prepared, Some(finish)), swiglu(&normed, None));
        for (r, (&got, &reference)) in got.iter().zip(&reference).enumerate() {
            let diff = (f64::from(got) - f64::from(reference)).abs();
            let bound = 2.1e-5 * abs_dot(0, r) * abs_dot(2, r);
            assert!(
                diff <= bound,
                "{label}: SwiGLU row {r} = {got}, the norm kernel's path gives {reference}"
            );
        }
    }
    assert_all_freed(&g.device);
}

/// A random `dtype` matrix of `n_rows` x `n_cols` on the device in `layout`, as the model
/// uploads it (rows at the layout's stride, split on the device where it splits them).
fn random_matrix_as(
    g: &OpsGpu,
    random: &mut Random,
    (dtype, layout): (GgmlType, BlockLayout),
    n_rows: usize,
    n_cols: usize,
) -> DeviceBuffer<u8> {
    let gguf = random_weights(random, dtype, n_rows, n_cols);
    let mut data = g.upload(&layout.rows_at_stride(dtype, n_cols, &gguf).unwrap());
    if layout == BlockLayout::SplitRows {
        g.ops
            .split_rows(&g.stream, dtype, &mut data, n_rows, n_cols)
            .unwrap();
    }
    data
}

/// Decode's Q, K and V as `GpuBackend::matmul` launches them (a leading matrix, then a
/// stored pair: `fused_matvec`), on either side of the row count one wave of blocks holds,
/// where the F16 launcher switches from rows of their own to a pair: every output has the
/// bits of its matrix's own launch, for the F16 kernel (its input normed by the product)
/// and, always paired, the integer ones (split and GGUF rows).
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn q_k_v_launches_keep_each_products_bits() {
    let g = ops_gpu();
    let mut random = Random::new(36);
    // More rows than one wave of the F16 kernel holds: 4 blocks of 8 warps an SM.
    let past_one_wave = 32 * g.device.facts().compute_units as usize + 1;
    let formats = [
        (GgmlType::F16, BlockLayout::Gguf, 2048),
        (GgmlType::Q4_0, BlockLayout::SplitRows, 2048),
        (GgmlType::Q8_0, BlockLayout::Gguf, 576),
    ];
    for (dtype, layout, n_cols) in formats {
        for rows in [[67, 29, 29], [past_one_wave, 96, 96]] {
            let buffers = rows
                .map(|n_rows| random_matrix_as(&g, &mut random, (dtype, layout), n_rows, n_cols));
            let w = [0, 1, 2].map(|i| {
                DeviceMatrix::with_layout(dtype, layout, &buffers[i], rows[i], n_cols).unwrap()
            });
            let x = g.upload(&random_vec(&mut random, n_cols, 2.0));
            let stream_x = g.upload(&random_vec(&mut random, n_cols, 2.0));
            let mut q8 = Q8Buffers::new(&g.device, n_cols).unwrap();
            g.ops.quantize_q8(&g.stream, &x, n_cols, &mut q8).unwrap();
            let input = || match dtype {
                GgmlType::F16 => ProductInput::F32(
                    &x,
                    Some(StreamNorm {
                        stream: &stream_x,
                        eps: 1e-5,
                    }),
                ),
                _ => ProductInput::Q8(&q8, None),
            };
            let spare = 5;
            let store = ProductOutput::Store;
            let mut fused = rows.map(|r| g.poisoned::<f32>(r + spare));
            let [y_lead, y, y_b] = &mut fused;
            let lead = Some(LeadingMatrix {
                w: &w[0],
                y: y_lead,
            });
            let second = Some(SecondMatrix {
                w: &w[2],
                y: Some(y_b),
            });
            g.ops
                .fused_matvec(&g.stream, input(), lead, &w[1], second, 1, y, store)
                .unwrap();
            let mut alone = rows.map(|r| g.poisoned::<f32>(r + spare));
            for (w, y) in w.iter().zip(&mut alone) {
                g.ops
                    .fused_matvec(&g.stream, input(), None, w, None, 1, y, store)
                    .unwrap();
            }
            for (i, (fused, own)) in fused.iter().zip(&alone).enumerate() {
                assert_eq!(
                    g.download_bits(fused),
                    g.download_bits(own),
                    "{dtype} ({layout:?}), {rows:?} rows of {n_cols}: output {i}"
                );
            }
        }
    }
    assert_all_freed(&g.device);
}

/// One integer product of `dtype`, checked against float64 over the activations as
/// quantized: with `mode` Store (one or two matrices), Add or Swiglu.
fn check_matvec_q8(
    g: &OpsGpu,
    random: &mut Random,
    dtype: GgmlType,
    (n_rows, n_cols, n_tokens): (usize, usize, usize),
    mode: ProductOutput,
    paired: bool,
) -> f64 {
    let bytes = [(); 2].map(|_| random_weights(random, dtype, n_rows, n_cols));
    let w = bytes
        .each_ref()
        .map(|b| dequantize_to_vec(dtype, b, n_rows * n_cols).unwrap());
    let x = random_vec(random, n_tokens * n_cols, 2.0);
    let x_dev = g.upload(&x);
    let mut q8 = Q8Buffers::new(&g.device, x.len()).unwrap();
    g.ops
        .quantize_q8(&g.stream, &x_dev, x.len(), &mut q8)
        .unwrap();
    let xq = Q8Host::download(g, &q8, x.len());
    let bytes_dev = bytes.each_ref().map(|b| g.upload(b));
    let matrices = bytes_dev
        .each_ref()
        .map(|b| DeviceMatrix::new(dtype, b, n_rows, n_cols).unwrap());
    let out_len = n_tokens * n_rows;
    let y0 = random_vec(random, out_len + n_rows, 1.0);
    // Add reads y: start it from known values; otherwise poison it (and the spare row).
    let mut y_dev = if mode == ProductOutput::Add {
        g.upload(&y0)
    } else {
        g.poisoned::<f32>(out_len + n_rows)
    };
    let mut y_b_dev = g.poisoned::<f32>(out_len + n_rows);
    let second = paired.then(|| SecondMatrix {
        w: &matrices[1],
        y: (mode == ProductOutput::Store).then_some(&mut y_b_dev),
    });
    g.ops
        .matvec_q8(
            &g.stream,
            &matrices[0],
            second,
            &q8,
            n_tokens,
            &mut y_dev,
            mode,
        )
        .unwrap();
    let (y, y_b) = (g.download(&y_dev), g.download(&y_b_dev));
    // The groups' products are exact integers scaled in f32 and summed in f32: about
    // 2^-22 of Σ|w x|. Types with a min add it times the group's scaled sum, whose step
    // is not rounded to f16 like the quants' is: up to 2^-11 of that term.
    let tolerance = match dtype {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K => 1e-3,
        _ => 2e-5,
    };
    let mut worst = 0.0f64;
    let product = |m: usize, t: usize, r: usize| {
        (0..n_cols).fold((0.0, 0.0), |(sum, abs), c| {
            let p = f64::from(w[m][r * n_cols + c]) * xq.value(t * n_cols + c);
            (sum + p, abs + p.abs())
        })
    };
    for t in 0..n_tokens {
        for r in 0..n_rows {
            let i = t * n_rows + r;
            let (a, a_abs) = product(0, t, r);
            let mut checks = vec![];
            match mode {
                ProductOutput::Store => {
                    checks.push((f64::from(y[i]), a, a_abs));
                    if paired {
                        let (b, b_abs) = product(1, t, r);
                        checks.push((f64::from(y_b[i]), b, b_abs));
                    }
                }
                ProductOutput::Add => {
                    checks.push((f64::from(y[i]), f64::from(y0[i]) + a, a_abs + 1.0))
                }
                ProductOutput::Swiglu => {
                    let (b, b_abs) = product(1, t, r);
                    let silu = a / (1.0 + (-a).exp());
                    // silu's slope is below 1.1: a's error passes on at most 1.1 |b|.
                    let scale = 1.1 * a_abs * b.abs() + silu.abs() * b_abs;
                    checks.push((f64::from(y[i]), silu * b, scale));
                }
            }
            for (got, expected, scale) in checks {
                let error = (got - expected).abs() / scale.max(f64::MIN_POSITIVE);
                assert!(
                    error <= tolerance,
                    "{dtype} {mode:?} paired {paired} {n_rows}x{n_cols} x{n_tokens}: \
                     y[{t}][{r}] = {got}, expected {expected}"
                );
                worst = worst.max(error);
            }
        }
    }
    let spare_untouched = match mode {
        ProductOutput::Add => y[out_len..] == y0[out_len..],
        _ => y[out_len..].iter().all(|v| v.is_nan()),
    };
    assert!(spare_untouched, "{dtype} {mode:?}: wrote past the output");
    if !(paired && mode == ProductOutput::Store) {
        assert!(
            y_b.iter().all(|v| v.is_nan()),
            "{dtype} {mode:?}: wrote y_b"
        );
    }
    worst
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn integer_products_match_float64_in_every_mode() {
    let g = ops_gpu();
    let mut random = Random::new(32);
    for dtype in integer_product_types() {
        let mut worst = 0.0f64;
        for n_tokens in [1, 3, 8] {
            for (mode, paired) in [
                (ProductOutput::Store, false),
                (ProductOutput::Store, true),
                (ProductOutput::Add, false),
                (ProductOutput::Swiglu, true),
            ] {
                let shape = (67, odd_width(dtype), n_tokens);
                worst = worst.max(check_matvec_q8(&g, &mut random, dtype, shape, mode, paired));
            }
        }
        // Long rows: 14 groups a lane for SmolLM2-sized and 8B-sized matrices.
        let long = (129, 14336, 1);
        worst = worst.max(check_matvec_q8(
            &g,
            &mut random,
            dtype,
            long,
            ProductOutput::Store,
            false,
        ));
        println!("matvec_q8 {dtype}: max |error| / scale = {worst:.2e}");
    }
    assert_all_freed(&g.device);
}

/// A leading matrix sharing the launch of a pair (decode's Q beside K and V): every output
/// bit for bit what the lead alone and the pair alone give, nothing written past them.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn leading_matrix_shares_a_paired_launch_bit_for_bit() {
    let g = ops_gpu();
    let mut random = Random::new(34);
    for dtype in integer_product_types() {
        let n_cols = odd_width(dtype);
        for (n_lead, n_rows, n_tokens) in [(67, 29, 1), (128, 32, 3), (5, 70, 8)] {
            let bytes = [n_lead, n_rows, n_rows]
                .map(|r| g.upload(&random_weights(&mut random, dtype, r, n_cols)));
            let [lead_w, k_w, v_w] = [0, 1, 2].map(|i| {
                let rows = if i == 0 { n_lead } else { n_rows };
                DeviceMatrix::new(dtype, &bytes[i], rows, n_cols).unwrap()
            });
            let x = g.upload(&random_vec(&mut random, n_tokens * n_cols, 2.0));
            let mut q8 = Q8Buffers::new(&g.device, n_tokens * n_cols).unwrap();
            g.ops
                .quantize_q8(&g.stream, &x, n_tokens * n_cols, &mut q8)
                .unwrap();
            let spare = 7;
            let mut outputs =
                [n_lead, n_rows, n_rows].map(|r| g.poisoned::<f32>(n_tokens * r + spare));
            let [y_lead, y, y_b] = &mut outputs;
            g.ops
                .fused_matvec(
                    &g.stream,
                    ProductInput::Q8(&q8, None),
                    Some(LeadingMatrix {
                        w: &lead_w,
                        y: y_lead,
                    }),
                    &k_w,
                    Some(SecondMatrix {
                        w: &v_w,
                        y: Some(y_b),
                    }),
                    n_tokens,
                    y,
                    ProductOutput::Store,
                )
                .unwrap();
            // As before the lead joined: the lead alone, then K and V as a pair.
            let mut alone =
                [n_lead, n_rows, n_rows].map(|r| g.poisoned::<f32>(n_tokens * r + spare));
            let [lead_alone, y_alone, y_b_alone] = &mut alone;
            let store = ProductOutput::Store;
            g.ops
                .matvec_q8(&g.stream, &lead_w, None, &q8, n_tokens, lead_alone, store)
                .unwrap();
            let pair = SecondMatrix {
                w: &v_w,
                y: Some(y_b_alone),
            };
            g.ops
                .matvec_q8(&g.stream, &k_w, Some(pair), &q8, n_tokens, y_alone, store)
                .unwrap();
            for (i, (stacked, single)) in outputs.iter().zip(&alone).enumerate() {
                assert_eq!(
                    g.download_bits(stacked),
                    g.download_bits(single),
                    "{dtype} lead {n_lead} + {n_rows} rows x{n_tokens}: output {i}"
                );
            }
        }
    }
    assert_all_freed(&g.device);
}

/// Q, K and V of two types in one launch (`matvec_q8_mixed`: V with more bits, as in
/// llama.cpp's Q4_K_M): each output has the bits of its own launch (`fused_matvec` of the
/// matrix alone), with and without a norm for the products to finish, for every pair of
/// formats and layouts the launch takes; outputs past their rows stay untouched.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn mixed_types_share_one_launch_bit_for_bit() {
    let g = ops_gpu();
    let mut random = Random::new(35);
    // Rows of 256-value blocks: whole warps of groups (2,048 values, the 1B class) and
    // part of one (1,536: 48 groups; Q6_K's split rows padded from 1,260 bytes to 1,264).
    let cases = mixed_product_formats().flat_map(|(a, c)| {
        let widths = match a.0.block_size() {
            256 => vec![2048, 1536],
            _ => vec![576],
        };
        widths.into_iter().map(move |n| ((a, c), n))
    });
    for (((a_type, a_layout), (c_type, c_layout)), n_cols) in cases {
        let rows = [67, 29, 29];
        let formats = [(a_type, a_layout), (a_type, a_layout), (c_type, c_layout)];
        let buffers =
            [0, 1, 2].map(|i| random_matrix_as(&g, &mut random, formats[i], rows[i], n_cols));
        let w = [0, 1, 2].map(|i| {
            let (dtype, layout) = formats[i];
            DeviceMatrix::with_layout(dtype, layout, &buffers[i], rows[i], n_cols).unwrap()
        });
        assert!(g.ops.has_q8_mixed(&w[0], &w[1], &w[2]));
        let x = g.upload(&random_vec(&mut random, n_cols, 2.0));
        let mut q8 = Q8Buffers::new(&g.device, n_cols).unwrap();
        g.ops.quantize_q8(&g.stream, &x, n_cols, &mut q8).unwrap();
        let square_sums: Vec<f64> = (0..n_cols / 32).map(|i| 1.0 + i as f64).collect();
        let square_sums = g.upload(&square_sums);
        for norm in [
            None,
            Some(NormScale {
                square_sums: &square_sums,
                eps: 1e-5,
            }),
        ] {
            let spare = 7;
            let mut mixed = rows.map(|r| g.poisoned::<f32>(r + spare));
            let [y_a, y_b, y_c] = &mut mixed;
            let products =
                [(&w[0], y_a), (&w[1], y_b), (&w[2], y_c)].map(|(w, y)| MixedProduct { w, y });
            g.ops
                .matvec_q8_mixed(&g.stream, products, &q8, norm)
                .unwrap();
            let mut alone = rows.map(|r| g.poisoned::<f32>(r + spare));
            for (w, y) in w.iter().zip(&mut alone) {
                let input = ProductInput::Q8(&q8, norm);
                let store = ProductOutput::Store;
                g.ops
                    .fused_matvec(&g.stream, input, None, w, None, 1, y, store)
                    .unwrap();
            }
            for (i, (one_launch, own)) in mixed.iter().zip(&alone).enumerate() {
                assert_eq!(
                    g.download_bits(one_launch),
                    g.download_bits(own),
                    "{a_type} ({a_layout:?}) and {c_type} ({c_layout:?}), {n_cols} columns, \
                     norm {}: output {i}",
                    norm.is_some()
                );
            }
        }
    }
    assert_all_freed(&g.device);
}

/// The residual product that prepares the next norm (`matvec_q8_add_norm`): the stream
/// it writes is the plain residual product's to the bit, its Q8 output is the new stream
/// times the norm's weights quantized as the CPU does but with the steps in f32, and its
/// sums of squares are the stream's. The products that read it with the norm's scale
/// (`NormScale`) give what the norm kernel followed by the plain product gives, up to the
/// rounding of the norm kernel's Q8 steps to f16 (relative 2^-11 of a group), for one
/// token from the producer (a stream of order 1, and one of order 1e-4 whose steps would
/// be f16 subnormals) and for three from the same layout built by hand (by `quantize_q8`,
/// whose steps are rounded to f16 where the producer's stay in f32). Given the f32
/// input instead of its Q8 form, each block quantizes it for itself, and everything is
/// the same to the bit; so is the norm prepared from the new stream alone
/// (`prepare_norm_q8`, a layer split's later share).
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn residual_product_prepares_the_norm_its_readers_finish() {
    let g = ops_gpu();
    let mut random = Random::new(35);
    for dtype in integer_product_types() {
        // Inputs of 1,536 and 2,048 values: SmolLM2's down product and the widest a block
        // quantizes for itself (two values a thread).
        let odd = odd_width(dtype);
        let cases = [
            (768, odd, 3.0),
            (4096, odd, 3.0),
            (768, odd, 1e-4),
            (768, 1536, 3.0),
            (768, 2048, 3.0),
        ];
        for (n_embd, n_in, stream_scale) in cases {
            let w_bytes = g.upload(&random_weights(&mut random, dtype, n_embd, n_in));
            let w = DeviceMatrix::new(dtype, &w_bytes, n_embd, n_in).unwrap();
            let x_in = g.upload(&random_vec(&mut random, n_in, stream_scale * 2.0 / 3.0));
            let mut q8_in = Q8Buffers::new(&g.device, n_in).unwrap();
            g.ops
                .quantize_q8(&g.stream, &x_in, n_in, &mut q8_in)
                .unwrap();
            let stream0 = random_vec(&mut random, n_embd, stream_scale);
            let norm: Vec<f32> = (0..n_embd).map(|_| 1.0 + random.next_f32() * 0.5).collect();
            let norm_dev = g.upload(&norm);
            let mut stream = g.upload(&stream0);
            let mut unscaled = UnscaledNorm::new(&g.device, n_embd).unwrap();
            let input = AddNormInput::Q8(&q8_in);
            g.ops
                .matvec_q8_add_norm(&g.stream, &w, input, &mut stream, &norm_dev, &mut unscaled)
                .unwrap();
            let mut staged_stream = g.upload(&stream0);
            let mut staged = UnscaledNorm::new(&g.device, n_embd).unwrap();
            let input = AddNormInput::F32(&x_in);
            g.ops
                .matvec_q8_add_norm(
                    &g.stream,
                    &w,
                    input,
                    &mut staged_stream,
                    &norm_dev,
                    &mut staged,
                )
                .unwrap();
            let mut plain = g.upload(&stream0);
            let add = ProductOutput::Add;
            g.ops
                .matvec_q8(&g.stream, &w, None, &q8_in, 1, &mut plain, add)
                .unwrap();
            let label = format!("{dtype} {n_embd}x{n_in}, stream of scale {stream_scale}");
            let new_stream = g.download(&stream);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&new_stream),
                bits(&g.download(&plain)),
                "{label}: stream"
            );
            let staged_label = format!("{label}, f32 input");
            assert_eq!(
                bits(&new_stream),
                bits(&g.download(&staged_stream)),
                "{staged_label}"
            );
            let scaled: Vec<f32> = new_stream.iter().zip(&norm).map(|(v, w)| v * w).collect();
            let q8_of = |q8: &Q8Buffers| Q8Host::download(&g, q8, n_embd);
            q8_of(&unscaled.q8).assert_quantizes_f32_step(&scaled, &label);
            q8_of(&staged.q8).assert_quantizes_f32_step(&scaled, &staged_label);
            let sums = g.download(&unscaled.square_sums);
            assert_eq!(
                sums,
                g.download(&staged.square_sums),
                "{staged_label}: sums"
            );
            for (group, values) in new_stream.chunks_exact(32).enumerate() {
                let expected: f64 = values.iter().map(|&v| f64::from(v).powi(2)).sum();
                let error = (sums[group] - expected).abs() / expected;
                assert!(error < 1e-14, "{label}: group {group} sum {}", sums[group]);
            }
            // The same from the new stream alone (a layer split's later share).
            let mut from_stream = UnscaledNorm::new(&g.device, n_embd).unwrap();
            g.ops
                .prepare_norm_q8(&g.stream, &stream, &norm_dev, &mut from_stream)
                .unwrap();
            assert_eq!(
                q8_of(&from_stream.q8),
                q8_of(&unscaled.q8),
                "{label}: prepared from the stream"
            );
            assert_eq!(
                g.download(&from_stream.square_sums),
                sums,
                "{label}: sums prepared from the stream"
            );
            check_norm_readers(
                &g,
                &mut random,
                dtype,
                &new_stream,
                &norm,
                &unscaled,
                &label,
            );
        }
        // Three tokens: the same layout from quantize_q8 (its steps rounded to f16) and
        // sums worked out here.
        let n_embd = 768;
        let streams = random_vec(&mut random, 3 * n_embd, 3.0);
        let norm: Vec<f32> = (0..n_embd).map(|_| 1.0 + random.next_f32() * 0.5).collect();
        let scaled: Vec<f32> = streams
            .chunks_exact(n_embd)
            .flat_map(|s| s.iter().zip(&norm).map(|(v, w)| v * w))
            .collect();
        let mut unscaled = UnscaledNorm::new(&g.device, 3 * n_embd).unwrap();
        let scaled_dev = g.upload(&scaled);
        g.ops
            .quantize_q8(&g.stream, &scaled_dev, 3 * n_embd, &mut unscaled.q8)
            .unwrap();
        let sums: Vec<f64> = streams
            .chunks_exact(32)
            .map(|values| values.iter().map(|&v| f64::from(v).powi(2)).sum())
            .collect();
        unscaled.square_sums = g.upload(&sums);
        let label = format!("{dtype} three tokens");
        check_norm_readers(&g, &mut random, dtype, &streams, &norm, &unscaled, &label);
    }
    assert_all_freed(&g.device);
}

/// Products reading `unscaled` (the tokens' `streams` prepared for `norm`) with the norm's
/// scale against the norm kernel's Q8 output read by the plain products: a store and a
/// SwiGLU pair, each output within 2e-3 of the row's Σ|w x|, the whole within 2e-3 (L2).
fn check_norm_readers(
    g: &OpsGpu,
    random: &mut Random,
    dtype: GgmlType,
    streams: &[f32],
    norm: &[f32],
    unscaled: &UnscaledNorm,
    label: &str,
) {
    let (eps, n_embd, n_rows) = (1e-5, norm.len(), 67);
    let n_tokens = streams.len() / n_embd;
    let streams_dev = g.upload(streams);
    let norm_dev = g.upload(norm);
    let mut normed = g.poisoned::<f32>(streams.len());
    let mut q8 = Q8Buffers::new(&g.device, streams.len()).unwrap();
    g.ops
        .rms_norm(
            &g.stream,
            &streams_dev,
            &norm_dev,
            eps,
            n_tokens,
            &mut normed,
            Some(&mut q8),
        )
        .unwrap();
    let normed = g.download(&normed);
    for (mode, paired) in [(ProductOutput::Store, false), (ProductOutput::Swiglu, true)] {
        let bytes = [(); 2].map(|_| g.upload(&random_weights(random, dtype, n_rows, n_embd)));
        let [a, b] = [0, 1].map(|i| DeviceMatrix::new(dtype, &bytes[i], n_rows, n_embd).unwrap());
        let mut outputs = [(); 2].map(|_| g.poisoned::<f32>(n_tokens * n_rows));
        let [finished, reference] = &mut outputs;
        let input = ProductInput::Q8(&unscaled.q8, Some(unscaled.scale(eps)));
        let second = || paired.then_some(SecondMatrix { w: &b, y: None });
        g.ops
            .fused_matvec(
                &g.stream,
                input,
                None,
                &a,
                second(),
                n_tokens,
                finished,
                mode,
            )
            .unwrap();
        g.ops
            .matvec_q8(&g.stream, &a, second(), &q8, n_tokens, reference, mode)
            .unwrap();
        let (got, expected) = (g.download(finished), g.download(reference));
        let values = bytes
            .each_ref()
            .map(|b| dequantize_to_vec(dtype, &g.download(b), n_rows * n_embd).unwrap());
        let (mut diff_sq, mut norm_sq) = (0.0f64, 0.0f64);
        for (i, (&got, &expected)) in got.iter().zip(&expected).enumerate() {
            let (t, r) = (i / n_rows, i % n_rows);
            let x = &normed[t * n_embd..(t + 1) * n_embd];
            let [(_, abs_a), (_, abs_b)] = values
                .each_ref()
                .map(|m| dot_f64(&m[r * n_embd..(r + 1) * n_embd], x));
            // silu(a) * b: a's error passes on times at most 1.1 |b|, b's times |silu(a)|.
            let bound = if paired { 2.1 * abs_a * abs_b } else { abs_a };
            let diff = f64::from(got) - f64::from(expected);
            assert!(
                diff.abs() <= 2e-3 * bound,
                "{label} {mode:?}: output {i} = {got}, the norm kernel's path gives {expected}"
            );
            diff_sq += diff * diff;
            norm_sq += f64::from(expected).powi(2);
        }
        let relative = (diff_sq / norm_sq).sqrt();
        assert!(
            relative <= 2e-3,
            "{label} {mode:?}: relative L2 {relative:.2e}"
        );
    }
}

// ------------------------------------------------------------------ norm and activations

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn rms_norm_matches_the_cpu() {
    let g = ops_gpu();
    let mut random = Random::new(21);
    let mut n_exact = 0usize;
    let mut n_values = 0usize;
    // Widths for each instance (values a thread holds: 1, 2, 4, 8) and past the last.
    for (n_rows, width, eps) in [
        (1, 1, 1e-5),
        (3, 7, 1e-6),
        (5, 576, 1e-5),
        (3, 1536, 1e-5),
        (2, 2049, 1e-6),
        (4, 8192, 1e-5),
        (2, 9221, 1e-6),
    ] {
        let x = random_vec(&mut random, n_rows * width, 3.0);
        let weight: Vec<f32> = (0..width).map(|_| 1.0 + random.next_f32() * 0.5).collect();
        let (x_dev, w_dev) = (g.upload(&x), g.upload(&weight));
        let mut out = g.poisoned::<f32>(n_rows * width);
        g.ops
            .rms_norm(&g.stream, &x_dev, &w_dev, eps, n_rows, &mut out, None)
            .unwrap();
        let got = g.download(&out);
        for r in 0..n_rows {
            let mut expected = vec![0.0f32; width];
            cpu::rms_norm(&x[r * width..(r + 1) * width], &weight, eps, &mut expected);
            for (i, (&a, &e)) in got[r * width..(r + 1) * width]
                .iter()
                .zip(&expected)
                .enumerate()
            {
                // The f64 sums of squares differ only in order, so the f32 means agree
                // (then the outputs are bit-equal) or differ by an ulp: 1e-6 is 8 ulps.
                assert!(
                    (a - e).abs() <= 1e-6 * e.abs(),
                    "rms_norm {n_rows}x{width} row {r} value {i}: {a} vs {e}"
                );
                n_exact += usize::from(a.to_bits() == e.to_bits());
                n_values += 1;
            }
        }
    }
    println!("rms_norm: {n_exact} of {n_values} values bit-equal to the CPU");
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn elementwise_steps_match_the_cpu() {
    let g = ops_gpu();
    let mut random = Random::new(22);
    for n in [1usize, 1000, 1_000_003] {
        let gate = random_vec(&mut random, n, 20.0);
        let up = random_vec(&mut random, n, 3.0);
        let up_dev = g.upload(&up);
        // expf / tanhf within 2 ulps of the CPU's, then a few products: 1e-6 relative is
        // about 8 ulps. GELU's 1 + tanh(x) cancels for negative x, so its error is up to
        // a few ulps of 1 times 0.5 g u however small the result.
        for (gate_kind, cpu_gate, absolute) in [
            (Gate::Silu, cpu::swiglu as fn(&mut [f32], &[f32]), 0.0),
            (Gate::Gelu, cpu::geglu, 5e-7),
        ] {
            let mut gate_dev = g.upload(&gate);
            g.ops
                .gated(&g.stream, gate_kind, &mut gate_dev, &up_dev, n)
                .unwrap();
            let got = g.download(&gate_dev);
            let mut expected = gate.clone();
            cpu_gate(&mut expected, &up);
            for i in 0..n {
                let e = expected[i];
                assert!(
                    (got[i] - e).abs()
                        <= 1e-6 * e.abs() + absolute * (gate[i] * up[i]).abs() + 1e-30,
                    "{gate_kind:?} n={n} [{i}]: gate {} up {} gives {} vs {e}",
                    gate[i],
                    up[i],
                    got[i]
                );
            }
        }

        // Scaling and a bias over rows of 7 are exact.
        let mut x_dev = g.upload(&gate);
        g.ops.scale(&g.stream, &mut x_dev, 0.375, n).unwrap();
        let scaled: Vec<f32> = gate.iter().map(|&v| v * 0.375).collect();
        assert!(g.download(&x_dev) == scaled, "scale n={n}");
        if n.is_multiple_of(7) || n == 1 {
            let width = n.min(7);
            let bias = random_vec(&mut random, width, 2.0);
            let mut x_dev = g.upload(&gate);
            g.ops
                .add_bias(&g.stream, &mut x_dev, &g.upload(&bias), n / width)
                .unwrap();
            let biased: Vec<f32> = gate
                .iter()
                .enumerate()
                .map(|(i, &v)| v + bias[i % width])
                .collect();
            assert!(g.download(&x_dev) == biased, "add_bias n={n}");
        }

        let mut y_dev = g.upload(&gate);
        g.ops.add_assign(&g.stream, &mut y_dev, &up_dev, n).unwrap();
        let mut sums = gate.clone();
        cpu::add_assign(&mut sums, &up);
        assert!(g.download(&y_dev) == sums, "add n={n}");
    }
    assert_all_freed(&g.device);
}

/// The CPU sampler's greedy choice: NaN is -inf, ties go to the lowest index, nothing
/// above -inf gives 0.
fn argmax_cpu(row: &[f32]) -> i32 {
    let value = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let best = row
        .iter()
        .copied()
        .map(value)
        .fold(f32::NEG_INFINITY, f32::max);
    row.iter().position(|&v| value(v) == best).unwrap_or(0) as i32
}

/// The device's argmax of the first `n_rows` rows of `logits`, read from an output of
/// `out_len` entries poisoned with -1 (those past `n_rows` must stay so).
fn device_argmax(
    g: &OpsGpu,
    logits: &DeviceBuffer<f32>,
    n_rows: usize,
    n_vocab: usize,
    scratch: &mut ArgmaxScratch,
    out_len: usize,
) -> Vec<i32> {
    let mut out = poisoned_mapped(g, out_len);
    g.ops
        .argmax(&g.stream, logits, n_rows, n_vocab, scratch, &mut out)
        .unwrap();
    read_mapped(g, &mut out)
}

/// The device's argmax of `rows` (each `n_vocab` wide, with a scratch of their own) is
/// `expected`, which is also the CPU sampler's choice.
fn assert_device_argmax(g: &OpsGpu, rows: &[Vec<f32>], n_vocab: usize, expected: Vec<i32>) {
    let cpu: Vec<i32> = rows.iter().map(|r| argmax_cpu(r)).collect();
    assert_eq!(cpu, expected, "the CPU sampler, n_vocab {n_vocab}");
    let logits = g.upload(&rows.concat());
    let mut scratch = ArgmaxScratch::new(&g.device, rows.len(), n_vocab).unwrap();
    let n = rows.len();
    let got = device_argmax(g, &logits, n, n_vocab, &mut scratch, n);
    assert_eq!(got, expected, "n_vocab {n_vocab}");
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn argmax_picks_the_first_best_like_the_sampler() {
    let g = ops_gpu();
    let mut random = Random::new(23);
    let n_vocab = 151_937;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    rows.push(random_vec(&mut random, n_vocab, 30.0));
    // Ties: the same maximum at a late and an early index, far apart.
    let mut tied = random_vec(&mut random, n_vocab, 1.0);
    tied[150_000] = 5.0;
    tied[4099] = 5.0;
    tied[4100] = 5.0;
    rows.push(tied);
    // NaNs everywhere but one finite value, then NaN beside the maximum.
    let mut nans = vec![f32::NAN; n_vocab];
    nans[77_777] = -1e30;
    rows.push(nans);
    let mut nan_first = random_vec(&mut random, n_vocab, 1.0);
    nan_first[0] = f32::NAN;
    nan_first[n_vocab - 1] = 2.0;
    rows.push(nan_first);
    rows.push(vec![f32::NEG_INFINITY; n_vocab]);
    rows.push(vec![f32::NAN; n_vocab]);
    let mut infinite = random_vec(&mut random, n_vocab, 1.0);
    infinite[123] = f32::INFINITY;
    infinite[99] = f32::INFINITY;
    rows.push(infinite);

    let flat: Vec<f32> = rows.concat();
    let logits = g.upload(&flat);
    // One more than the rows: the kernel must leave the last alone.
    let mut scratch = ArgmaxScratch::new(&g.device, rows.len(), n_vocab).unwrap();
    let n = rows.len();
    let got = device_argmax(&g, &logits, n, n_vocab, &mut scratch, n + 1);
    let mut expected: Vec<i32> = rows.iter().map(|r| argmax_cpu(r)).collect();
    assert_eq!(
        expected[1..],
        [4099, 77_777, (n_vocab - 1) as i32, 0, 0, 99]
    );
    expected.push(-1);
    assert_eq!(got, expected);

    // A single row, as a greedy decode step asks for (4 bytes, written into host memory),
    // with the same scratch: the launch before left its counters as it found them.
    let one = device_argmax(&g, &logits, 1, n_vocab, &mut scratch, 1);
    assert_eq!(one, [expected[0]]);

    // Rows of one chunk and of a few, each starting at another offset from a 16-byte
    // boundary, the best in the values before the first whole vector, among the
    // vectors, and after the last (three positions a width).
    for n_vocab in [1, 3, 5, 4096, 4099, 12_289] {
        for best_at in [0, n_vocab / 2, n_vocab - 1] {
            let rows: Vec<Vec<f32>> = (0..4)
                .map(|_| {
                    let mut row = random_vec(&mut random, n_vocab, 1.0);
                    row[best_at] = 3.0;
                    row
                })
                .collect();
            assert_device_argmax(&g, &rows, n_vocab, [best_at as i32; 4].to_vec());
        }
        // The single-chunk path and the chunked one alike: nothing above -inf, NaN
        // everywhere, NaN but for one value, a tie between the middle and the last.
        let mut one_finite = vec![f32::NAN; n_vocab];
        one_finite[n_vocab / 2] = -1e30;
        let mut tie = random_vec(&mut random, n_vocab, 1.0);
        tie[n_vocab - 1] = 3.0;
        tie[n_vocab / 2] = 3.0;
        let rows = [
            vec![f32::NEG_INFINITY; n_vocab],
            vec![f32::NAN; n_vocab],
            one_finite,
            tie,
        ];
        let half = (n_vocab / 2) as i32;
        assert_device_argmax(&g, &rows, n_vocab, vec![0, 0, half, half]);
    }
    // The most chunks a row is cut into (256): the last block's pick over a thread each,
    // the best in the last chunk's first stretch (vectors 255 * 256 on, of a row that
    // starts aligned) and then an equal value in the first chunk's.
    let n_vocab = 256 * 4096 + 5;
    let in_last_chunk = 4 * 255 * 256 + 1;
    let mut row = random_vec(&mut random, n_vocab, 1.0);
    row[in_last_chunk] = 3.0;
    assert_device_argmax(&g, &[row.clone()], n_vocab, vec![in_last_chunk as i32]);
    row[7] = 3.0;
    assert_device_argmax(&g, &[row], n_vocab, vec![7]);
    drop((logits, scratch));
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn staged_uploads_land_whole_in_their_buffers() {
    let g = ops_gpu();
    let mut random = Random::new(29);
    // Around a 16-byte vector, and past one gather's grid (64 blocks of 256 lanes of 16
    // bytes): 1.2 MB.
    let word_lengths = [1usize, 3, 4, 5, 17, 1000, 300_000];
    let byte_lengths = [1usize, 15, 16, 33];
    let capacity = 16 * (word_lengths.len() + byte_lengths.len())
        + 4 * word_lengths.iter().sum::<usize>()
        + byte_lengths.iter().sum::<usize>();
    let mut staging = UploadStaging::new(&g.stream, capacity).unwrap();
    // Each buffer one element longer than its upload: the gather must leave the last.
    let mut words: Vec<_> = word_lengths
        .iter()
        .map(|&n| g.poisoned::<u32>(n + 1))
        .collect();
    let mut bytes: Vec<_> = byte_lengths
        .iter()
        .map(|&n| g.poisoned::<u8>(n + 1))
        .collect();
    // Twice, so the second set reuses the area the first one's gather read.
    for round in 0..2 {
        let word_values: Vec<Vec<u32>> = word_lengths
            .iter()
            .map(|&n| (0..n).map(|_| random.next_u64() as u32).collect())
            .collect();
        let byte_values: Vec<Vec<u8>> = byte_lengths
            .iter()
            .map(|&n| (0..n).map(|_| random.next_u64() as u8).collect())
            .collect();
        let mut uploads = staging.begin(&g.stream).unwrap();
        for (values, buffer) in word_values.iter().zip(&mut words) {
            uploads.upload(values, buffer).unwrap();
        }
        for (values, buffer) in byte_values.iter().zip(&mut bytes) {
            uploads.upload(values, buffer).unwrap();
        }
        uploads
            .finish(|staged| g.ops.gather_staged(&g.stream, staged))
            .unwrap();
        for (values, buffer) in word_values.iter().zip(&words) {
            let got = g.download(buffer);
            assert_eq!(got[..values.len()], values[..], "round {round}");
            assert_eq!(
                got[values.len()],
                u32::MAX,
                "round {round}: written past the end"
            );
        }
        for (values, buffer) in byte_values.iter().zip(&bytes) {
            let got = g.download(buffer);
            assert_eq!(got[..values.len()], values[..], "round {round}");
            assert_eq!(
                got[values.len()],
                u8::MAX,
                "round {round}: written past the end"
            );
        }
    }
    // The area's limits are errors, not writes past it.
    let mut uploads = staging.begin(&g.stream).unwrap();
    let too_many = vec![0u32; capacity / 4 + 1];
    let mut large = g.poisoned::<u32>(too_many.len());
    assert!(matches!(
        uploads.upload(&too_many, &mut large),
        Err(Error::InvalidArgument(_))
    ));
    drop((staging, words, bytes, large));
    assert_all_freed(&g.device);
}

/// `len` ints of host memory mapped into the test's GPU, each -1, so that one a kernel
/// should have written and did not, or one it should not have written, shows.
fn poisoned_mapped(g: &OpsGpu, len: usize) -> MappedHost<i32> {
    let mapped = MappedHost::new(&g.device, len).unwrap();
    for index in 0..len {
        mapped.store(index, -1);
    }
    mapped
}

/// Every value of `mapped` once the test's stream has finished.
fn read_mapped(g: &OpsGpu, mapped: &mut MappedHost<i32>) -> Vec<i32> {
    g.stream.synchronize().unwrap();
    let mut values = vec![0; mapped.len()];
    mapped.load_into(&mut values).unwrap();
    values
}

// ------------------------------------------------------------------ RoPE + cache write

/// The CPU backend's RoPE of every head of `x` at `pos`.
fn rope_cpu(
    x: &mut [f32],
    head_dim: usize,
    style: RopeStyle,
    pos: i32,
    base: f32,
    rope_dims: usize,
) {
    cpu::rope(
        x,
        head_dim,
        style,
        &cpu::RopeAngles::new(pos, base, rope_dims),
    );
}

/// Fails unless `got` is `expected` within the rounding of cosf/sinf: each differs from
/// the CPU's by at most 2 ulps, so a rotated value by about 2.5e-7 * |pair|; 1e-6 * |pair|
/// leaves a factor of 4.
fn assert_rotated_close(
    what: &str,
    got: &[f32],
    expected: &[f32],
    before: &[f32],
    head_dim: usize,
    style: RopeStyle,
    rope_dims: usize,
) {
    for (i, (&a, &e)) in got.iter().zip(expected).enumerate() {
        let d = i % head_dim;
        let partner = match style {
            _ if d >= rope_dims => i,
            RopeStyle::Normal => i ^ 1,
            RopeStyle::Neox if d < rope_dims / 2 => i + rope_dims / 2,
            RopeStyle::Neox => i - rope_dims / 2,
        };
        let pair = before[i].abs() + before[partner].abs();
        assert!((a - e).abs() <= 1e-6 * pair, "{what}[{i}]: {a} vs {e}");
        if d >= rope_dims {
            assert_eq!(
                a, before[i],
                "{what}[{i}] is past rope_dims and must pass through"
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn rope_rotates_and_writes_the_cache_like_the_cpu() {
    let g = ops_gpu();
    let mut random = Random::new(31);
    let cases = [
        (9, 3, 64, 64, RopeStyle::Normal, 10_000.0f32, KvType::F16),
        (8, 8, 128, 128, RopeStyle::Neox, 1_000_000.0, KvType::F16),
        (12, 3, 128, 64, RopeStyle::Neox, 10_000.0, KvType::F16),
        (4, 1, 256, 128, RopeStyle::Normal, 500_000.0, KvType::F16),
        (9, 3, 64, 64, RopeStyle::Normal, 10_000.0f32, KvType::F32),
        (8, 8, 128, 128, RopeStyle::Neox, 1_000_000.0, KvType::Q8_0),
        (4, 1, 256, 128, RopeStyle::Normal, 500_000.0, KvType::Q8_0),
    ];
    for (n_head, n_kv_heads, head_dim, rope_dims, style, base, kv_type) in cases {
        let heads = HeadShape {
            n_head,
            n_kv_heads,
            head_dim,
        };
        let (q_dim, kv_dim) = (n_head * head_dim, n_kv_heads * head_dim);
        let n_slots = 50;
        let positions = [0i32, 1, 4095, 8191, 131_071, 17];
        // The last token's slot is outside the cache: rotated, not stored.
        let slots = [7u32, 0, 49, 23, 24, n_slots as u32];
        let n = positions.len();
        let q = random_vec(&mut random, n * q_dim, 3.0);
        let k = random_vec(&mut random, n * kv_dim, 3.0);
        let v = random_vec(&mut random, n * kv_dim, 3.0);
        let mut q_dev = g.upload(&q);
        let mut k_dev = g.upload(&k);
        let v_dev = g.upload(&v);
        let (pos_dev, slot_dev) = (g.upload(&positions), g.upload(&slots));
        let row_bytes = kv_type.bytes(kv_dim);
        let mut k_cache = g.poisoned::<u8>(n_slots * row_bytes);
        let mut v_cache = g.poisoned::<u8>(n_slots * row_bytes);
        let rope = RopeParams {
            style,
            base,
            rope_dims,
        };
        let buffers = RopeKvWrite {
            q: &mut q_dev,
            k: &mut k_dev,
            v: &v_dev,
            pos: &pos_dev,
            write_slot: &slot_dev,
            k_cache: &mut k_cache,
            v_cache: &mut v_cache,
            kv_type,
        };
        g.ops
            .rope_kv_write(&g.stream, &rope, &heads, n, buffers)
            .unwrap();
        let (q_got, k_got) = (g.download(&q_dev), g.download(&k_dev));
        let (k_cached, v_cached) = (g.download(&k_cache), g.download(&v_cache));
        for t in 0..n {
            let what = format!(
                "{heads:?} {kv_type:?} rope_dims {rope_dims} {style:?} pos {}",
                positions[t]
            );
            let (qs, ks) = (t * q_dim..(t + 1) * q_dim, t * kv_dim..(t + 1) * kv_dim);
            let mut q_expected = q[qs.clone()].to_vec();
            rope_cpu(
                &mut q_expected,
                head_dim,
                style,
                positions[t],
                base,
                rope_dims,
            );
            assert_rotated_close(
                &format!("{what} q"),
                &q_got[qs.clone()],
                &q_expected,
                &q[qs],
                head_dim,
                style,
                rope_dims,
            );
            let mut k_expected = k[ks.clone()].to_vec();
            rope_cpu(
                &mut k_expected,
                head_dim,
                style,
                positions[t],
                base,
                rope_dims,
            );
            assert_rotated_close(
                &format!("{what} k"),
                &k_got[ks.clone()],
                &k_expected,
                &k[ks.clone()],
                head_dim,
                style,
                rope_dims,
            );
            let slot = slots[t] as usize;
            if slot < n_slots {
                // The cache holds exactly the rotated key and the value as the CPU stores
                // them in this type.
                let cached = slot * row_bytes..(slot + 1) * row_bytes;
                let stored = |values: &[f32]| {
                    let mut bytes = vec![0u8; row_bytes];
                    kv_type.encode(values, &mut bytes);
                    bytes
                };
                assert_eq!(
                    k_cached[cached.clone()],
                    stored(&k_got[ks.clone()])[..],
                    "{what}: K cache"
                );
                assert_eq!(v_cached[cached], stored(&v[ks])[..], "{what}: V cache");
            }
        }
        // Slots no token writes keep their poison.
        for slot in (0..n_slots).filter(|s| !slots.contains(&(*s as u32))) {
            let untouched = |cache: &[u8]| {
                cache[slot * row_bytes..(slot + 1) * row_bytes]
                    .iter()
                    .all(|&b| b == 0xFF)
            };
            assert!(
                untouched(&k_cached) && untouched(&v_cached),
                "slot {slot} was written"
            );
        }
    }
    assert_all_freed(&g.device);
}

// ------------------------------------------------------------------ attention

/// A paged cache built by the real bookkeeping, with scattered blocks, holes from a
/// removal, blocks shared by a fork, and sequences of 7, ~3000 and 4097 tokens.
struct PagedScenario {
    cache: KvCache,
    block_size: usize,
    n_slots: usize,
    /// Sequence ids in the order of the device tables.
    seqs: Vec<i32>,
}

impl PagedScenario {
    fn new() -> PagedScenario {
        let (n_blocks, block_size) = (600, 16);
        let mut cache = KvCache::new(n_blocks, block_size, 5).unwrap();
        let mut plan = KvWritePlan::new();
        // Appends in rounds, so the sequences' blocks interleave through the pool.
        let lengths = [(0, 3000), (3, 4097), (2, 7), (4, 1)];
        let mut next = [0i32; 5];
        loop {
            let mut appended = false;
            for &(seq, len) in &lengths {
                let start = next[seq as usize];
                let end = (start + 37).min(len);
                if start < end {
                    let positions: Vec<i32> = (start..end).collect();
                    cache.append(seq, &positions, &mut plan).unwrap();
                    next[seq as usize] = end;
                    appended = true;
                }
            }
            if !appended {
                break;
            }
        }
        // Holes: a middle range of sequence 0 (some blocks emptied, some half-empty).
        cache.remove(0, 500, 733).unwrap();
        // A fork: sequence 1 shares sequence 0's first 1200 positions, then diverges (its
        // first append copies the shared tail block).
        cache.copy_seq(0, 1, 0, 1200).unwrap();
        let positions: Vec<i32> = (5000..5100).collect();
        cache.append(1, &positions, &mut plan).unwrap();
        // A gap in positions: sequence 2 continues at 100.
        cache.append(2, &[100, 101], &mut plan).unwrap();
        PagedScenario {
            cache,
            block_size,
            n_slots: n_blocks * block_size,
            seqs: vec![0, 1, 2, 3, 4],
        }
    }

    fn max_blocks(&self) -> usize {
        self.seqs
            .iter()
            .map(|&s| self.cache.sequence(s).unwrap().block_table().len())
            .max()
            .unwrap()
    }

    /// `(block_tables, slot_positions, n_logical)` padded to max_blocks.
    fn device_tables(&self) -> (Vec<u32>, Vec<i32>, Vec<u32>) {
        let max_blocks = self.max_blocks();
        let (mut tables, mut positions, mut n_logical) = (Vec::new(), Vec::new(), Vec::new());
        for &seq in &self.seqs {
            let table = self.cache.sequence(seq).unwrap();
            let mut blocks: Vec<u32> = table
                .block_table()
                .iter()
                .map(|b| b.index() as u32)
                .collect();
            blocks.resize(max_blocks, 0);
            tables.extend(blocks);
            let mut slot_positions = table.slot_positions().to_vec();
            n_logical.push(slot_positions.len() as u32);
            slot_positions.resize(max_blocks * self.block_size, EMPTY_SLOT);
            positions.extend(slot_positions);
        }
        (tables, positions, n_logical)
    }

    /// `(position, slot)` of sequence index `s`'s live tokens at or before `pos`.
    fn visible(&self, s: usize, pos: i32) -> Vec<(i32, usize)> {
        let table = self.cache.sequence(self.seqs[s]).unwrap();
        table
            .live_tokens()
            .filter(|t| t.position <= pos)
            .map(|t| (t.position, t.slot as usize))
            .collect()
    }
}

/// softmax(q·K * scale)·V of one query head over `visible`, in f64.
fn attention_f64(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    visible: &[(i32, usize)],
    kv_dim: usize,
    kv_offset: usize,
    scale: f64,
) -> Vec<f64> {
    let hd = q.len();
    let row =
        |cache: &[f32], slot: usize, d: usize| f64::from(cache[slot * kv_dim + kv_offset + d]);
    let scores: Vec<f64> = visible
        .iter()
        .map(|&(_, slot)| {
            (0..hd)
                .map(|d| f64::from(q[d]) * row(k, slot, d))
                .sum::<f64>()
                * scale
        })
        .collect();
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    (0..hd)
        .map(|d| {
            visible
                .iter()
                .zip(&weights)
                .map(|(&(_, slot), w)| w * row(v, slot, d))
                .sum::<f64>()
                / total
        })
        .collect()
}

struct AttentionCase {
    heads: HeadShape,
    /// Scales the random queries: about 1 gives scores of order one, 1e4-ish scores of
    /// order ±1e4.
    q_scale: f32,
    /// Absolute tolerance against float64.
    tolerance: f64,
    /// The same for the tensor-core prefill kernel, where it differs (see
    /// [`AttentionCase::with_split_query_tolerance`]).
    split_query_tolerance: f64,
    /// How the cache stores K and V.
    kv_type: KvType,
    /// A sliding window: each query sees only the last `window` positions.
    window: Option<usize>,
}

impl AttentionCase {
    fn new(heads: (usize, usize, usize), q_scale: f32, tolerance: f64, kv_type: KvType) -> Self {
        let (n_head, n_kv_heads, head_dim) = heads;
        AttentionCase {
            heads: HeadShape {
                n_head,
                n_kv_heads,
                head_dim,
            },
            q_scale,
            tolerance,
            split_query_tolerance: tolerance,
            kv_type,
            window: None,
        }
    }

    /// The tensor-core kernel holds each query as two f16 halves, 22 significant bits
    /// where f32 has 24: at scores of 1e4 its rounding is about four times f32's.
    fn with_split_query_tolerance(self, split_query_tolerance: f64) -> Self {
        AttentionCase {
            split_query_tolerance,
            ..self
        }
    }

    fn with_window(self, window: usize) -> Self {
        AttentionCase {
            window: Some(window),
            ..self
        }
    }

    /// Runs the case through every launch ([`check_attention`]) and prints their worst
    /// errors under `label`.
    fn check(&self, g: &OpsGpu, scenario: &PagedScenario, random: &mut Random, label: &str) {
        let [prefill, unquantized, decode] = check_attention(g, scenario, self, random);
        println!(
            "{label} {:?} {:?}: max |error| prefill {prefill:.2e}, prefill without Q8 output \
             {unquantized:.2e}, decode {decode:.2e}",
            self.kv_type, self.heads
        );
    }
}

/// The batch: runs of tokens from several sequences, in an order that mixes them, each
/// at a position whose own K/V is cached (as after the RoPE write of its step).
fn prefill_tokens(scenario: &PagedScenario) -> Vec<(usize, i32)> {
    let mut tokens = Vec::new();
    let last = |s: usize| scenario.cache.pos_max(scenario.seqs[s]).unwrap();
    tokens.extend((0..25).map(|i| (1usize, last(1) - 30 + i)));
    tokens.extend((0..9).map(|i| (2usize, i)));
    tokens.extend((0..20).map(|i| (3usize, last(3) - 19 + i)));
    tokens.extend((0..5).map(|i| (0usize, 495 + i * 60))); // around the hole
    tokens.push((4, 0));
    tokens.extend((0..6).map(|i| (1usize, 1190 + i * 2))); // the shared prefix's end
    tokens
}

fn decode_tokens(scenario: &PagedScenario) -> Vec<(usize, i32)> {
    // One per sequence at its latest position, and one earlier query.
    let mut tokens: Vec<(usize, i32)> = (0..scenario.seqs.len())
        .map(|s| (s, scenario.cache.pos_max(scenario.seqs[s]).unwrap()))
        .collect();
    tokens.push((3, 511));
    tokens
}

/// The launches [`check_attention`] makes.
const LAUNCHES: [&str; 3] = ["prefill", "prefill without Q8 output", "decode"];

/// Runs one case through the prefill launcher with and without a Q8 output (without one,
/// an F16 cache's heads of 64 or 128 values go to the tensor-core kernel on NVIDIA) and
/// the decode launcher, and returns their largest absolute errors.
fn check_attention(
    g: &OpsGpu,
    scenario: &PagedScenario,
    case: &AttentionCase,
    random: &mut Random,
) -> [f64; 3] {
    let heads = case.heads;
    let (q_dim, kv_dim, hd) = (
        heads.n_head * heads.head_dim,
        heads.n_kv_heads * heads.head_dim,
        heads.head_dim,
    );
    let group = heads.n_head / heads.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // Random values stored as the case's type; the reference reads them back as stored.
    let mut stored = || {
        let values: Vec<f32> = (0..scenario.n_slots * kv_dim)
            .map(|_| random.next_f32())
            .collect();
        let mut bytes = vec![0u8; case.kv_type.bytes(values.len())];
        case.kv_type.encode(&values, &mut bytes);
        let mut read = vec![0.0f32; values.len()];
        case.kv_type.decode(&bytes, &mut read).unwrap();
        (g.upload(&bytes), read)
    };
    let (mut k_dev, k) = stored();
    let (mut v_dev, v) = stored();
    let (tables, positions, n_logical) = scenario.device_tables();
    let (tables_dev, positions_dev, n_logical_dev) = (
        g.upload(&tables),
        g.upload(&positions),
        g.upload(&n_logical),
    );
    let mut kv = PagedKv {
        k_cache: &mut k_dev,
        v_cache: &mut v_dev,
        kv_type: case.kv_type,
        window: case.window,
        block_tables: &tables_dev,
        slot_positions: &positions_dev,
        n_logical: &n_logical_dev,
        n_seq: scenario.seqs.len(),
        max_blocks: scenario.max_blocks(),
        block_size: scenario.block_size,
    };
    let mut workspace = AttentionWorkspace::new(
        &g.device,
        &heads,
        8,
        scenario.max_blocks() * scenario.block_size,
        256,
    )
    .unwrap();
    let mut worst = [0.0f64; 3];
    let batches = [
        prefill_tokens(scenario),
        prefill_tokens(scenario),
        decode_tokens(scenario),
    ];
    for (launcher, batch) in batches.into_iter().enumerate() {
        let n = batch.len();
        let q = random_vec(random, n * q_dim, case.q_scale);
        let seq_index: Vec<u32> = batch.iter().map(|&(s, _)| s as u32).collect();
        let pos: Vec<i32> = batch.iter().map(|&(_, p)| p).collect();
        let (q_dev, seq_dev, pos_dev) = (g.upload(&q), g.upload(&seq_index), g.upload(&pos));
        let tokens = StepTokens {
            seq_index: &seq_dev,
            pos: &pos_dev,
            n_tokens: n,
        };
        let mut out = g.poisoned::<f32>(n * q_dim);
        // The output as Q8 activations too: what the kernel quantizes must be exactly its
        // own f32 output, quantized as the CPU does.
        let mut q8 = Q8Buffers::new(&g.device, n * q_dim).unwrap();
        let quantized = if launcher < 2 {
            g.ops
                .attention_prefill(
                    &g.stream,
                    &heads,
                    scale,
                    &mut kv,
                    &tokens,
                    &q_dev,
                    &mut out,
                    (launcher == 0).then_some(&mut q8),
                )
                .unwrap()
        } else {
            g.ops
                .attention_decode(
                    &g.stream,
                    &heads,
                    scale,
                    &mut kv,
                    &tokens,
                    &q_dev,
                    &mut out,
                    &mut workspace,
                    Some(&mut q8),
                    None,
                )
                .unwrap()
        };
        let got = g.download(&out);
        if launcher == 2 {
            // Again on the same workspace: its split tickets must be back at zero, so the
            // merge happens again, writing the same values into a fresh buffer.
            let mut again = g.poisoned::<f32>(n * q_dim);
            g.ops
                .attention_decode(
                    &g.stream,
                    &heads,
                    scale,
                    &mut kv,
                    &tokens,
                    &q_dev,
                    &mut again,
                    &mut workspace,
                    None,
                    None,
                )
                .unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&g.download(&again)),
                bits(&got),
                "{heads:?}: second decode"
            );
        }
        // The one-token-a-block kernel (heads of up to 256 values, a whole number of warps)
        // quantizes; the tiled kernel leaves it to a separate pass.
        let warp = g.device.facts().warp_size as usize;
        assert_eq!(
            quantized,
            launcher != 1 && hd <= 256 && hd.is_multiple_of(warp),
            "{heads:?}: quantized by the attention kernel"
        );
        if quantized {
            Q8Host::download(g, &q8, n * q_dim).assert_quantizes(&got, "attention output");
        }
        for (t, &(s, p)) in batch.iter().enumerate() {
            let oldest = case.window.map_or(i32::MIN, |w| p - w as i32 + 1);
            let visible: Vec<(i32, usize)> = scenario
                .visible(s, p)
                .into_iter()
                .filter(|&(position, _)| position >= oldest)
                .collect();
            // Every query sees a key, unless a window leaves none (a query in a hole of
            // its sequence): its output is then zeros.
            assert!(!visible.is_empty() || case.window.is_some());
            for h in 0..heads.n_head {
                let at = t * q_dim + h * hd;
                let expected = if visible.is_empty() {
                    vec![0.0; hd]
                } else {
                    attention_f64(
                        &q[at..at + hd],
                        &k,
                        &v,
                        &visible,
                        kv_dim,
                        (h / group) * hd,
                        f64::from(scale),
                    )
                };
                let tolerance = if launcher == 1 {
                    case.split_query_tolerance
                } else {
                    case.tolerance
                };
                for d in 0..hd {
                    let error = (f64::from(got[at + d]) - expected[d]).abs();
                    assert!(
                        error <= tolerance,
                        "{} {heads:?} {:?} q_scale {}: token {t} (seq {s} pos {p}, {} keys) head {h} dim {d}: {} vs {}",
                        LAUNCHES[launcher],
                        case.kv_type,
                        case.q_scale,
                        visible.len(),
                        got[at + d],
                        expected[d]
                    );
                    worst[launcher] = worst[launcher].max(error);
                }
            }
        }
    }
    worst
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn paged_attention_matches_float64() {
    let g = ops_gpu();
    let scenario = PagedScenario::new();
    let mut random = Random::new(41);
    // GQA ratios 1, 3, 4, 8 and 9; head_dim 64, 128 and 256: the one-token-a-block kernel.
    // head_dim 320 is past its limit, 16 and 40 are not whole lanes of a warp: the tiled
    // kernel and its combine (16: the tile bounded by shared memory, not by threads).
    for heads in [
        (4, 4, 64),
        (6, 2, 128),
        (8, 2, 64),
        (16, 2, 128),
        (4, 2, 256),
        (18, 2, 64),
        (4, 2, 320),
        (4, 2, 16),
        (6, 3, 40),
    ] {
        // Scores with a spread of several units, so the softmax is far from uniform; f32
        // dot products and sums over up to 4097 keys: errors of order 1e-7.
        AttentionCase::new(heads, 4.0, 1e-5, KvType::F16).check(
            &g,
            &scenario,
            &mut random,
            "attention",
        );
    }
    assert_all_freed(&g.device);
}

/// A one-token decode whose attention launch does the step's RoPE and cache write gives
/// the bits of the separate RoPE kernel followed by attention: the same output and Q8
/// output, and the same caches, for tokens whose own key lands in the first, a middle or
/// the last split (sequences of 1, 9 and ~4100 keys), over every cache type and both
/// rotation styles, partial rotation and grouped heads.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn decode_attention_does_the_rope_of_its_step_bit_for_bit() {
    let g = ops_gpu();
    let scenario = PagedScenario::new();
    let mut random = Random::new(43);
    let cases = [
        ((9, 3, 64), 64, RopeStyle::Normal, KvType::F16),
        ((8, 8, 128), 128, RopeStyle::Neox, KvType::F16),
        ((6, 2, 128), 64, RopeStyle::Neox, KvType::F32),
        ((4, 1, 256), 128, RopeStyle::Normal, KvType::Q8_0),
    ];
    let (tables, positions, n_logical) = scenario.device_tables();
    let (tables_dev, positions_dev, n_logical_dev) = (
        g.upload(&tables),
        g.upload(&positions),
        g.upload(&n_logical),
    );
    for ((n_head, n_kv_heads, head_dim), rope_dims, style, kv_type) in cases {
        let heads = HeadShape {
            n_head,
            n_kv_heads,
            head_dim,
        };
        assert!(g.ops.decode_attention_rotates(&heads, kv_type));
        let (q_dim, kv_dim) = (n_head * head_dim, n_kv_heads * head_dim);
        let rope = RopeParams {
            style,
            base: 10_000.0,
            rope_dims,
        };
        let cache_values: Vec<f32> = (0..scenario.n_slots * kv_dim)
            .map(|_| random.next_f32())
            .collect();
        let mut cache_bytes = vec![0u8; kv_type.bytes(cache_values.len())];
        kv_type.encode(&cache_values, &mut cache_bytes);
        let mut workspace = AttentionWorkspace::new(
            &g.device,
            &heads,
            1,
            scenario.max_blocks() * scenario.block_size,
            256,
        )
        .unwrap();
        // Sequences 4 (1 key), 2 (9 keys, a gap in positions), 3 (4097 keys).
        for s in [4usize, 2, 3] {
            let what = format!("{heads:?} {kv_type:?} {style:?} rope_dims {rope_dims} seq {s}");
            let p = scenario.cache.pos_max(scenario.seqs[s]).unwrap();
            let own_slot = scenario
                .visible(s, p)
                .last()
                .map(|&(_, slot)| slot as u32)
                .unwrap();
            let q = random_vec(&mut random, q_dim, 4.0);
            let k = random_vec(&mut random, kv_dim, 4.0);
            let v = random_vec(&mut random, kv_dim, 1.0);
            let (seq_dev, pos_dev) = (g.upload(&[s as u32]), g.upload(&[p]));
            let slot_dev = g.upload(&[own_slot]);
            let tokens = StepTokens {
                seq_index: &seq_dev,
                pos: &pos_dev,
                n_tokens: 1,
            };
            let v_dev = g.upload(&v);
            let decode = |fused: bool, workspace: &mut AttentionWorkspace| {
                let (mut k_cache, mut v_cache) = (g.upload(&cache_bytes), g.upload(&cache_bytes));
                let (mut q_dev, mut k_dev) = (g.upload(&q), g.upload(&k));
                if !fused {
                    let buffers = RopeKvWrite {
                        q: &mut q_dev,
                        k: &mut k_dev,
                        v: &v_dev,
                        pos: &pos_dev,
                        write_slot: &slot_dev,
                        k_cache: &mut k_cache,
                        v_cache: &mut v_cache,
                        kv_type,
                    };
                    g.ops
                        .rope_kv_write(&g.stream, &rope, &heads, 1, buffers)
                        .unwrap();
                }
                let mut kv = PagedKv {
                    k_cache: &mut k_cache,
                    v_cache: &mut v_cache,
                    kv_type,
                    window: None,
                    block_tables: &tables_dev,
                    slot_positions: &positions_dev,
                    n_logical: &n_logical_dev,
                    n_seq: scenario.seqs.len(),
                    max_blocks: scenario.max_blocks(),
                    block_size: scenario.block_size,
                };
                let decode_rope = fused.then_some(DecodeRope {
                    params: &rope,
                    k: &k_dev,
                    v: &v_dev,
                    write_slot: &slot_dev,
                });
                let mut out = g.poisoned::<f32>(q_dim);
                let mut q8 = Q8Buffers::new(&g.device, q_dim).unwrap();
                let scale = 1.0 / (head_dim as f32).sqrt();
                let quantized = g
                    .ops
                    .attention_decode(
                        &g.stream,
                        &heads,
                        scale,
                        &mut kv,
                        &tokens,
                        &q_dev,
                        &mut out,
                        workspace,
                        Some(&mut q8),
                        decode_rope,
                    )
                    .unwrap();
                assert!(quantized, "{what}: quantized by the attention kernel");
                let q8 = Q8Host::download(&g, &q8, q_dim);
                let bits = g.download_bits(&out);
                let q8_bits: Vec<u32> = q8
                    .scales
                    .iter()
                    .chain(&q8.sums)
                    .map(|x| x.to_bits())
                    .collect();
                (
                    bits,
                    q8.quants,
                    q8_bits,
                    g.download(&k_cache),
                    g.download(&v_cache),
                )
            };
            let separate = decode(false, &mut workspace);
            let fused = decode(true, &mut workspace);
            assert_eq!(fused.0, separate.0, "{what}: output");
            assert_eq!(fused.1, separate.1, "{what}: Q8 quants");
            assert_eq!(fused.2, separate.2, "{what}: Q8 steps and sums");
            assert!(fused.3 == separate.3, "{what}: K cache");
            assert!(fused.4 == separate.4, "{what}: V cache");
            assert!(separate.3 != cache_bytes, "{what}: the step wrote its key");
        }
    }
    drop((tables_dev, positions_dev, n_logical_dev));
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn paged_attention_stays_finite_with_scores_of_1e4() {
    let g = ops_gpu();
    let scenario = PagedScenario::new();
    let mut random = Random::new(42);
    for heads in [(4, 1, 64), (8, 2, 128)] {
        // |q·k| * scale reaches about 1e4. A score near 1e4 carries an f32 rounding of
        // about 1e-3, which moves the weight of a key close to the best by as much: the
        // bound is on that (on 4e-3 for the tensor-core kernel's 22-bit queries).
        let q_scale = 3e4 * (heads.2 as f32 / 64.0).sqrt().recip();
        AttentionCase::new(heads, q_scale, 1e-3, KvType::F16)
            .with_split_query_tolerance(4e-3)
            .check(&g, &scenario, &mut random, "attention ±1e4");
    }
    assert_all_freed(&g.device);
}

/// A sliding window: each query sees only its last `window` positions, in both kernels
/// (head_dim 128: one token a block; 320: tiled), with windows of one position, shorter
/// than a block of keys, and longer than most sequences.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn paged_attention_keeps_to_a_sliding_window() {
    let g = ops_gpu();
    let scenario = PagedScenario::new();
    let mut random = Random::new(44);
    for (heads, window) in [
        ((6, 2, 128), 1),
        ((6, 2, 128), 37),
        ((6, 2, 128), 600),
        ((4, 2, 320), 100),
    ] {
        AttentionCase::new(heads, 4.0, 1e-5, KvType::F16)
            .with_window(window)
            .check(&g, &scenario, &mut random, &format!("window {window}"));
    }
    assert_all_freed(&g.device);
}

/// F32 and Q8_0 caches, read as stored: the one-token-a-block kernel exactly as F16's
/// (errors of order 1e-7); the tiled kernel (head_dim 320) stages its tiles in f16, so
/// its values carry an f16 rounding (relative 5e-4 of values below 1).
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn paged_attention_reads_f32_and_q8_0_caches() {
    let g = ops_gpu();
    let scenario = PagedScenario::new();
    let mut random = Random::new(43);
    for kv_type in [KvType::F32, KvType::Q8_0] {
        for (heads, tolerance) in [
            ((4, 4, 64), 1e-5),
            ((6, 2, 128), 1e-5),
            ((4, 2, 256), 1e-5),
            ((4, 2, 320), 2e-3),
        ] {
            AttentionCase::new(heads, 4.0, tolerance, kv_type).check(
                &g,
                &scenario,
                &mut random,
                "attention",
            );
        }
    }
    assert_all_freed(&g.device);
}

// ------------------------------------------------------------------ validation

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn launchers_reject_bad_shapes_before_launching() {
    let g = ops_gpu();
    let invalid = |result: rocmforge::Result<()>| {
        assert!(
            matches!(result, Err(Error::InvalidArgument(_))),
            "{result:?}"
        );
    };
    let bytes = g.upload(&[0u8; 18 * 4]);
    let x = g.upload(&[0.0f32; 64]);
    let mut y = g.upload(&[0.0f32; 3]);
    // A matrix larger than its buffer, a row that is not whole blocks.
    assert!(DeviceMatrix::new(GgmlType::Q4_0, &bytes, 5, 32).is_err());
    assert!(DeviceMatrix::new(GgmlType::Q4_0, &bytes, 1, 48).is_err());
    let matrix = DeviceMatrix::new(GgmlType::Q4_0, &bytes, 4, 32).unwrap();
    // Output of 3 floats for 4 rows; input of 64 floats for 3 tokens of 32.
    invalid(g.ops.matvec(&g.stream, &matrix, &x, 1, &mut y));
    let mut y4 = g.upload(&[0.0f32; 12]);
    invalid(g.ops.matvec(&g.stream, &matrix, &x, 3, &mut y4));
    let unsupported = DeviceMatrix {
        dtype: GgmlType::Iq2Xxs,
        layout: BlockLayout::Gguf,
        data: &bytes,
        n_rows: 1,
        n_cols: 256,
    };
    assert!(
        g.ops
            .matvec(&g.stream, &unsupported, &x, 1, &mut y4)
            .is_err()
    );
    // RoPE over an odd rope_dims; argmax over nothing.
    let heads = HeadShape {
        n_head: 2,
        n_kv_heads: 1,
        head_dim: 16,
    };
    let (mut q, mut k, v) = (
        g.upload(&[0.0f32; 32]),
        g.upload(&[0.0f32; 16]),
        g.upload(&[0.0f32; 16]),
    );
    let (pos, slot) = (g.upload(&[0i32]), g.upload(&[0u32]));
    let (mut kc, mut vc) = (g.upload(&[0u8; 32]), g.upload(&[0u8; 32]));
    let rope = RopeParams {
        style: RopeStyle::Normal,
        base: 10_000.0,
        rope_dims: 7,
    };
    let buffers = RopeKvWrite {
        q: &mut q,
        k: &mut k,
        v: &v,
        pos: &pos,
        write_slot: &slot,
        k_cache: &mut kc,
        v_cache: &mut vc,
        kv_type: KvType::F16,
    };
    invalid(g.ops.rope_kv_write(&g.stream, &rope, &heads, 1, buffers));
    let mut best = poisoned_mapped(&g, 1);
    let mut scratch = ArgmaxScratch::new(&g.device, 2, 1).unwrap();
    invalid(g.ops.argmax(&g.stream, &x, 1, 0, &mut scratch, &mut best));
    invalid(g.ops.argmax(&g.stream, &x, 2, 1, &mut scratch, &mut best));
    // Scratch for fewer rows, or a narrower vocabulary (fewer chunks), than the call's.
    let mut no_rows = ArgmaxScratch::new(&g.device, 0, 1).unwrap();
    invalid(g.ops.argmax(&g.stream, &x, 1, 1, &mut no_rows, &mut best));
    let wide = g.upload(&vec![0.0f32; 5000]);
    let mut narrow = ArgmaxScratch::new(&g.device, 1, 16).unwrap();
    invalid(
        g.ops
            .argmax(&g.stream, &wide, 1, 5000, &mut narrow, &mut best),
    );
    // Heads that do not group.
    let bad_heads = HeadShape {
        n_head: 3,
        n_kv_heads: 2,
        head_dim: 16,
    };
    assert!(AttentionWorkspace::new(&g.device, &bad_heads, 1, 16, 16).is_err());
    // The F16 norm's buffers: 3 norm weights or outputs for 4 rows, a stream of 16 values
    // for rows of 32.
    let f16_bytes = g.upload(&[0u8; 4 * 32 * 2]);
    let f16 = DeviceMatrix::new(GgmlType::F16, &f16_bytes, 4, 32).unwrap();
    let (weights3, weights4) = (g.upload(&[1.0f32; 3]), g.upload(&[1.0f32; 4]));
    let (mut out3, mut out4) = (g.upload(&[0.0f32; 3]), g.upload(&[0.0f32; 4]));
    let prepare = |weights, out: &mut _, y: &mut _| {
        g.ops
            .matvec1_f16_add_norm(&g.stream, &f16, &x, y, weights, out)
    };
    invalid(prepare(&weights3, &mut out4, &mut y4));
    invalid(prepare(&weights4, &mut out3, &mut y4));
    let short_stream = g.upload(&[1.0f32; 16]);
    let norm = StreamNorm {
        stream: &short_stream,
        eps: 1e-5,
    };
    let store = ProductOutput::Store;
    invalid(
        g.ops
            .matvec1_f16(&g.stream, None, &f16, None, &x, Some(norm), &mut y4, store),
    );
    g.stream.synchronize().unwrap();
    drop((f16_bytes, weights3, weights4, out3, out4, short_stream));
    drop((bytes, x, y, y4, q, k, v, pos, slot, kc, vc, best));
    drop((scratch, no_rows, wide, narrow));
    assert_all_freed(&g.device);
}
