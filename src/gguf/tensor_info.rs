//! Tensor infos: name, shape, type and offset, each checked on its own and then together
//! against the data section (alignment, bounds, overlap).

use std::collections::HashMap;

use super::cursor::Cursor;
use super::limits::{MAX_TENSOR_DIMS, MAX_TENSOR_NAME_LEN};
use crate::error::{Error, GgufErrorKind};
use crate::tensor::{GgmlType, TypeIdLookup};

/// One tensor as the file declares it. The shape is in GGML order: `shape()[0]` is the
/// number of values in a row (the fastest-varying dimension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    name: &'a str,
    dtype: GgmlType,
    dims: [u64; MAX_TENSOR_DIMS as usize],
    n_dims: usize,
    offset: u64,
    n_bytes: u64,
    info_offset: u64,
}

impl<'a> TensorInfo<'a> {
    pub fn name(&self) -> &'a str {
        self.name
    }

    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    pub fn shape(&self) -> &[u64] {
        &self.dims[..self.n_dims]
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Offset of the data relative to the start of the data section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }

    /// Byte offset of this tensor's info record in the file.
    pub fn info_offset(&self) -> u64 {
        self.info_offset
    }

    fn error(&self, kind: GgufErrorKind) -> Error {
        Cursor::error_at(self.info_offset, kind).into()
    }
}

pub(crate) fn read_tensor_info<'a>(c: &mut Cursor<'a>) -> Result<TensorInfo<'a>, Error> {
    let info_offset = c.pos();
    let name = c.string("tensor name", MAX_TENSOR_NAME_LEN)?;
    let tensor_error = |kind| -> Error { Cursor::error_at(info_offset, kind).into() };

    let n_dims = c.u32(name)?;
    if n_dims == 0 || n_dims > MAX_TENSOR_DIMS {
        return Err(tensor_error(GgufErrorKind::TensorRank {
            tensor: name.to_owned(),
            n_dims,
            max: MAX_TENSOR_DIMS,
        }));
    }
    let mut dims = [1u64; MAX_TENSOR_DIMS as usize];
    for (index, dim) in dims.iter_mut().take(n_dims as usize).enumerate() {
        let value = c.u64(name)?;
        // ggml holds dimensions as i64: a value above i64::MAX is a negative size.
        if value == 0 || value > i64::MAX as u64 {
            return Err(tensor_error(GgufErrorKind::TensorDim {
                tensor: name.to_owned(),
                index,
                value,
            }));
        }
        *dim = value;
    }
    let type_offset = c.pos();
    let type_id = c.u32(name)?;
    let dtype = match GgmlType::from_id(type_id) {
        TypeIdLookup::Known(t) => t,
        TypeIdLookup::Removed(old) => {
            return Err(Error::Unsupported(format!(
                "tensor '{name}' at byte {type_offset} has type {old} (id {type_id}), which ggml \
                 removed; convert the model again"
            )));
        }
        TypeIdLookup::Unknown => {
            return Err(Error::Unsupported(format!(
                "tensor '{name}' at byte {type_offset} has unknown type id {type_id}"
            )));
        }
    };
    let offset = c.u64(name)?;

    let size_error = |problem: String| {
        tensor_error(GgufErrorKind::TensorSize {
            tensor: name.to_owned(),
            problem,
        })
    };
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| size_error(format!("element count of shape {dims:?} overflows")))?;
    if dims[0] % dtype.block_size() != 0 {
        return Err(size_error(format!(
            "row length {} is not a multiple of the {dtype} block size {}",
            dims[0],
            dtype.block_size()
        )));
    }
    let n_bytes = dtype.bytes_for(n_elements).ok_or_else(|| {
        size_error(format!(
            "byte size of {n_elements} {dtype} values overflows"
        ))
    })?;

    Ok(TensorInfo {
        name,
        dtype,
        dims,
        n_dims: n_dims as usize,
        offset,
        n_bytes,
        info_offset,
    })
}

/// Checks the tensors against each other and against a data section of `data_len` bytes:
/// unique names, aligned offsets, every byte inside the section, no two tensors sharing a
/// byte. Returns the name index.
pub(crate) fn check_layout<'a>(
    tensors: &[TensorInfo<'a>],
    alignment: u64,
    data_len: u64,
) -> Result<HashMap<&'a str, usize>, Error> {
    let mut index = HashMap::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if index.insert(t.name, i).is_some() {
            return Err(t.error(GgufErrorKind::DuplicateTensor(t.name.to_owned())));
        }
        if t.offset % alignment != 0 {
            return Err(t.error(GgufErrorKind::UnalignedTensor {
                tensor: t.name.to_owned(),
                offset: t.offset,
                alignment,
            }));
        }
        let end = t.offset.checked_add(t.n_bytes);
        if end.is_none_or(|end| end > data_len) {
            return Err(t.error(GgufErrorKind::TensorOutOfBounds {
                tensor: t.name.to_owned(),
                start: t.offset,
                end: end.unwrap_or(u64::MAX),
                len: data_len,
            }));
        }
    }
    let mut by_offset: Vec<&TensorInfo<'a>> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        // Bounds were checked above, so the sum cannot overflow.
        if first.offset + first.n_bytes > second.offset {
            return Err(second.error(GgufErrorKind::OverlappingTensors {
                first: first.name.to_owned(),
                second: second.name.to_owned(),
            }));
        }
    }
    Ok(index)
}
