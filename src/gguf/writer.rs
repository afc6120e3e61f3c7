//! Writes GGUF version 3 files: how tests build tiny models and how tools make synthetic
//! models of any shape.

use std::collections::HashSet;
use std::io::Write;

use super::file::{ALIGNMENT_KEY, GGUF_MAGIC};
use super::limits::{DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_TENSOR_DIMS};
use super::value::OwnedValue;
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

const VERSION: u32 = 3;

/// Collects metadata and tensors, then writes them as one GGUF file. The alignment is
/// `general.alignment` when that key was added (as UINT32), else 32.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, OwnedValue)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    tensor_names: HashSet<String>,
}

struct PendingTensor {
    name: String,
    dtype: GgmlType,
    shape: Vec<u64>,
    data: Vec<u8>,
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    pub fn add_metadata(&mut self, key: impl Into<String>, value: OwnedValue) -> Result<()> {
        let key = key.into();
        if key.is_empty() {
            return Err(invalid("metadata key is empty".into()));
        }
        if key == ALIGNMENT_KEY {
            match value {
                OwnedValue::U32(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT => {}
                _ => {
                    return Err(invalid(format!(
                        "{ALIGNMENT_KEY} must be a UINT32 power of two up to {MAX_ALIGNMENT}"
                    )));
                }
            }
        }
        check_homogeneous(&key, &value)?;
        if !self.keys.insert(key.clone()) {
            return Err(invalid(format!("duplicate metadata key '{key}'")));
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a tensor; `shape` is in GGML order (`shape[0]` values per row) and `data`
    /// holds exactly the bytes that shape takes in `dtype`.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dtype: GgmlType,
        shape: &[u64],
        data: Vec<u8>,
    ) -> Result<()> {
        let name = name.into();
        if shape.is_empty() || shape.len() > MAX_TENSOR_DIMS as usize || shape.contains(&0) {
            return Err(invalid(format!(
                "tensor '{name}': shape {shape:?} must have 1 to {MAX_TENSOR_DIMS} non-zero dimensions"
            )));
        }
        let expected = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|_| shape[0].is_multiple_of(dtype.block_size()))
            .and_then(|n| dtype.bytes_for(n));
        if expected != Some(data.len() as u64) {
            return Err(invalid(format!(
                "tensor '{name}': {} bytes given, shape {shape:?} of {dtype} takes {expected:?}",
                data.len()
            )));
        }
        if !self.tensor_names.insert(name.clone()) {
            return Err(invalid(format!("duplicate tensor name '{name}'")));
        }
        self.tensors.push(PendingTensor {
            name,
            dtype,
            shape: shape.to_vec(),
            data,
        });
        Ok(())
    }

    fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find_map(|(k, v)| match v {
                OwnedValue::U32(a) if k == ALIGNMENT_KEY => Some(*a),
                _ => None,
            })
            .unwrap_or(DEFAULT_ALIGNMENT)
            .into()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let alignment = self.alignment();
        let mut out = Vec::new();
        out.extend_from_slice(GGUF_MAGIC);
        put_u32(&mut out, VERSION);
        put_u64(&mut out, self.tensors.len() as u64);
        put_u64(&mut out, self.metadata.len() as u64);
        for (key, value) in &self.metadata {
            put_string(&mut out, key);
            put_u32(&mut out, value.value_type().id());
            put_value(&mut out, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut out, &t.name);
            put_u32(&mut out, t.shape.len() as u32);
            for &d in &t.shape {
                put_u64(&mut out, d);
            }
            put_u32(&mut out, t.dtype.id());
            put_u64(&mut out, offset);
            offset += (t.data.len() as u64).next_multiple_of(alignment);
        }
        pad_to(&mut out, alignment);
        for t in &self.tensors {
            out.extend_from_slice(&t.data);
            pad_to(&mut out, alignment);
        }
        out
    }

    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.to_bytes())
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidArgument(message)
}

/// Arrays hold one element type; the file format has no way to say otherwise.
fn check_homogeneous(key: &str, value: &OwnedValue) -> Result<()> {
    if let OwnedValue::Array { elem_type, items } = value {
        for item in items {
            if item.value_type() != *elem_type {
                return Err(invalid(format!(
                    "key '{key}': array of {elem_type} holds a {}",
                    item.value_type()
                )));
            }
            check_homogeneous(key, item)?;
        }
    }
    Ok(())
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn pad_to(out: &mut Vec<u8>, alignment: u64) {
    let padded = (out.len() as u64).next_multiple_of(alignment);
    out.resize(padded as usize, 0);
}

/// A value without its type tag (array elements carry none of their own).
fn put_value(out: &mut Vec<u8>, value: &OwnedValue) {
    match value {
        OwnedValue::U8(v) => out.push(*v),
        OwnedValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        OwnedValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        OwnedValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        OwnedValue::U32(v) => put_u32(out, *v),
        OwnedValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        OwnedValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        OwnedValue::Bool(v) => out.push(u8::from(*v)),
        OwnedValue::String(s) => put_string(out, s),
        OwnedValue::Array { elem_type, items } => {
            put_u32(out, elem_type.id());
            put_u64(out, items.len() as u64);
            for item in items {
                put_value(out, item);
            }
        }
        OwnedValue::U64(v) => put_u64(out, *v),
        OwnedValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        OwnedValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}
