//! What the writer writes, the reader reads back identically: every metadata type, every
//! tensor type, and random metadata and shapes.

mod common;

use proptest::prelude::*;
use rocmforge::gguf::synthetic::SplitMix64;
use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue, ValueType};
use rocmforge::tensor::GgmlType;

#[derive(Debug)]
struct TensorSpec {
    name: String,
    dtype: GgmlType,
    shape: Vec<u64>,
    data: Vec<u8>,
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn write(metadata: &[(String, OwnedValue)], tensors: &[TensorSpec]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in metadata {
        w.add_metadata(k.clone(), v.clone()).unwrap();
    }
    for t in tensors {
        w.add_tensor(t.name.clone(), t.dtype, &t.shape, t.data.clone())
            .unwrap();
    }
    w.to_bytes()
}

fn assert_round_trip(metadata: &[(String, OwnedValue)], tensors: &[TensorSpec]) {
    let bytes = write(metadata, tensors);
    let file = GgufFile::parse(&bytes).unwrap();
    assert_eq!(file.version(), 3);
    let read: Vec<(String, OwnedValue)> = file
        .metadata()
        .iter()
        .map(|e| (e.key.to_owned(), e.value.to_owned_value()))
        .collect();
    assert_eq!(read, metadata);
    assert_eq!(file.tensors().len(), tensors.len());
    for (info, want) in file.tensors().iter().zip(tensors) {
        assert_eq!(info.name(), want.name);
        assert_eq!(info.dtype(), want.dtype);
        assert_eq!(info.shape(), want.shape.as_slice());
        assert_eq!(info.offset() % file.alignment(), 0);
        assert_eq!(file.tensor(&want.name).unwrap().data, want.data.as_slice());
    }
}

fn every_value_type() -> Vec<(String, OwnedValue)> {
    let values = vec![
        OwnedValue::U8(200),
        OwnedValue::I8(-100),
        OwnedValue::U16(60_000),
        OwnedValue::I16(-30_000),
        OwnedValue::U32(4_000_000_000),
        OwnedValue::I32(-2_000_000_000),
        OwnedValue::F32(-1.5e-7),
        OwnedValue::Bool(true),
        OwnedValue::String("héllo ▁ 世界".into()),
        OwnedValue::string_array(["a", "", "<0x0A>"]),
        OwnedValue::U64(u64::MAX),
        OwnedValue::I64(i64::MIN),
        OwnedValue::F64(std::f64::consts::PI),
        OwnedValue::f32_array([0.0, -0.0, f32::INFINITY, 1e-40]),
        OwnedValue::i32_array([]),
        OwnedValue::Array {
            elem_type: ValueType::Array,
            items: vec![
                OwnedValue::i32_array([1, 2, 3]),
                OwnedValue::string_array(["x"]),
                OwnedValue::Array {
                    elem_type: ValueType::Array,
                    items: vec![OwnedValue::Array {
                        elem_type: ValueType::Bool,
                        items: vec![OwnedValue::Bool(false), OwnedValue::Bool(true)],
                    }],
                },
            ],
        },
    ];
    let mut covered: Vec<ValueType> = values.iter().map(OwnedValue::value_type).collect();
    covered.sort_by_key(|t| t.id());
    covered.dedup();
    assert_eq!(covered, ValueType::ALL, "every value type is exercised");
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("test.value_{i}"), v))
        .collect()
}

#[test]
fn every_metadata_type_and_every_dtype_round_trip() {
    let tensors: Vec<TensorSpec> = GgmlType::ALL
        .iter()
        .enumerate()
        .map(|(i, &dtype)| {
            let shape = vec![dtype.block_size() * 2, 3];
            let n_bytes = dtype.bytes_for(shape.iter().product()).unwrap() as usize;
            TensorSpec {
                name: format!("blk.{i}.{}", dtype.name()),
                dtype,
                shape,
                data: random_bytes(n_bytes, i as u64),
            }
        })
        .collect();
    assert_round_trip(&every_value_type(), &tensors);
}

