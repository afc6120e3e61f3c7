//! The malicious-input corpus of RELIABILITY.md ("Header", "Keys/values", "Alignment",
//! "Tensor infos", "Offsets and data"): each input is a named test that must get a typed
//! error, never a panic, hang or oversized allocation.

mod common;

use common::{RawGguf, gguf_error, unsupported};
use rocmforge::error::GgufErrorKind as K;
use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue};
use rocmforge::tensor::GgmlType;

/// Size of the reader's per-tensor record, to aim counts just past what usize can index.
const TENSOR_INFO_SIZE: u64 = std::mem::size_of::<rocmforge::gguf::TensorInfo>() as u64;

/// A valid file with one metadata key and one F32 tensor of 8 values (32 bytes, so the
/// data section ends exactly at the end of the file).
fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", OwnedValue::String("llama".into()))
        .unwrap();
    w.add_tensor("t", GgmlType::F32, &[8], vec![0; 32]).unwrap();
    w.to_bytes()
}

/// A file with one tensor info and its data section of `data_len` zero bytes.
fn one_tensor(dims: &[u64], type_id: u32, offset: u64, data_len: usize) -> Vec<u8> {
    RawGguf::header(1, 0)
        .tensor("t", dims, type_id, offset)
        .pad(32)
        .zeros(data_len)
        .0
}

// ---------------------------------------------------------------- header

#[test]
fn header_bad_magic() {
    let mut bytes = valid_file();
    bytes[..4].copy_from_slice(b"GGML");
    assert!(matches!(gguf_error(&bytes), K::BadMagic { .. }));
}

#[test]
fn header_version_0_1_and_4_are_unsupported() {
    for version in [0u32, 1, 4, 5, u32::MAX] {
        let mut bytes = valid_file();
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        let message = unsupported(&bytes);
        assert!(message.contains("version"), "{message}");
    }
}

#[test]
fn header_big_endian_is_named() {
    let mut bytes = valid_file();
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(unsupported(&bytes).contains("big-endian"));
}

#[test]
fn header_empty_file() {
    assert!(matches!(gguf_error(&[]), K::Truncated { .. }));
}

#[test]
fn header_truncated_at_every_offset() {
    let bytes = valid_file();
    for cut in 0..24 {
        assert!(
            matches!(gguf_error(&bytes[..cut]), K::Truncated { .. }),
            "cut at {cut}"
        );
    }
}

#[test]
fn header_tensor_count_u64_max() {
    let bytes = RawGguf::header(u64::MAX, 0).zeros(64).0;
    assert!(matches!(gguf_error(&bytes), K::Truncated { .. }));
}

#[test]
fn header_tensor_count_2_pow_63() {
    let bytes = RawGguf::header(1 << 63, 0).zeros(64).0;
    assert!(matches!(gguf_error(&bytes), K::Truncated { .. }));
}

#[test]
fn header_tensor_count_just_above_usize_max_over_entry_size() {
    let n = usize::MAX as u64 / TENSOR_INFO_SIZE + 1;
    let bytes = RawGguf::header(n, 0).zeros(64).0;
    assert!(matches!(gguf_error(&bytes), K::Truncated { .. }));
}

#[test]
fn header_kv_count_u64_max_and_2_pow_63() {
    for n in [u64::MAX, 1 << 63] {
        let bytes = RawGguf::header(0, n).zeros(64).0;
        assert!(matches!(gguf_error(&bytes), K::Truncated { .. }), "{n}");
    }
}

#[test]
fn header_kv_count_just_above_usize_max_over_entry_size() {
    let entry_size = std::mem::size_of::<rocmforge::gguf::MetadataEntry>() as u64;
    let bytes = RawGguf::header(0, usize::MAX as u64 / entry_size + 1)
        .zeros(64)
        .0;
    assert!(matches!(gguf_error(&bytes), K::Truncated { .. }));
}

// ---------------------------------------------------------------- keys and values

#[test]
fn key_length_u64_max() {
    let bytes = RawGguf::header(0, 1).u64(u64::MAX).zeros(32).0;
    assert!(matches!(gguf_error(&bytes), K::LimitExceeded { .. }));
}

