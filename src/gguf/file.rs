//! A parsed GGUF file over borrowed bytes: header, metadata, tensor infos, and checked
//! views of tensor data.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::limits::{
    DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MIN_METADATA_ENTRY_BYTES, MIN_TENSOR_INFO_BYTES,
};
use super::metadata::{MetadataEntry, read_entry};
use super::tensor_info::{TensorInfo, check_layout, read_tensor_info};
use super::typed::FromValue;
use super::value::Value;
use crate::error::{Error, GgufErrorKind, Result};
use crate::tensor::GgmlType;

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// A GGUF file parsed over `&'a [u8]`. Parsing checks every count, length, offset and
/// size against the bytes present, so every view handed out afterwards is in bounds.
#[derive(Debug)]
pub struct GgufFile<'a> {
    bytes: &'a [u8],
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<MetadataEntry<'a>>,
    key_index: HashMap<&'a str, usize>,
    tensors: Vec<TensorInfo<'a>>,
    tensor_index: HashMap<&'a str, usize>,
}

/// A tensor's declaration together with its bytes.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub info: TensorInfo<'a>,
    pub data: &'a [u8],
}

impl<'a> GgufFile<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<GgufFile<'a>> {
        let mut c = Cursor::new(bytes);
        let magic = c.take(4, "magic")?;
        if magic != GGUF_MAGIC {
            return Err(Cursor::error_at(
                0,
                GgufErrorKind::BadMagic {
                    found: magic.to_vec(),
                },
            )
            .into());
        }
        let version = read_version(&mut c)?;
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata entry count")?;
        ensure_room(&c, n_kv, n_tensors)?;

        let mut metadata = Vec::new();
        let mut key_index = HashMap::new();
        for _ in 0..n_kv {
            let entry = read_entry(&mut c)?;
            if key_index.insert(entry.key, metadata.len()).is_some() {
                let kind = GgufErrorKind::DuplicateKey(entry.key.to_owned());
                return Err(Cursor::error_at(entry.offset, kind).into());
            }
            metadata.push(entry);
        }
        let alignment = read_alignment(&metadata, &key_index)?;

        let tensors = (0..n_tensors)
            .map(|_| read_tensor_info(&mut c))
            .collect::<Result<Vec<_>>>()?;
        let data_offset = c.align_to(alignment);
        let data_len = (bytes.len() as u64).saturating_sub(data_offset);
        let tensor_index = check_layout(&tensors, alignment, data_len)?;

        Ok(GgufFile {
            bytes,
            version,
            alignment,
            data_offset,
            metadata,
            key_index,
            tensors,
            tensor_index,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Every metadata entry, in file order.
    pub fn metadata(&self) -> &[MetadataEntry<'a>] {
        &self.metadata
    }

    pub fn entry(&self, key: &str) -> Option<&MetadataEntry<'a>> {
        self.key_index.get(key).map(|&i| &self.metadata[i])
    }

    pub fn value(&self, key: &str) -> Option<&Value<'a>> {
        self.entry(key).map(|e| &e.value)
    }

    /// The value of `key` as `T`; `Ok(None)` when absent, an error naming the key when
    /// present with another type (integers convert when the value fits).
    pub fn get<'s, T: FromValue<'s>>(&'s self, key: &str) -> Result<Option<T>> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        T::from_value(&entry.value)
            .map(Some)
            .ok_or_else(|| Error::WrongKeyType {
                key: key.to_owned(),
                offset: entry.offset,
                expected: T::EXPECTED,
                found: describe(&entry.value),
            })
    }

    /// Like [`get`](Self::get), but a missing key is an error.
    pub fn require<'s, T: FromValue<'s>>(&'s self, key: &str) -> Result<T> {
        self.get(key)?.ok_or_else(|| Error::MissingKey {
            key: key.to_owned(),
        })
    }

    /// Every tensor info, in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor called `name` with its bytes.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'a>> {
        let info = *self.tensor_info(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_owned(),
        })?;
        let data = self.tensor_data(&info)?;
        Ok(TensorView { info, data })
    }

    /// The bytes of a tensor of this file.
    pub fn tensor_data(&self, info: &TensorInfo<'_>) -> Result<&'a [u8]> {
        let out_of_bounds = || {
            Cursor::error_at(
                info.info_offset(),
                GgufErrorKind::TensorOutOfBounds {
                    tensor: info.name().to_owned(),
                    start: info.offset(),
                    end: info.offset().saturating_add(info.n_bytes()),
                    len: self.file_len().saturating_sub(self.data_offset),
                },
            )
        };
        self.data_offset
            .checked_add(info.offset())
            .and_then(|start| slice_at(self.bytes, start, info.n_bytes()))
            .ok_or_else(|| out_of_bounds().into())
    }

    /// Number of tensors with each data type, in type-id order.
    pub fn dtype_counts(&self) -> Vec<(GgmlType, usize)> {
        GgmlType::ALL
            .iter()
            .map(|&t| (t, self.tensors.iter().filter(|i| i.dtype() == t).count()))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

fn read_version(c: &mut Cursor<'_>) -> Result<u32> {
    let offset = c.pos();
    let version = c.u32("version")?;
    match version {
        2 | 3 => Ok(version),
        v if matches!(v.swap_bytes(), 2 | 3) => Err(Error::Unsupported(format!(
            "big-endian GGUF (version field at byte {offset}); only little-endian files are read"
        ))),
        1 => Err(Error::Unsupported(format!(
            "GGUF version 1 (byte {offset}) is the pre-release format; convert the model again"
        ))),
        v => Err(Error::Unsupported(format!(
            "GGUF version {v} at byte {offset}; this build reads versions 2 and 3"
        ))),
    }
}

/// Fails when the declared counts could not fit in the bytes left even at the smallest
/// possible entry size, so no loop or allocation is ever sized by an impossible count.
fn ensure_room(c: &Cursor<'_>, n_kv: u64, n_tensors: u64) -> Result<()> {
    let needed = u128::from(n_kv) * u128::from(MIN_METADATA_ENTRY_BYTES)
        + u128::from(n_tensors) * u128::from(MIN_TENSOR_INFO_BYTES);
    if needed > u128::from(c.remaining()) {
        return Err(c
            .error(GgufErrorKind::Truncated {
                field: format!("{n_kv} metadata entries and {n_tensors} tensor infos"),
                needed: u64::try_from(needed).unwrap_or(u64::MAX),
                available: c.remaining(),
            })
            .into());
    }
    Ok(())
}

fn read_alignment(metadata: &[MetadataEntry<'_>], index: &HashMap<&str, usize>) -> Result<u64> {
    let Some(entry) = index.get(ALIGNMENT_KEY).map(|&i| &metadata[i]) else {
        return Ok(DEFAULT_ALIGNMENT.into());
    };
    let problem = match entry.value {
        Value::U32(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT => return Ok(a.into()),
        Value::U32(a) => {
            format!("{a} is not a power of two between 1 and {MAX_ALIGNMENT}")
        }
        ref other => format!("declared as {}, must be UINT32", other.value_type()),
    };
    Err(Cursor::error_at(entry.offset, GgufErrorKind::InvalidAlignment(problem)).into())
}

/// `len` bytes from `start`, or `None` when any of them lies outside `bytes`.
fn slice_at(bytes: &[u8], start: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

fn describe(value: &Value<'_>) -> String {
    match value {
        Value::Array(a) => format!("ARRAY of {} {}", a.len(), a.elem_type()),
        other => other.value_type().to_string(),
    }
}
