//! The CPU matmul on synthetic weights of every supported type: against the f64 oracle at
//! every SIMD level this CPU has, SIMD against the scalar reference, over odd shapes, thread
//! counts and batch sizes, and its argument checks.

#[path = "cpu_matmul/oracle.rs"]
mod oracle;

use oracle::{
    Activations, Rng, SUPPORTED, activations_for, assert_close, expected, random_activations,
    random_weights, relative_rms_error,
};
use rocmforge::Error;
use rocmforge::backend::cpu::{CpuMatmul, SimdLevel};
use rocmforge::tensor::GgmlType;
use rocmforge::tensor::WeightMatrix;

/// Float rounding allowed, relative to the sum of the magnitudes of an output's terms: the
/// kernels add a few hundred f32 terms at most in these tests.
const ROUNDING: f64 = 2e-5;

/// Every SIMD level this CPU runs, the scalar reference first.
fn levels() -> Vec<SimdLevel> {
    let mut levels = vec![SimdLevel::Scalar];
    if SimdLevel::detect() != SimdLevel::Scalar {
        levels.push(SimdLevel::detect());
    } else {
        eprintln!("no SIMD level on this CPU: only the scalar kernels are tested");
    }
    levels
}

/// Row lengths that cover one block, a few blocks and a model-sized row.
fn column_counts(dtype: GgmlType) -> &'static [usize] {
    match (activations_for(dtype), dtype.block_size()) {
        (Activations::Float, _) => &[1, 7, 8, 40, 576],
        (_, 32) => &[32, 96, 576],
        _ => &[256, 768],
    }
}

fn run(matmul: &CpuMatmul, w: &WeightMatrix<'_>, x: &[f32], n_tokens: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; n_tokens * w.n_rows];
    matmul.matmul(w, x, n_tokens, &mut y).expect("matmul");
    y
}

#[test]
fn every_type_matches_the_oracle_at_every_simd_level() {
    let mut rng = Rng(1);
    let matmuls: Vec<CpuMatmul> = levels()
        .into_iter()
        .map(|simd| CpuMatmul::with_simd(2, simd).unwrap())
        .collect();
    for dtype in SUPPORTED {
        for &n_cols in column_counts(dtype) {
            for (n_rows, n_tokens) in [(1, 1), (3, 2), (17, 3), (67, 7), (130, 1), (33, 64)] {
                let data = random_weights(dtype, n_rows, n_cols, &mut rng);
                let w = WeightMatrix::new(dtype, &data, n_rows, n_cols).unwrap();
                let x = random_activations(n_tokens * n_cols, &mut rng);
                let want = expected(&w, &x, n_tokens);
                for matmul in &matmuls {
                    let context = format!(
                        "{dtype} {n_rows}x{n_cols}, {n_tokens} tokens, {}",
                        matmul.simd()
                    );
                    assert_close(&run(matmul, &w, &x, n_tokens), &want, ROUNDING, &context);
                }
            }
        }
    }
}

#[test]
fn simd_kernels_match_the_scalar_reference() {
    let simd = SimdLevel::detect();
    if simd == SimdLevel::Scalar {
        eprintln!("no SIMD level on this CPU: nothing to compare");
        return;
    }
    let scalar = CpuMatmul::with_simd(1, SimdLevel::Scalar).unwrap();
    let fast = CpuMatmul::with_simd(1, simd).unwrap();
    let mut rng = Rng(2);
    for dtype in SUPPORTED {
        let n_cols = *column_counts(dtype).last().unwrap();
        let (n_rows, n_tokens) = (45, 9);
        let data = random_weights(dtype, n_rows, n_cols, &mut rng);
        let w = WeightMatrix::new(dtype, &data, n_rows, n_cols).unwrap();
        let x = random_activations(n_tokens * n_cols, &mut rng);
        // Both compute the same integer sums from the same activations; only the order of
        // the f32 additions may differ.
        let mut reference = expected(&w, &x, n_tokens);
        reference.y = run(&scalar, &w, &x, n_tokens)
            .into_iter()
            .map(f64::from)
            .collect();
        assert_close(
            &run(&fast, &w, &x, n_tokens),
            &reference,
            ROUNDING,
            &format!("{dtype}"),
        );
    }
}

#[test]
fn results_do_not_depend_on_threads_or_batch_size() {
    let mut rng = Rng(3);
    let (n_rows, n_tokens) = (150, 11);
    for dtype in [
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
        GgmlType::F16,
    ] {
        let n_cols = *column_counts(dtype).last().unwrap();
        let data = random_weights(dtype, n_rows, n_cols, &mut rng);
        let w = WeightMatrix::new(dtype, &data, n_rows, n_cols).unwrap();
        let x = random_activations(n_tokens * n_cols, &mut rng);
        for simd in levels() {
            let one_thread = CpuMatmul::with_simd(1, simd).unwrap();
            let batch = run(&one_thread, &w, &x, n_tokens);
            for n_threads in [2, 3, 7] {
                let matmul = CpuMatmul::with_simd(n_threads, simd).unwrap();
                let threaded = run(&matmul, &w, &x, n_tokens);
                assert!(
                    batch
                        .iter()
                        .zip(&threaded)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype} {simd}: {n_threads} threads differ from 1"
                );
            }
            // Each token alone (decode) gives the bits it got in the batch (prefill).
            for (t, batch_row) in batch.chunks_exact(n_rows).enumerate() {
                let token = &x[t * n_cols..][..n_cols];
                let alone = run(&one_thread, &w, token, 1);
                assert!(
                    batch_row
                        .iter()
                        .zip(&alone)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype} {simd}: token {t} alone differs from the batch"
                );
            }
        }
    }
}