#[test]
fn key_length_past_end_of_file() {
    let bytes = RawGguf::header(0, 1).u64(100).bytes(b"general.name").0;
    let kind = gguf_error(&bytes);
    assert!(
        matches!(
            kind,
            K::Truncated {
                needed: 100,
                available: 12,
                ..
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn key_empty() {
    let bytes = RawGguf::header(0, 1).kv_u32("", 1).0;
    assert_eq!(gguf_error(&bytes), K::EmptyKey);
}

#[test]
fn key_duplicate() {
    let bytes = RawGguf::header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).0;
    assert_eq!(gguf_error(&bytes), K::DuplicateKey("a.b".into()));
}

#[test]
fn value_type_13_and_0x7fffffff() {
    for type_id in [13u32, 0x7fff_ffff] {
        let bytes = RawGguf::header(0, 1).string("k").u32(type_id).u32(0).0;
        assert_eq!(
            gguf_error(&bytes),
            K::InvalidValueType {
                field: "k".into(),
                type_id
            }
        );
    }
}

#[test]
fn string_length_u64_max_does_not_wrap() {
    // `len + 1` wraps to 0 in a reader that reserves room for a terminator.
    let bytes = RawGguf::header(0, 1)
        .string("k")
        .u32(8)
        .u64(u64::MAX)
        .zeros(16)
        .0;
    assert!(matches!(gguf_error(&bytes), K::LimitExceeded { .. }));
}

#[test]
fn string_length_past_end_of_file() {
    let bytes = RawGguf::header(0, 1)
        .string("k")
        .u32(8)
        .u64(1000)
        .bytes(b"short")
        .0;
    assert!(matches!(gguf_error(&bytes), K::Truncated { .. }));
}

#[test]
fn array_count_times_element_size_overflows() {
    // 2^61 + 1 eight-byte elements: the byte count wraps to 8 in 64-bit arithmetic.
    let bytes = RawGguf::header(0, 1)
        .string("k")
        .u32(9)
        .u32(10)
        .u64((1 << 61) + 1)
        .zeros(8)
        .0;
    assert!(matches!(gguf_error(&bytes), K::LimitExceeded { .. }));
}

#[test]
fn array_count_larger_than_bytes_left() {
    let bytes = RawGguf::header(0, 1)
        .string("k")
        .u32(9)
        .u32(4)
        .u64(1000)
        .zeros(8)
        .0;
    assert!(matches!(gguf_error(&bytes), K::Truncated { .. }));
}

#[test]
fn arrays_nested_100000_deep() {
    let mut raw = RawGguf::header(0, 1).string("deep").u32(9);
    for _ in 0..100_000 {
        raw = raw.u32(9).u64(1);
    }
    let bytes = raw.u32(4).u64(0).0;
    assert!(matches!(gguf_error(&bytes), K::NestingTooDeep { .. }));
}

#[test]
fn string_array_of_2_pow_32_entries_in_a_tiny_file() {
    let bytes = RawGguf::header(0, 1)
        .string("tokens")
        .u32(9)
        .u32(8)
        .u64(1 << 32)
        .string("a")
        .0;
    assert!(matches!(gguf_error(&bytes), K::LimitExceeded { .. }));
}

#[test]
fn string_array_count_within_cap_but_past_end_of_file() {
    let bytes = RawGguf::header(0, 1)
        .string("tokens")
        .u32(9)
        .u32(8)
        .u64(1 << 20)
        .string("a")
        .0;
    assert!(matches!(gguf_error(&bytes), K::Truncated { .. }));
}

#[test]
fn string_value_not_utf8() {
    let bytes = RawGguf::header(0, 1)
        .string("k")
        .u32(8)
        .u64(2)
        .bytes(&[0xff, 0xfe])
        .0;
    assert!(matches!(gguf_error(&bytes), K::InvalidUtf8 { .. }));
}

// ---------------------------------------------------------------- alignment

fn with_alignment(value_type: u32, value: &[u8]) -> Vec<u8> {
    RawGguf::header(0, 1)
        .string("general.alignment")
        .u32(value_type)
        .bytes(value)
        .0
}

#[test]
fn alignment_zero() {
    let bytes = with_alignment(4, &0u32.to_le_bytes());
    assert!(matches!(gguf_error(&bytes), K::InvalidAlignment(_)));
}

#[test]
fn alignment_13() {
    let bytes = with_alignment(4, &13u32.to_le_bytes());
    assert!(matches!(gguf_error(&bytes), K::InvalidAlignment(_)));
}

#[test]
fn alignment_2_pow_31() {
    let bytes = with_alignment(4, &(1u32 << 31).to_le_bytes());
    assert!(matches!(gguf_error(&bytes), K::InvalidAlignment(_)));
}

#[test]
fn alignment_declared_with_the_wrong_type() {
    for (type_id, value) in [
        (10u32, 32u64.to_le_bytes().to_vec()),
        (5, vec![32, 0, 0, 0]),
    ] {
        let kind = gguf_error(&with_alignment(type_id, &value));
        assert!(
            matches!(&kind, K::InvalidAlignment(m) if m.contains("UINT32")),
            "{kind:?}"
        );
    }
}

#[test]
fn alignment_valid_value_is_used() {
    let bytes = RawGguf::header(1, 1)
        .kv_u32("general.alignment", 64)
        .tensor("t", &[16], 0, 0)
        .pad(64)
        .zeros(64)
        .0;
    let file = GgufFile::parse(&bytes).unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_offset() % 64, 0);
}

// ---------------------------------------------------------------- tensor infos

#[test]
fn tensor_n_dims_0_5_255() {
    for n_dims in [0u32, 5, 255] {
        let bytes = RawGguf::header(1, 0)
            .string("t")
            .u32(n_dims)
            .zeros(8 * 255 + 12)
            .0;
        assert!(
            matches!(gguf_error(&bytes), K::TensorRank { .. }),
            "{n_dims}"
        );
    }
}

#[test]
fn tensor_dimension_zero() {
    let bytes = one_tensor(&[8, 0], 0, 0, 32);
    assert!(matches!(
        gguf_error(&bytes),
        K::TensorDim {
            index: 1,
            value: 0,
            ..
        }
    ));
}

#[test]
fn tensor_dimension_negative() {
    let bytes = one_tensor(&[(-8i64) as u64], 0, 0, 32);
    assert!(matches!(gguf_error(&bytes), K::TensorDim { index: 0, .. }));
}

#[test]
fn tensor_dimension_product_overflows_i64() {
    let bytes = one_tensor(&[1 << 32, 1 << 32], 0, 0, 32);
    assert!(matches!(gguf_error(&bytes), K::TensorSize { .. }));
}

#[test]
fn tensor_byte_size_overflow_for_every_type() {
    // The element count fits in i64; for wide types the byte size overflows u64, for
    // the others it lies far past the data. Either way: a typed error, before any read.
    for dtype in GgmlType::ALL {
        let rows = (i64::MAX as u64) / dtype.block_size();
        let bytes = one_tensor(&[dtype.block_size(), rows], dtype.id(), 0, 32);
        let kind = gguf_error(&bytes);
        assert!(
            matches!(kind, K::TensorSize { .. } | K::TensorOutOfBounds { .. }),
            "{dtype}: {kind:?}"
        );
    }
}

#[test]
fn tensor_byte_size_overflows_u64() {
    let bytes = one_tensor(&[1 << 62], GgmlType::F32.id(), 0, 32);
    let kind = gguf_error(&bytes);
    assert!(matches!(&kind, K::TensorSize { problem, .. } if problem.contains("overflow")));
}

#[test]
fn tensor_first_dimension_not_a_block_multiple() {
    let bytes = one_tensor(&[33, 2], GgmlType::Q4_0.id(), 0, 64);
    assert!(
        matches!(&gguf_error(&bytes), K::TensorSize { problem, .. } if problem.contains("multiple"))
    );
}

#[test]
fn tensor_unknown_type_id() {
    for type_id in [40u32, 1000, u32::MAX] {
        let bytes = one_tensor(&[32], type_id, 0, 128);
        assert!(unsupported(&bytes).contains("unknown type id"));
    }
}

#[test]
fn tensor_removed_type_id() {
    for (type_id, name) in [
        (4u32, "Q4_2"),
        (5, "Q4_3"),
        (31, "Q4_0_4_4"),
        (38, "IQ4_NL_8_8"),
    ] {
        let bytes = one_tensor(&[32], type_id, 0, 128);
        assert!(unsupported(&bytes).contains(name));
    }
}

#[test]
fn tensor_name_longer_than_the_cap() {
    let name = "x".repeat(rocmforge::gguf::limits::MAX_TENSOR_NAME_LEN as usize + 1);
    let bytes = RawGguf::header(1, 0)
        .tensor(&name, &[8], 0, 0)
        .pad(32)
        .zeros(32)
        .0;
    assert!(matches!(gguf_error(&bytes), K::LimitExceeded { .. }));
}

#[test]
fn tensor_duplicate_names() {
    let bytes = RawGguf::header(2, 0)
        .tensor("t", &[8], 0, 0)
        .tensor("t", &[8], 0, 32)
        .pad(32)
        .zeros(64)
        .0;
    assert_eq!(gguf_error(&bytes), K::DuplicateTensor("t".into()));
}

// ---------------------------------------------------------------- offsets and data

#[test]
fn offset_unaligned() {
    let bytes = one_tensor(&[8], 0, 4, 64);
    assert!(matches!(
        gguf_error(&bytes),
        K::UnalignedTensor { offset: 4, .. }
    ));
}

#[test]
fn offset_u64_max() {
    // u64::MAX is not aligned; the largest aligned offset must fail the bounds check
    // without `offset + size` wrapping.
    let bytes = one_tensor(&[8], 0, u64::MAX, 32);
    assert!(matches!(gguf_error(&bytes), K::UnalignedTensor { .. }));
    let bytes = one_tensor(&[8], 0, !31, 32);
    assert!(matches!(gguf_error(&bytes), K::TensorOutOfBounds { .. }));
}

#[test]
fn offset_plus_size_past_end_of_file() {
    let bytes = one_tensor(&[16], 0, 32, 64);
    let kind = gguf_error(&bytes);
    assert!(
        matches!(
            kind,
            K::TensorOutOfBounds {
                start: 32,
                end: 96,
                len: 64,
                ..
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn tensors_overlapping() {
    let bytes = RawGguf::header(2, 0)
        .tensor("a", &[16], 0, 0)
        .tensor("b", &[8], 0, 32)
        .pad(32)
        .zeros(64)
        .0;
    assert!(matches!(gguf_error(&bytes), K::OverlappingTensors { .. }));
}

#[test]
fn padded_total_size_wraps() {
    // CVE-2025-53630 and its bypass CVE-2026-27940: two tensors whose padded sizes sum
    // past 2^64 and wrap to a small total that a summing reader accepts.
    let half = 1u64 << 62;
    let bytes = RawGguf::header(2, 0)
        .tensor("a", &[half], GgmlType::I8.id(), 0)
        .tensor("b", &[half], GgmlType::I8.id(), 3 * half)
        .pad(32)
        .zeros(64)
        .0;
    assert!(matches!(gguf_error(&bytes), K::TensorOutOfBounds { .. }));
}

#[test]
fn data_section_one_byte_short() {
    let bytes = valid_file();
    assert!(GgufFile::parse(&bytes).is_ok());
    assert!(matches!(
        gguf_error(&bytes[..bytes.len() - 1]),
        K::TensorOutOfBounds { .. }
    ));
}

// ---------------------------------------------------------------- messages

#[test]
fn errors_name_the_field_and_the_offset() {
    let bytes = RawGguf::header(0, 2)
        .kv_u32("llama.block_count", 30)
        .string("general.name")
        .u32(8)
        .u64(1000)
        .0;
    let message = GgufFile::parse(&bytes).unwrap_err().to_string();
    assert!(message.contains("general.name"), "{message}");
    // 24-byte header, 33-byte first entry, then key, type and length of the second.
    assert!(message.contains("at byte 89"), "{message}");
}

// ---------------------------------------------------------------- mutations

#[test]
fn random_byte_mutations_never_panic() {
    let mut w = GgufWriter::new();
    w.add_metadata("tokens", OwnedValue::string_array(["a", "bc", "def"]))
        .unwrap();
    w.add_metadata("general.alignment", OwnedValue::U32(32))
        .unwrap();
    w.add_tensor("a", GgmlType::Q4_0, &[32, 2], vec![0; 36])
        .unwrap();
    w.add_tensor("b", GgmlType::F16, &[3], vec![0; 6]).unwrap();
    let original = w.to_bytes();
    let mut rng = rocmforge::gguf::synthetic::SplitMix64(7);
    for _ in 0..20_000 {
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next_u64() as u8;
        }
        // Either outcome is fine; the point is that parsing returns.
        let _ = GgufFile::parse(&bytes);
    }
}
