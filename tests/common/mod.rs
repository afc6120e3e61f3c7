//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses its own subset

pub mod ffi;
pub mod parity;
pub mod tiny_model;

use std::path::PathBuf;

use rocmforge::Error;
use rocmforge::error::GgufErrorKind;
use rocmforge::gguf::GgufFile;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma3-270m-Q4_K_M.gguf";

/// The checkout the tests read models and fixtures from: where they were built, or
/// `ROCMFORGE_TEST_ROOT` (a GPU machine runs the built tests from another folder).
fn root() -> PathBuf {
    std::env::var_os("ROCMFORGE_TEST_ROOT")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Path of a test model fetched by `scripts/fetch-models.sh`. A missing model fails the
/// test: these tests never skip silently.
pub fn model_path(file: &str) -> PathBuf {
    let path = root().join("models").join(file);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

/// |a - b| / |b| over the whole vectors, in f64.
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        diff += (f64::from(x) - f64::from(y)).powi(2);
        norm += f64::from(y).powi(2);
    }
    (diff / norm).sqrt()
}

/// Every position's logits for `tokens` fed to `ctx` (an empty sequence 0): the first half
/// in one batch, the rest one step a token, so both paths of a backend run.
pub fn teacher_forced(ctx: &mut rocmforge::context::Context, tokens: &[i32]) -> Vec<Vec<f32>> {
    use rocmforge::context::{Batch, WantLogits};
    let half = tokens.len() / 2;
    ctx.decode(&Batch {
        tokens: &tokens[..half],
        want_logits: WantLogits::All,
        ..Batch::default()
    })
    .unwrap();
    let mut rows: Vec<Vec<f32>> = (0..half as i32)
        .map(|i| ctx.logits(i).unwrap().to_vec())
        .collect();
    for &token in &tokens[half..] {
        ctx.decode(&Batch {
            tokens: &[token],
            ..Batch::default()
        })
        .unwrap();
        rows.push(ctx.logits(-1).unwrap().to_vec());
    }
    rows
}

pub fn fixture_path(relative: &str) -> PathBuf {
    root().join("tests/fixtures").join(relative)
}

pub fn read_json(relative: &str) -> serde_json::Value {
    let path = fixture_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Builds GGUF bytes field by field, including fields no valid writer would produce.
#[derive(Default, Clone)]
pub struct RawGguf(pub Vec<u8>);

impl RawGguf {
    /// Magic, version 3 and the two counts.
    pub fn header(n_tensors: u64, n_kv: u64) -> RawGguf {
        RawGguf::default()
            .bytes(b"GGUF")
            .u32(3)
            .u64(n_tensors)
            .u64(n_kv)
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    pub fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn string(self, s: &str) -> Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// A metadata entry holding a UINT32.
    pub fn kv_u32(self, key: &str, v: u32) -> Self {
        self.string(key).u32(4).u32(v)
    }

    /// A tensor info record.
    pub fn tensor(self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Self {
        let mut raw = self.string(name).u32(dims.len() as u32);
        for &d in dims {
            raw = raw.u64(d);
        }
        raw.u32(type_id).u64(offset)
    }

    /// Zero bytes up to the next multiple of `alignment`.
    pub fn pad(mut self, alignment: usize) -> Self {
        let len = self.0.len().next_multiple_of(alignment);
        self.0.resize(len, 0);
        self
    }

    pub fn zeros(mut self, n: usize) -> Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
}

/// Parses `bytes`, expecting a structural GGUF error, and returns its kind.
pub fn gguf_error(bytes: &[u8]) -> GgufErrorKind {
    match GgufFile::parse(bytes) {
        Err(Error::InvalidGguf(e)) => e.kind,
        Err(other) => panic!("expected a GGUF format error, got: {other}"),
        Ok(_) => panic!("malformed input was accepted"),
    }
}

/// Parses `bytes`, expecting an `Unsupported` error, and returns its message.
pub fn unsupported(bytes: &[u8]) -> String {
    match GgufFile::parse(bytes) {
        Err(Error::Unsupported(message)) => message,
        Err(other) => panic!("expected an unsupported error, got: {other}"),
        Ok(_) => panic!("unsupported input was accepted"),
    }
}
