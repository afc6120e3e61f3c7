//! Split rows (`BlockLayout::SplitRows`, `kernels/split_rows.hip`) on a real device: the
//! split writes the documented layout, and every kernel that reads weights (embedding,
//! f16 dequantization, the f32 and the integer products in each of their modes, a leading
//! matrix) gives bit for bit what it gives on the same matrix in the GGUF layout, whose
//! kernels `gpu_ops.rs` holds to the CPU references. Ignored unless asked for (see
//! gpu_common).

mod gpu_common;

use gpu_common::{DeviceIo, OpsGpu, assert_all_freed, ops_gpu};
use half::f16;
use rocmforge::Error;
use rocmforge::backend::gpu::ops::{
    AddNormInput, BlockLayout, DeviceMatrix, LeadingMatrix, ProductInput, ProductOutput, Q8Buffers,
    SecondMatrix, UnscaledNorm,
};
use rocmforge::backend::gpu::{DeviceBuffer, DeviceCopy};
use rocmforge::gguf::synthetic::{SplitMix64, random_weights};
use rocmforge::tensor::GgmlType;

const SPLIT_TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
];

/// Rows of 3 runs of 256 (fewer groups than a warp has lanes), of 17 runs (a partial last
/// pass), and the 8B class's widest (14,336: 448 groups, 14 a lane). Q6_K's first two
/// are padded to 16 bytes (630 and 3,570 bytes of blocks), the widest not (11,760).
const SHAPES: [(usize, usize); 3] = [(67, 768), (129, 4352), (33, 14336)];

/// Rows of the residual products that prepare the next norm (a multiple of 32).
const NORM_ROWS: usize = 64;

/// The layout the kernels document (`kernels/ggml_blocks.h`, "split rows"), built on the
/// host: each row's quants, then its scales, then zeros up to `stride`.
fn split_on_host(dtype: GgmlType, gguf: &[u8], row_bytes: usize, stride: usize) -> Vec<u8> {
    let block = dtype.block_bytes() as usize;
    gguf.chunks_exact(row_bytes)
        .flat_map(|row| {
            let blocks = row.chunks_exact(block);
            let parts: Vec<Vec<u8>> = match dtype {
                GgmlType::Q4K => vec![
                    blocks.clone().flat_map(q4_k_groups).collect(),
                    blocks.flat_map(|b| b[..16].to_vec()).collect(),
                ],
                GgmlType::Q6K => {
                    let groups: Vec<_> = blocks.clone().flat_map(q6_k_groups).collect();
                    vec![
                        groups.iter().flat_map(|g| g.low).collect(),
                        groups.iter().flat_map(|g| g.high).collect(),
                        groups.iter().flat_map(|g| g.scales).collect(),
                        blocks.flat_map(|b| b[208..].to_vec()).collect(),
                    ]
                }
                _ => {
                    let head = if dtype == GgmlType::Q4_1 { 4 } else { 2 };
                    // Q4_0's nibbles are stored as the signed q - 8: top bit flipped.
                    let flip = if dtype == GgmlType::Q4_0 { 0x88 } else { 0 };
                    vec![
                        blocks
                            .clone()
                            .flat_map(|b| b[head..].iter().map(|q| q ^ flip))
                            .collect(),
                        blocks.flat_map(|b| b[..head].to_vec()).collect(),
                    ]
                }
            };
            let mut split = parts.concat();
            split.resize(stride, 0);
            split
        })
        .collect()
}

/// 32 4-bit values as the 32-value formats keep them: byte k holds value k in its low
/// nibble and value k + 16 in its high one.
fn nibble_bytes(value: impl Fn(usize) -> u8) -> [u8; 16] {
    std::array::from_fn(|k| value(k) | (value(k + 16) << 4))
}

/// A Q4_K block's eight groups' quants (group i: nibble i % 2 of bytes 32 (i / 2) ..).
fn q4_k_groups(block: &[u8]) -> Vec<u8> {
    (0..8)
        .flat_map(|i| {
            let qs = &block[16 + 32 * (i / 2)..];
            nibble_bytes(|v| (qs[v] >> (4 * (i % 2))) & 0x0F)
        })
        .collect()
}

/// One Q6_K group split: its low 4 bits, high 2 bits and two scales.
struct Q6kGroup {
    low: [u8; 16],
    /// Byte 4 j + b holds at bits 2 k the high bits of value 16 j + 4 k + b.
    high: [u8; 8],
    scales: [u8; 2],
}