#[test]
fn quantized_activations_cost_little_accuracy() {
    let mut rng = Rng(4);
    let matmul = CpuMatmul::new(2).unwrap();
    let (n_rows, n_cols, n_tokens) = (64, 1024, 4);
    for dtype in [
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q5_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
    ] {
        let data = random_weights(dtype, n_rows, n_cols, &mut rng);
        let w = WeightMatrix::new(dtype, &data, n_rows, n_cols).unwrap();
        let x = random_activations(n_tokens * n_cols, &mut rng);
        let error =
            relative_rms_error(&run(&matmul, &w, &x, n_tokens), &expected(&w, &x, n_tokens));
        // 8-bit activations: each is off by up to half a step, 1/254 of its block's
        // largest, and the outliers of `random_activations` make that step coarse for the
        // rest of their block (of 256 for the K-quants: 2.6% here, 1.2% for blocks of 32).
        // The oracle tests check the arithmetic; this checks the scheme is sound.
        assert!(error < 4e-2, "{dtype}: relative RMS error {error:.2e}");
    }
}

#[test]
fn large_and_extreme_values_stay_finite_and_close() {
    let mut rng = Rng(5);
    let matmul = CpuMatmul::new(2).unwrap();
    let (n_rows, n_cols) = (8, 512);
    // Zero blocks, tiny and huge activations in one row.
    let mut x = random_activations(n_cols, &mut rng);
    x[..32].fill(0.0);
    x[32..64].iter_mut().for_each(|v| *v *= 1e-6);
    x[256..288].iter_mut().for_each(|v| *v *= 1e4);
    for dtype in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K] {
        let data = random_weights(dtype, n_rows, n_cols, &mut rng);
        let w = WeightMatrix::new(dtype, &data, n_rows, n_cols).unwrap();
        let y = run(&matmul, &w, &x, 1);
        assert!(y.iter().all(|v| v.is_finite()), "{dtype}: {y:?}");
        assert_close(&y, &expected(&w, &x, 1), ROUNDING, &format!("{dtype}"));
    }
}

#[test]
fn zero_tokens_is_a_no_op() {
    let matmul = CpuMatmul::new(2).unwrap();
    let data = [0_u8; 20];
    let w = WeightMatrix::new(GgmlType::Q4_1, &data, 1, 32).unwrap();
    assert!(matmul.matmul(&w, &[], 0, &mut []).is_ok());
}

#[test]
fn wrong_lengths_are_rejected() {
    let matmul = CpuMatmul::new(2).unwrap();
    let data = [0_u8; 2 * 20];
    let w = WeightMatrix::new(GgmlType::Q4_1, &data, 2, 32).unwrap();
    let mut y = [0.0; 2];
    let err = matmul.matmul(&w, &[0.0; 31], 1, &mut y).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("x holds 31")),
        "{err}"
    );
    let err = matmul.matmul(&w, &[0.0; 32], 1, &mut [0.0; 3]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("y holds 3")),
        "{err}"
    );
    let err = matmul
        .matmul(&w, &[0.0; 32], usize::MAX, &mut y)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");

    // The fields are public: a matrix built by hand is checked again.
    let bad = WeightMatrix { n_cols: 64, ..w };
    let err = matmul.matmul(&bad, &[0.0; 64], 1, &mut y).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn types_without_a_kernel_are_unsupported() {
    let matmul = CpuMatmul::new(1).unwrap();
    let data = [0_u8; 66];
    let w = WeightMatrix::new(GgmlType::Iq2Xxs, &data, 1, 256).unwrap();
    let err = matmul.matmul(&w, &[0.0; 256], 1, &mut [0.0]).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported(m) if m.contains("IQ2_XXS")),
        "{err}"
    );
}

#[test]
fn construction_checks_its_arguments() {
    assert!(matches!(CpuMatmul::new(0), Err(Error::InvalidArgument(_))));
    let matmul = CpuMatmul::with_simd(3, SimdLevel::Scalar).unwrap();
    assert_eq!((matmul.n_threads(), matmul.simd()), (3, SimdLevel::Scalar));
    if !SimdLevel::Avx2.is_supported() {
        assert!(matches!(
            CpuMatmul::with_simd(1, SimdLevel::Avx2),
            Err(Error::Unsupported(_))
        ));
    }
}

#[test]
fn run_parallel_covers_every_task() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let matmul = CpuMatmul::new(2).unwrap();
    let sum = AtomicU64::new(0);
    matmul.run_parallel(1000, &|i| {
        sum.fetch_add(i as u64, Ordering::Relaxed);
    });
    assert_eq!(sum.into_inner(), 999 * 1000 / 2);
}
