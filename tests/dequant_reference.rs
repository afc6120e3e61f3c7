//! The scalar dequantizers against values from gguf-py's dequantizers (which mirror ggml's),
//! compared bit for bit. Fixtures: `tests/fixtures/quant/<TYPE>.json`, each one row of a
//! real tensor (or random blocks) with its raw bytes and the expected f32 values.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rocmforge::Error;
use rocmforge::tensor::{GgmlType, TypeIdLookup, dequantize_row, dequantize_to_vec};
use serde_json::Value;

/// Every fixture the reference set holds: a missing file fails `fixtures_match_bit_for_bit`,
/// a missing or extra one `fixture_directory_holds_exactly_the_listed_files`.
const FIXTURE_TYPES: [&str; 15] = [
    "BF16", "F16", "IQ4_NL", "IQ4_XS", "MXFP4", "Q2_K", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0",
    "Q5_1", "Q5_K", "Q6_K", "Q8_0",
];

const UNSUPPORTED: [GgmlType; 10] = [
    GgmlType::Iq2Xxs,
    GgmlType::Iq2Xs,
    GgmlType::Iq2S,
    GgmlType::Iq3Xxs,
    GgmlType::Iq3S,
    GgmlType::Iq1S,
    GgmlType::Iq1M,
    GgmlType::Tq1_0,
    GgmlType::Tq2_0,
    GgmlType::I64,
];

#[test]
fn fixtures_match_bit_for_bit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant");
    let mut failures = Vec::new();

    for name in FIXTURE_TYPES {
        let path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");

        assert_eq!(fixture["type"], name, "{}", path.display());
        let id = fixture["ggml_type_id"].as_u64().expect("ggml_type_id") as u32;
        let TypeIdLookup::Known(dtype) = GgmlType::from_id(id) else {
            panic!("{name}: type id {id} is not known");
        };
        assert_eq!(dtype.name(), name);

        let n_values = fixture["n_values"].as_u64().expect("n_values") as usize;
        let data = decode_hex(fixture["raw_hex"].as_str().expect("raw_hex"));
        let expected: Vec<f32> = fixture["expected"]
            .as_array()
            .expect("expected")
            .iter()
            // Each is an f32 printed through an f64, so narrowing back is exact.
            .map(|v| v.as_f64().expect("expected value is a number") as f32)
            .collect();
        assert_eq!(expected.len(), n_values, "{name}: expected length");

        let got = dequantize_to_vec(dtype, &data, n_values)
            .unwrap_or_else(|e| panic!("{name}: dequantize failed: {e}"));
        let mismatches: Vec<String> = got
            .iter()
            .zip(&expected)
            .enumerate()
            .filter(|(_, (g, e))| g.to_bits() != e.to_bits())
            .map(|(i, (g, e))| {
                format!(
                    "{name}[{i}]: got {g:e} ({:#010x}), expected {e:e} ({:#010x})",
                    g.to_bits(),
                    e.to_bits()
                )
            })
            .collect();
        if mismatches.is_empty() {
            println!("{name}: {n_values} values bit-exact");
        } else {
            failures.push(format!(
                "{name}: {} of {n_values} values differ",
                mismatches.len()
            ));
            failures.extend(mismatches.into_iter().take(5));
        }
    }

    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn fixture_directory_holds_exactly_the_listed_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|file| file.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, FIXTURE_TYPES);
}

#[test]
fn wrong_lengths_are_invalid_arguments() {
    let cases: [(GgmlType, usize, usize); 6] = [
        (GgmlType::Q4K, 143, 256), // one byte short
        (GgmlType::Q4K, 145, 256), // one byte over
        (GgmlType::Q4K, 144, 255), // not a whole block of values
        (GgmlType::Q8_0, 34, 64),  // two blocks of values, one of bytes
        (GgmlType::F32, 3, 1),     // partial value
        (GgmlType::Mxfp4, 0, 32),  // no data at all
    ];
    for (dtype, n_bytes, n_values) in cases {
        let data = vec![0; n_bytes];
        let mut out = vec![0.0; n_values];
        for err in [
            dequantize_row(dtype, &data, &mut out).unwrap_err(),
            dequantize_to_vec(dtype, &data, n_values).unwrap_err(),
        ] {
            assert!(
                matches!(err, Error::InvalidArgument(_)),
                "{dtype} {n_bytes} bytes {n_values} values: {err}"
            );
        }
    }
}

#[test]
fn types_without_a_dequantizer_are_unsupported() {
    for dtype in UNSUPPORTED {
        let n_values = dtype.block_size() as usize;
        let data = vec![0; dtype.block_bytes() as usize];
        let err = dequantize_to_vec(dtype, &data, n_values).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m.contains(dtype.name())),
            "{dtype}: {err}"
        );
    }
}

#[test]
fn every_other_type_dequantizes() {
    for dtype in GgmlType::ALL
        .into_iter()
        .filter(|t| !UNSUPPORTED.contains(t))
    {
        let n_values = 2 * dtype.block_size() as usize;
        let data = vec![0; 2 * dtype.block_bytes() as usize];
        let mut out = vec![f32::NAN; n_values];
        dequantize_row(dtype, &data, &mut out).unwrap_or_else(|e| panic!("{dtype}: {e}"));
        assert!(
            out.iter().all(|v| *v == 0.0),
            "{dtype}: zero bytes give zeros"
        );
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd-length hex");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit pair"))
        .collect()
}

fn supported_type() -> impl Strategy<Value = GgmlType> {
    let types: Vec<GgmlType> = GgmlType::ALL
        .into_iter()
        .filter(|t| !UNSUPPORTED.contains(t))
        .collect();
    proptest::sample::select(types)
}

proptest! {
    // Failing cases are saved next to this file (the default looks for a lib.rs to sit by).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Any lengths, any bytes: an error or a result, never a panic.
    #[test]
    fn never_panics(
        dtype in proptest::sample::select(GgmlType::ALL.to_vec()),
        data in proptest::collection::vec(any::<u8>(), 0..700),
        n_values in 0_usize..1100,
    ) {
        let mut out = vec![0.0; n_values];
        let result = dequantize_row(dtype, &data, &mut out);
        let fits = dtype.bytes_for(n_values as u64) == Some(data.len() as u64);
        prop_assert_eq!(result.is_ok(), fits && !UNSUPPORTED.contains(&dtype));
    }

    /// A row is its blocks dequantized one by one: kernels agree with dtype.rs on block
    /// sizes, and no block reads another's bytes.
    #[test]
    fn rows_are_blockwise(dtype in supported_type(), seed in any::<[u8; 32]>()) {
        let (block_size, block_bytes) = (dtype.block_size() as usize, dtype.block_bytes() as usize);
        let data: Vec<u8> = (0..3 * block_bytes).map(|i| seed[i % 32] ^ (i / 32) as u8).collect();
        let whole = dequantize_to_vec(dtype, &data, 3 * block_size).unwrap();
        for (block, expected) in data.chunks(block_bytes).zip(whole.chunks(block_size)) {
            let alone = dequantize_to_vec(dtype, block, block_size).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&alone), bits(expected));
        }
    }
}