/// A Q6_K block's eight groups (group i: quarter i % 4 of half i / 4).
fn q6_k_groups(block: &[u8]) -> Vec<Q6kGroup> {
    (0..8)
        .map(|i| {
            let (half, quarter) = (i / 4, i % 4);
            let ql = &block[64 * half + 32 * (quarter % 2)..];
            let qh = &block[128 + 32 * half..];
            let high_bits = |v: usize| (qh[v] >> (2 * quarter)) & 3;
            Q6kGroup {
                low: nibble_bytes(|v| (ql[v] >> (4 * (quarter / 2))) & 0x0F),
                high: std::array::from_fn(|byte| {
                    let (j, b) = (byte / 4, byte % 4);
                    (0..4).fold(0, |bits, k| {
                        bits | (high_bits(16 * j + 4 * k + b) << (2 * k))
                    })
                }),
                scales: [block[192 + 2 * i], block[193 + 2 * i]],
            }
        })
        .collect()
}

/// The same random matrix on the device in both layouts.
struct Pair {
    gguf: DeviceBuffer<u8>,
    split: DeviceBuffer<u8>,
    dtype: GgmlType,
    n_rows: usize,
    n_cols: usize,
}

impl Pair {
    fn new(
        g: &OpsGpu,
        rng: &mut SplitMix64,
        dtype: GgmlType,
        n_rows: usize,
        n_cols: usize,
    ) -> Pair {
        let bytes = random_weights(dtype, (n_rows * n_cols) as u64, 0.05, rng).unwrap();
        let gguf = g.upload(&bytes);
        let layout = BlockLayout::SplitRows;
        let mut split = g.upload(&layout.rows_at_stride(dtype, n_cols, &bytes).unwrap());
        g.ops
            .split_rows(&g.stream, dtype, &mut split, n_rows, n_cols)
            .unwrap();
        let row_bytes = bytes.len() / n_rows;
        let stride = layout.row_stride(dtype, n_cols).unwrap() as usize;
        assert!(
            g.download(&split) == split_on_host(dtype, &bytes, row_bytes, stride),
            "{dtype} {n_rows}x{n_cols}: the split rows are not the documented layout"
        );
        Pair {
            gguf,
            split,
            dtype,
            n_rows,
            n_cols,
        }
    }

    /// Both layouts' matrices: GGUF first.
    fn matrices(&self) -> [DeviceMatrix<'_>; 2] {
        [
            (BlockLayout::Gguf, &self.gguf),
            (BlockLayout::SplitRows, &self.split),
        ]
        .map(|(layout, data)| {
            DeviceMatrix::with_layout(self.dtype, layout, data, self.n_rows, self.n_cols).unwrap()
        })
    }
}

fn bits<T: DeviceCopy + Into<f64>>(g: &OpsGpu, buffer: &DeviceBuffer<T>) -> Vec<u64> {
    g.download(buffer)
        .into_iter()
        .map(|v| Into::<f64>::into(v).to_bits())
        .collect()
}

