//! The two real test models open, and every header number, metadata entry (every element
//! of every array: each token string, token type, score and merge) and tensor agrees with
//! what gguf-py reports (tests/fixtures/models/*.json, written by
//! scripts/dump_tensor_table.py).

mod common;

use std::process::Command;

use common::{GEMMA3, SMOLLM2, model_path, read_json};
use rocmforge::gguf::{ArrayView, GgufFile, OwnedGguf, Value};
use serde_json::Value as Json;

fn check_against_fixture(model: &str, fixture: &str) {
    let gguf = OwnedGguf::open(&model_path(model)).unwrap();
    let file = gguf.file();
    let expected = read_json(&format!("models/{fixture}"));

    assert_eq!(Json::from(file.version()), expected["version"]);
    assert_eq!(Json::from(file.alignment()), expected["alignment"]);
    assert_eq!(Json::from(file.data_offset()), expected["data_offset"]);
    assert_eq!(Json::from(file.file_len()), expected["size"]);

    let entries = expected["metadata"].as_array().unwrap();
    assert_eq!(Json::from(file.metadata().len()), expected["n_kv"]);
    assert_eq!(file.metadata().len(), entries.len());
    for (entry, want) in file.metadata().iter().zip(entries) {
        assert_eq!(entry.key, want["key"], "key order");
        let ty = entry.value.value_type().name();
        assert_eq!(ty, want["type"], "{}", entry.key);
        check_value(entry.key, &entry.value, want);
    }

    let tensors = expected["tensors"].as_array().unwrap();
    assert_eq!(Json::from(file.tensors().len()), expected["n_tensors"]);
    assert_eq!(file.tensors().len(), tensors.len());
    for (t, want) in file.tensors().iter().zip(tensors) {
        assert_eq!(t.name(), want["name"]);
        assert_eq!(Json::from(t.dtype().id()), want["type_id"], "{}", t.name());
        assert_eq!(t.dtype().name(), want["type"], "{}", t.name());
        assert_eq!(Json::from(t.shape()), want["shape"], "{}", t.name());
        assert_eq!(Json::from(t.offset()), want["offset"], "{}", t.name());
        assert_eq!(Json::from(t.n_bytes()), want["n_bytes"], "{}", t.name());
        let view = file.tensor(t.name()).unwrap();
        assert_eq!(view.data.len() as u64, t.n_bytes());
    }
}

fn check_value(key: &str, value: &Value<'_>, want: &Json) {
    match value {
        Value::Array(a) => check_array(key, a, want),
        Value::String(s) if want.get("value").is_none() => {
            assert_eq!(Json::from(s.len()), want["len"], "{key}");
            assert_eq!(Json::from(fnv1a64(s.as_bytes())), want["fnv1a64"], "{key}");
        }
        scalar => assert_eq!(plain_json(scalar), want["value"], "{key}"),
    }
}

/// A scalar as the fixture writes it. gguf-py widens FLOAT32 to f64 exactly, so
/// comparisons stay exact.
fn plain_json(value: &Value<'_>) -> Json {
    match value {
        Value::String(s) => Json::from(*s),
        Value::Bool(b) => Json::from(*b),
        Value::F32(v) => Json::from(f64::from(*v)),
        Value::F64(v) => Json::from(*v),
        Value::Array(_) => panic!("an array is not a scalar"),
        integer => Json::from(integer.as_integer().and_then(|n| i64::try_from(n).ok())),
    }
}

/// Elements per hash in the fixture's `chunk_fnv1a64`.
const HASH_CHUNK: usize = 8192;

fn check_array(key: &str, a: &ArrayView<'_>, want: &Json) {
    assert_eq!(a.elem_type().name(), want["array_type"], "{key}");
    assert_eq!(Json::from(a.len()), want["array_len"], "{key}");
    let items: Vec<Value<'_>> = a.iter().collect();
    assert_eq!(items.len(), a.len(), "{key}");

    let hashes: Vec<String> = items
        .chunks(HASH_CHUNK)
        .map(|chunk| fnv1a64(&canonical_bytes(chunk.iter().cloned())))
        .collect();
    let want_hashes = want["chunk_fnv1a64"].as_array().expect("chunk_fnv1a64");
    assert_eq!(hashes.len(), want_hashes.len(), "{key}: number of chunks");
    for (c, (ours, theirs)) in hashes.iter().zip(want_hashes).enumerate() {
        let (first, last) = (c * HASH_CHUNK, ((c + 1) * HASH_CHUNK).min(items.len()) - 1);
        assert_eq!(
            ours, theirs,
            "{key}: elements {first}..={last} differ from gguf-py's"
        );
    }

    let samples = want["samples"].as_array().expect("samples");
    assert!(!samples.is_empty() || items.is_empty(), "{key}: no samples");
    for sample in samples {
        let index = sample[0].as_u64().expect("sample index") as usize;
        assert_eq!(plain_json(&items[index]), sample[1], "{key}[{index}]");
    }
}

