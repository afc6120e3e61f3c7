//! ROCmForge: GGUF language-model inference for AMD (HIP), NVIDIA and the CPU, embedded
//! through a C ABI.
//!
//! Layers, each using only those before it: `error` → `host_memory` → `gguf` → `tensor` → `backend` →
//! `kv_cache` → `model` → `tokenizer`, `sampler`, `chat`, `context`, `generate` → `ffi`.

pub mod backend;
pub mod chat;
pub mod context;
pub mod error;
pub mod ffi;
pub mod generate;
pub mod gguf;
pub mod grammar;
pub mod host_memory;
pub mod input_file;
pub mod kv_cache;
pub mod memory_estimate;
pub mod model;
pub mod quiet_panics;
pub mod sampler;
pub mod seq_state;
pub mod tensor;
pub mod tokenizer;

pub use error::{Error, Result};