/// `run(matrix, output)` for both layouts of `pair`, each into a fresh poisoned output of
/// `len`; asserts the outputs are equal to the bit.
fn assert_same_in_both_layouts<T>(
    g: &OpsGpu,
    pair: &Pair,
    len: usize,
    what: &str,
    mut run: impl FnMut(&DeviceMatrix<'_>, &mut DeviceBuffer<T>),
) where
    T: DeviceCopy + Into<f64>,
{
    let [gguf, split] = pair.matrices().map(|m| {
        let mut out = g.poisoned::<T>(len);
        run(&m, &mut out);
        bits(g, &out)
    });
    assert!(
        gguf == split,
        "{what} of {} {}x{}: the split rows give other bits than the GGUF rows",
        pair.dtype,
        pair.n_rows,
        pair.n_cols
    );
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn split_rows_read_bit_for_bit_as_their_gguf_rows_in_every_kernel() {
    let g = ops_gpu();
    let mut rng = SplitMix64(41);
    for dtype in SPLIT_TYPES {
        for (n_rows, n_cols) in SHAPES {
            let pair = Pair::new(&g, &mut rng, dtype, n_rows, n_cols);
            let tokens = g.upload(&[3i32, 0, (n_rows - 1) as i32, -1, 3]);
            assert_same_in_both_layouts::<f32>(&g, &pair, 5 * n_cols, "embedding", |m, x| {
                g.ops.embedding(&g.stream, m, &tokens, 5, x).unwrap()
            });
            assert_same_in_both_layouts::<f16>(&g, &pair, 9 * n_cols, "dequantize_f16", |m, o| {
                g.ops.dequantize_f16(&g.stream, m, 2, 9, o).unwrap()
            });
            let n_tokens = 3;
            let x: Vec<f32> = (0..n_tokens * n_cols)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0)
                .collect();
            let x_dev = g.upload(&x);
            let out_len = n_tokens * n_rows + 5;
            assert_same_in_both_layouts::<f32>(&g, &pair, out_len, "matvec", |m, y| {
                g.ops.matvec(&g.stream, m, &x_dev, n_tokens, y).unwrap()
            });
            let mut q8 = Q8Buffers::new(&g.device, x.len()).unwrap();
            g.ops
                .quantize_q8(&g.stream, &x_dev, x.len(), &mut q8)
                .unwrap();
            // Add's residual stream starts from known values.
            let residual: Vec<f32> = (0..out_len).map(|i| (i % 13) as f32 - 6.0).collect();
            let residual = g.upload(&residual);
            for tokens in [1, n_tokens] {
                for mode in [ProductOutput::Store, ProductOutput::Add] {
                    let what = format!("matvec_q8 {mode:?} x{tokens}");
                    assert_same_in_both_layouts::<f32>(&g, &pair, out_len, &what, |m, y| {
                        if mode == ProductOutput::Add {
                            y.copy_from_device(&g.stream, &residual).unwrap();
                        }
                        g.ops
                            .matvec_q8(&g.stream, m, None, &q8, tokens, y, mode)
                            .unwrap()
                    });
                }
                // The same matrix as its own second, and as its own leading matrix.
                let what = format!("matvec_q8 Swiglu x{tokens}");
                assert_same_in_both_layouts::<f32>(&g, &pair, out_len, &what, |m, y| {
                    let second = SecondMatrix { w: m, y: None };
                    let swiglu = ProductOutput::Swiglu;
                    g.ops
                        .matvec_q8(&g.stream, m, Some(second), &q8, tokens, y, swiglu)
                        .unwrap()
                });
                let what = format!("fused_matvec with a leading matrix x{tokens}");
                assert_same_in_both_layouts::<f32>(&g, &pair, 2 * out_len, &what, |m, y| {
                    let mut lead_y = g.poisoned::<f32>(out_len);
                    let lead = LeadingMatrix {
                        w: m,
                        y: &mut lead_y,
                    };
                    g.ops
                        .fused_matvec(
                            &g.stream,
                            ProductInput::Q8(&q8, None),
                            Some(lead),
                            m,
                            None,
                            tokens,
                            y,
                            ProductOutput::Store,
                        )
                        .unwrap();
                    y.copy_range_from(&g.stream, &lead_y, 0, out_len, out_len)
                        .unwrap();
                });
            }
            // The residual product that prepares the next norm (a block for each 32 rows, its
            // launch bound leaving the split types a batch of their own), from Q8 and, where
            // the blocks quantize it themselves, from f32 input.
            let norm_pair = Pair::new(&g, &mut rng, dtype, NORM_ROWS, n_cols);
            let norm_w = g.upload(&vec![1.25f32; NORM_ROWS]);
            let stream: Vec<f32> = (0..NORM_ROWS).map(|i| (i % 7) as f32 - 3.0).collect();
            let stream = g.upload(&stream);
            for f32_input in [false, true] {
                let what = format!("matvec_q8_add_norm, f32 input {f32_input}");
                let m = &norm_pair.matrices()[0];
                if f32_input && !g.ops.add_norm_stages_f32(m) {
                    continue;
                }
                assert_same_in_both_layouts::<f32>(&g, &norm_pair, NORM_ROWS, &what, |m, y| {
                    y.copy_from_device(&g.stream, &stream).unwrap();
                    let input = match f32_input {
                        true => AddNormInput::F32(&x_dev),
                        false => AddNormInput::Q8(&q8),
                    };
                    let mut unscaled = UnscaledNorm::new(&g.device, NORM_ROWS).unwrap();
                    g.ops
                        .matvec_q8_add_norm(&g.stream, m, input, y, &norm_w, &mut unscaled)
                        .unwrap();
                });
            }
        }
    }
    assert_all_freed(&g.device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn rows_that_cannot_split_are_refused_and_left_as_they_were() {
    let g = ops_gpu();
    let mut rng = SplitMix64(42);
    for (dtype, n_rows, n_cols) in [
        // Not whole runs of 256 values.
        (GgmlType::Q4_0, 4, 480),
        // A type without split rows.
        (GgmlType::Q5K, 4, 768),
        // Longer than the 32 KiB the kernel stages.
        (GgmlType::Q8_0, 2, 32768),
    ] {
        let bytes = random_weights(dtype, (n_rows * n_cols) as u64, 0.05, &mut rng).unwrap();
        let mut data = g.upload(&bytes);
        let result = g
            .ops
            .split_rows(&g.stream, dtype, &mut data, n_rows, n_cols);
        assert!(
            matches!(result, Err(Error::InvalidArgument(_))),
            "{dtype} {n_rows}x{n_cols}: {result:?}"
        );
        assert_eq!(
            BlockLayout::for_upload(dtype, n_cols),
            BlockLayout::Gguf,
            "{dtype} {n_rows}x{n_cols}"
        );
        assert!(g.download(&data) == bytes, "{dtype}: refused, yet changed");
    }
    assert_all_freed(&g.device);
}