#[test]
fn declared_alignment_is_honoured() {
    let metadata = vec![("general.alignment".to_owned(), OwnedValue::U32(256))];
    let tensors: Vec<TensorSpec> = (0..3)
        .map(|i| TensorSpec {
            name: format!("t{i}"),
            dtype: GgmlType::F16,
            shape: vec![7 + i],
            data: random_bytes(2 * (7 + i) as usize, i),
        })
        .collect();
    assert_round_trip(&metadata, &tensors);
    let bytes = write(&metadata, &tensors);
    let file = GgufFile::parse(&bytes).unwrap();
    assert_eq!(file.alignment(), 256);
    assert_eq!(file.data_offset() % 256, 0);
}

#[test]
fn writer_refuses_what_the_format_cannot_hold() {
    let mut w = GgufWriter::new();
    assert!(w.add_metadata("", OwnedValue::U8(1)).is_err());
    assert!(
        w.add_metadata("general.alignment", OwnedValue::U32(13))
            .is_err()
    );
    let mixed = OwnedValue::Array {
        elem_type: ValueType::U8,
        items: vec![OwnedValue::U8(1), OwnedValue::I8(1)],
    };
    assert!(w.add_metadata("mixed", mixed).is_err());
    w.add_metadata("k", OwnedValue::U8(1)).unwrap();
    assert!(w.add_metadata("k", OwnedValue::U8(2)).is_err());
    assert!(
        w.add_tensor("t", GgmlType::Q4_0, &[33], vec![0; 18])
            .is_err()
    );
    assert!(w.add_tensor("t", GgmlType::F32, &[4], vec![0; 15]).is_err());
    assert!(w.add_tensor("t", GgmlType::F32, &[], vec![]).is_err());
    w.add_tensor("t", GgmlType::F32, &[4], vec![0; 16]).unwrap();
    assert!(w.add_tensor("t", GgmlType::F32, &[4], vec![0; 16]).is_err());
}

fn scalar_value() -> impl Strategy<Value = OwnedValue> {
    prop_oneof![
        any::<u8>().prop_map(OwnedValue::U8),
        any::<i8>().prop_map(OwnedValue::I8),
        any::<u16>().prop_map(OwnedValue::U16),
        any::<i16>().prop_map(OwnedValue::I16),
        any::<u32>().prop_map(OwnedValue::U32),
        any::<i32>().prop_map(OwnedValue::I32),
        // Compared by value after the round trip, so NaN (never equal) is left out.
        any::<f32>()
            .prop_filter("not NaN", |v| !v.is_nan())
            .prop_map(OwnedValue::F32),
        any::<bool>().prop_map(OwnedValue::Bool),
        ".{0,40}".prop_map(OwnedValue::String),
        any::<u64>().prop_map(OwnedValue::U64),
        any::<i64>().prop_map(OwnedValue::I64),
        any::<f64>()
            .prop_filter("not NaN", |v| !v.is_nan())
            .prop_map(OwnedValue::F64),
    ]
}

/// Arrays hold one element type, so an array is built from copies of one strategy.
fn value() -> impl Strategy<Value = OwnedValue> {
    scalar_value().prop_recursive(3, 64, 8, |inner| {
        (inner, 0..6usize).prop_map(|(item, n)| OwnedValue::Array {
            elem_type: item.value_type(),
            items: vec![item; n],
        })
    })
}

fn tensor_spec() -> impl Strategy<Value = TensorSpec> {
    (
        prop::sample::select(GgmlType::ALL.to_vec()),
        1..4u64,
        prop::collection::vec(1..5u64, 0..3),
        any::<u64>(),
    )
        .prop_map(|(dtype, blocks, mut rest, seed)| {
            let mut shape = vec![blocks * dtype.block_size()];
            shape.append(&mut rest);
            let n_bytes = dtype.bytes_for(shape.iter().product()).unwrap() as usize;
            TensorSpec {
                name: String::new(),
                dtype,
                shape,
                data: random_bytes(n_bytes, seed),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_metadata_and_shapes_round_trip(
        values in prop::collection::vec(value(), 0..12),
        specs in prop::collection::vec(tensor_spec(), 0..6),
    ) {
        let metadata: Vec<(String, OwnedValue)> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("random.key_{i}"), v))
            .collect();
        let tensors: Vec<TensorSpec> = specs
            .into_iter()
            .enumerate()
            .map(|(i, t)| TensorSpec { name: format!("tensor.{i}"), ..t })
            .collect();
        assert_round_trip(&metadata, &tensors);
    }
}