/// The fixture's canonical serialisation (the GGUF encoding): a string as its byte
/// length (u64 LE) then its UTF-8 bytes, a number little-endian in its own type, a bool
/// as one byte 0 or 1.
fn canonical_bytes<'a>(values: impl IntoIterator<Item = Value<'a>>) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Value::String(s) => {
                out.extend((s.len() as u64).to_le_bytes());
                out.extend(s.as_bytes());
            }
            Value::Bool(b) => out.push(u8::from(b)),
            Value::U8(v) => out.extend(v.to_le_bytes()),
            Value::I8(v) => out.extend(v.to_le_bytes()),
            Value::U16(v) => out.extend(v.to_le_bytes()),
            Value::I16(v) => out.extend(v.to_le_bytes()),
            Value::U32(v) => out.extend(v.to_le_bytes()),
            Value::I32(v) => out.extend(v.to_le_bytes()),
            Value::U64(v) => out.extend(v.to_le_bytes()),
            Value::I64(v) => out.extend(v.to_le_bytes()),
            Value::F32(v) => out.extend(v.to_le_bytes()),
            Value::F64(v) => out.extend(v.to_le_bytes()),
            Value::Array(_) => panic!("nested arrays are not in the fixture format"),
        }
    }
    out
}

/// 64-bit FNV-1a as 16 hex digits. Each step (XOR a byte, multiply by an odd number) is
/// a bijection of the state, so any one-byte substitution changes the hash.
fn fnv1a64(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[test]
fn smollm2_matches_gguf_py() {
    check_against_fixture(SMOLLM2, "smollm2-135m-instruct-q4_1.json");
}

#[test]
fn gemma3_matches_gguf_py() {
    check_against_fixture(GEMMA3, "gemma3-270m-q4_k_m.json");
}

#[test]
fn typed_getters_read_real_metadata() {
    let gguf = OwnedGguf::open(&model_path(SMOLLM2)).unwrap();
    let file: &GgufFile<'_> = gguf.file();
    assert_eq!(file.require::<u32>("llama.block_count").unwrap(), 30);
    assert_eq!(file.require::<u64>("llama.embedding_length").unwrap(), 576);
    assert_eq!(file.require::<f32>("llama.rope.freq_base").unwrap(), 1e5);
    assert_eq!(
        file.require::<&str>("general.architecture").unwrap(),
        "llama"
    );
    assert_eq!(file.get::<u32>("llama.no_such_key").unwrap(), None);
    let tokens = file.require::<&ArrayView>("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.strings().map(<[_]>::len), Some(49152));
    assert_eq!(tokens.strings().unwrap()[1], "<|im_start|>");

    let wrong = file.require::<&str>("llama.block_count").unwrap_err();
    assert!(wrong.to_string().contains("llama.block_count"), "{wrong}");
    let missing = file.require::<u32>("llama.no_such_key").unwrap_err();
    assert!(
        missing.to_string().contains("llama.no_such_key"),
        "{missing}"
    );
}

#[test]
fn rocmforge_gguf_prints_every_tensor() {
    for (model, fixture) in [
        (SMOLLM2, "smollm2-135m-instruct-q4_1.json"),
        (GEMMA3, "gemma3-270m-q4_k_m.json"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_rocmforge-gguf"))
            .arg(model_path(model))
            .output()
            .unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8(output.stdout).unwrap();
        let expected = read_json(&format!("models/{fixture}"));
        let data_offset = expected["data_offset"].as_u64().unwrap();
        for t in expected["tensors"].as_array().unwrap() {
            let offset = data_offset + t["offset"].as_u64().unwrap();
            let line = stdout
                .lines()
                .find(|l| l.ends_with(&format!("  {}", t["name"].as_str().unwrap())))
                .unwrap_or_else(|| panic!("{} not printed", t["name"]));
            assert!(line.contains(t["type"].as_str().unwrap()), "{line}");
            assert!(line.contains(&offset.to_string()), "{line}");
        }
        assert!(stdout.contains("general.architecture"));
    }
}

#[test]
fn rocmforge_gguf_reports_bad_files() {
    let path = std::env::temp_dir().join(format!("rocmforge-bad-{}.gguf", std::process::id()));
    std::fs::write(&path, b"GGUF\x03\x00\x00\x00").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rocmforge-gguf"))
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("tensor count"), "{stderr}");
}
