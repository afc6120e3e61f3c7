//! `rocmforge-matmul-bench [--quick]`: times the CPU matmul on synthetic weights shaped like
//! SmolLM2-135M's (decode matvecs, the output head, prefill) with 1 and 2 threads, plus the
//! thread pool's dispatch overhead and a whole decode step's matmuls.
//!
//! Decode is memory-bound, so it is timed twice: on one matrix called again and again (it
//! stays in cache) and on enough copies of it to stream from DRAM, as a real forward pass
//! does with its ~100 MB of weights. Times are the best of a few rounds' medians (see
//! `median_time`); GB/s count weight bytes only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use half::f16;
use rocmforge::backend::cpu::CpuMatmul;
use rocmforge::tensor::GgmlType;
use rocmforge::tensor::WeightMatrix;

/// Rounds a case's time budget is split into (see [`median_time`]).
const ROUNDS: u32 = 5;

/// Bytes of weight copies a streaming measurement cycles through: well past the L3 cache.
const STREAM_BYTES: usize = 256 << 20;

/// SmolLM2-135M: 30 layers, 576 embedding, 1536 FFN, 9 heads and 3 KV heads of 64, 49152
/// tokens; every matrix Q4_1 but the output head (the Q8_0 token embedding).
const N_LAYERS: usize = 30;
const N_EMBD: usize = 576;
const N_FF: usize = 1536;
const N_KV: usize = 192;
const N_VOCAB: usize = 49152;

struct Matrix {
    dtype: GgmlType,
    n_rows: usize,
    n_cols: usize,
    data: Vec<u8>,
}

impl Matrix {
    fn random(dtype: GgmlType, n_rows: usize, n_cols: usize, seed: u64) -> Matrix {
        Matrix {
            dtype,
            n_rows,
            n_cols,
            data: random_weights(dtype, n_rows * n_cols, seed),
        }
    }

    fn view(&self) -> WeightMatrix<'_> {
        WeightMatrix::new(self.dtype, &self.data, self.n_rows, self.n_cols)
            .expect("synthetic matrix is well-formed")
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 200 } else { 1500 });
    let matmuls: Vec<CpuMatmul> = [1, 2]
        .into_iter()
        .map(|n| CpuMatmul::new(n).expect("thread pool starts"))
        .collect();
    println!(
        "CPU matmul, {} kernels, best of {ROUNDS} rounds' median time per call ({} per case)\n",
        matmuls[0].simd(),
        if quick { "quick" } else { "1.5 s" }
    );

    println!("dispatch overhead (run_parallel of empty tasks, one per thread):");
    for matmul in &matmuls {
        let n = matmul.n_threads();
        let time = median_time(budget, || matmul.run_parallel(n, &|_| {}));
        println!("  {n} thread(s): {:>8.2} us", micros(time));
    }

    println!("\ndecode: one token, y = W x");
    println!(
        "  {:<28} {:>7} {:>10} {:>9} {:>10} {:>9}",
        "matrix", "threads", "cached us", "GB/s", "stream us", "GB/s"
    );
    let decode_cases = [
        ("Q4_1 576 -> 1536 (ffn_up)", GgmlType::Q4_1, N_FF, N_EMBD),
        ("Q4_1 1536 -> 576 (ffn_down)", GgmlType::Q4_1, N_EMBD, N_FF),
        (
            "Q8_0 576 -> 49152 (output)",
            GgmlType::Q8_0,
            N_VOCAB,
            N_EMBD,
        ),
        ("Q4_K 1024 -> 2048", GgmlType::Q4K, 2048, 1024),
        ("Q6_K 2048 -> 1024", GgmlType::Q6K, 1024, 2048),
        ("Q5_0 640 -> 2048", GgmlType::Q5_0, 2048, 640),
        ("F16 576 -> 1536", GgmlType::F16, N_FF, N_EMBD),
    ];
    for (name, dtype, n_rows, n_cols) in decode_cases {
        let copies: Vec<Matrix> = {
            let bytes = Matrix::random(dtype, n_rows, n_cols, 0).data.len();
            let n_copies = STREAM_BYTES.div_ceil(bytes).max(2);
            (0..n_copies as u64)
                .map(|seed| Matrix::random(dtype, n_rows, n_cols, seed))
                .collect()
        };
        let bytes = copies[0].data.len() as f64;
        let x = activations(n_cols, 1);
        let mut y = vec![0.0; n_rows];
        for matmul in &matmuls {
            let w = copies[0].view();
            let cached = median_time(budget, || {
                matmul.matmul(&w, &x, 1, &mut y).expect("matmul");
            });
            let mut next = 0;
            let streamed = median_time(budget, || {
                next = (next + 1) % copies.len();
                let w = copies[next].view();
                matmul.matmul(&w, &x, 1, &mut y).expect("matmul");
            });
            black_box(&y);
            println!(
                "  {:<28} {:>7} {:>10.1} {:>9.1} {:>10.1} {:>9.1}",
                name,
                matmul.n_threads(),
                micros(cached),
                bytes / cached.as_secs_f64() / 1e9,
                micros(streamed),
                bytes / streamed.as_secs_f64() / 1e9,
            );
        }
    }

    println!("\nprefill: 128 tokens, Y = W X");
    println!(
        "  {:<28} {:>7} {:>10} {:>9}",
        "matrix", "threads", "ms", "GFLOP/s"
    );
    let n_tokens = 128;
    let prefill_cases = [
        ("Q4_1 576 -> 1536", GgmlType::Q4_1, N_FF, N_EMBD),
        ("Q4_1 1536 -> 576", GgmlType::Q4_1, N_EMBD, N_FF),
        ("Q8_0 576 -> 1536", GgmlType::Q8_0, N_FF, N_EMBD),
        ("Q4_K 1024 -> 2048", GgmlType::Q4K, 2048, 1024),
        ("Q6_K 2048 -> 1024", GgmlType::Q6K, 1024, 2048),
        ("Q5_0 640 -> 2048", GgmlType::Q5_0, 2048, 640),
        ("F16 576 -> 1536", GgmlType::F16, N_FF, N_EMBD),
    ];
    for (name, dtype, n_rows, n_cols) in prefill_cases {
        let matrix = Matrix::random(dtype, n_rows, n_cols, 0);
        let w = matrix.view();
        let x = activations(n_cols, n_tokens);
        let mut y = vec![0.0; n_rows * n_tokens];
        let flops = 2.0 * (n_rows * n_cols * n_tokens) as f64;
        for matmul in &matmuls {
            let time = median_time(budget, || {
                matmul.matmul(&w, &x, n_tokens, &mut y).expect("matmul");
            });
            println!(
                "  {:<28} {:>7} {:>10.2} {:>9.1}",
                name,
                matmul.n_threads(),
                time.as_secs_f64() * 1e3,
                flops / time.as_secs_f64() / 1e9
            );
        }
    }

    decode_step(&matmuls, budget);
}

