//! `matmul_many` (one dispatch for several matrices sharing an input) gives exactly what
//! separate `matmul` calls give, and refuses matrices of different types or widths.

mod common;

use half::f16;
use rocmforge::backend::cpu::CpuMatmul;
use rocmforge::gguf::synthetic::SplitMix64;
use rocmforge::tensor::GgmlType;
use rocmforge::tensor::WeightMatrix;

/// Q4_1 rows with sane scales: random quants, d = 0.01, m = -0.05.
fn q4_1_rows(n_rows: usize, n_cols: usize, rng: &mut SplitMix64) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..n_rows * n_cols / 32 {
        bytes.extend(f16::from_f32(0.01).to_le_bytes());
        bytes.extend(f16::from_f32(-0.05).to_le_bytes());
        bytes.extend((0..16).map(|_| rng.next_u64() as u8));
    }
    bytes
}

#[test]
fn one_dispatch_equals_separate_calls() {
    let mut rng = SplitMix64(3);
    let n_cols = 96;
    let shapes = [37usize, 5, 64];
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|&r| q4_1_rows(r, n_cols, &mut rng))
        .collect();
    let ws: Vec<WeightMatrix> = shapes
        .iter()
        .zip(&data)
        .map(|(&r, d)| WeightMatrix::new(GgmlType::Q4_1, d, r, n_cols).unwrap())
        .collect();
    for n_tokens in [1usize, 3, 9] {
        let x: Vec<f32> = (0..n_tokens * n_cols)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        for threads in [1, 2, 3] {
            let matmul = CpuMatmul::new(threads).unwrap();
            let mut together: Vec<Vec<f32>> =
                shapes.iter().map(|&r| vec![0.0; r * n_tokens]).collect();
            let mut outputs: Vec<&mut [f32]> = together.iter_mut().map(Vec::as_mut_slice).collect();
            matmul.matmul_many(&ws, &x, n_tokens, &mut outputs).unwrap();
            for (w, got) in ws.iter().zip(&together) {
                let mut alone = vec![0.0; w.n_rows * n_tokens];
                matmul.matmul(w, &x, n_tokens, &mut alone).unwrap();
                assert_eq!(&alone, got, "{n_tokens} tokens, {threads} threads");
            }
        }
    }
}

#[test]
fn matrices_of_different_types_or_widths_are_refused() {
    let mut rng = SplitMix64(4);
    let a = q4_1_rows(4, 64, &mut rng);
    let b = q4_1_rows(4, 32, &mut rng);
    let f = vec![0u8; 4 * 64 * 4];
    let matmul = CpuMatmul::new(1).unwrap();
    let x = vec![0.5f32; 64];
    let (mut y1, mut y2) = (vec![0.0; 4], vec![0.0; 4]);
    let wide = WeightMatrix::new(GgmlType::Q4_1, &a, 4, 64).unwrap();
    let narrow = WeightMatrix::new(GgmlType::Q4_1, &b, 4, 32).unwrap();
    let float = WeightMatrix::new(GgmlType::F32, &f, 4, 64).unwrap();
    for other in [narrow, float] {
        let result = matmul.matmul_many(&[wide, other], &x, 1, &mut [&mut y1, &mut y2]);
        assert!(matches!(result, Err(rocmforge::Error::InvalidArgument(_))));
    }
    let result = matmul.matmul_many(&[wide], &x, 1, &mut [&mut y1, &mut y2]);
    assert!(matches!(result, Err(rocmforge::Error::InvalidArgument(_))));
}