/// Every matmul of one SmolLM2-135M decode step, each layer with its own weights (so they
/// stream from DRAM as in a real forward pass), and the output head.
fn decode_step(matmuls: &[CpuMatmul], budget: Duration) {
    let layer_shapes = [
        (N_EMBD, N_EMBD), // attn_q
        (N_KV, N_EMBD),   // attn_k
        (N_KV, N_EMBD),   // attn_v
        (N_EMBD, N_EMBD), // attn_output
        (N_FF, N_EMBD),   // ffn_gate
        (N_FF, N_EMBD),   // ffn_up
        (N_EMBD, N_FF),   // ffn_down
    ];
    let mut matrices: Vec<Matrix> = (0..N_LAYERS)
        .flat_map(|layer| {
            layer_shapes
                .iter()
                .enumerate()
                .map(move |(i, &(n_rows, n_cols))| {
                    Matrix::random(GgmlType::Q4_1, n_rows, n_cols, (layer * 8 + i) as u64)
                })
        })
        .collect();
    matrices.push(Matrix::random(GgmlType::Q8_0, N_VOCAB, N_EMBD, 1000));
    let total_bytes: usize = matrices.iter().map(|m| m.data.len()).sum();
    let x = activations(N_FF, 1);
    let mut y = vec![0.0; N_VOCAB];
    println!(
        "\ndecode step: {} matmuls of SmolLM2-135M, {:.1} MB of weights",
        matrices.len(),
        total_bytes as f64 / 1e6
    );
    for matmul in matmuls {
        let time = median_time(budget, || {
            for m in &matrices {
                let w = m.view();
                let (x, y) = (&x[..m.n_cols], &mut y[..m.n_rows]);
                matmul.matmul(&w, x, 1, y).expect("matmul");
            }
        });
        println!(
            "  {} thread(s): {:>6.2} ms per token ({:.1} GB/s, {:.0} tokens/s if matmuls were all)",
            matmul.n_threads(),
            time.as_secs_f64() * 1e3,
            total_bytes as f64 / time.as_secs_f64() / 1e9,
            1.0 / time.as_secs_f64()
        );
    }
}

/// Runs `f` repeatedly for about `budget` after a warm-up, in rounds, and returns the
/// lowest of the rounds' median times. Development machines are shared: another process
/// taking a core for a while skews a round, and the least disturbed round measures the code.
fn median_time(budget: Duration, mut f: impl FnMut()) -> Duration {
    let warm_up = Instant::now();
    while warm_up.elapsed() < budget / 10 {
        f();
    }
    (0..ROUNDS)
        .map(|_| {
            let mut times = Vec::new();
            let start = Instant::now();
            while start.elapsed() < budget / ROUNDS || times.len() < 3 {
                let t = Instant::now();
                f();
                times.push(t.elapsed());
            }
            times.sort_unstable();
            times[times.len() / 2]
        })
        .min()
        .unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Activations like a normalized hidden state.
fn activations(n_cols: usize, n_tokens: usize) -> Vec<f32> {
    let mut rng = SplitMix(42);
    (0..n_cols * n_tokens).map(|_| rng.symmetric()).collect()
}

/// Random weight bytes with moderate scales (random f16 bits would give infinities).
fn random_weights(dtype: GgmlType, n_values: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix(seed);
    let n_bytes = dtype
        .bytes_for(n_values as u64)
        .expect("whole blocks of a known type") as usize;
    if dtype == GgmlType::F16 {
        return (0..n_values)
            .flat_map(|_| f16::from_f32(rng.symmetric()).to_le_bytes())
            .collect();
    }
    let mut data: Vec<u8> = (0..n_bytes).map(|_| rng.next() as u8).collect();
    let scale_offsets: &[usize] = match dtype {
        GgmlType::Q4_1 | GgmlType::Q4K => &[0, 2],
        GgmlType::Q8_0 | GgmlType::Q5_0 => &[0],
        GgmlType::Q6K => &[208],
        _ => unreachable!("the bench only makes the types it times"),
    };
    for block in data.chunks_exact_mut(dtype.block_bytes() as usize) {
        for &offset in scale_offsets {
            let scale = f16::from_f32(rng.symmetric() * 0.01);
            block[offset..offset + 2].copy_from_slice(&scale.to_le_bytes());
        }
    }
    data
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn symmetric(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}
