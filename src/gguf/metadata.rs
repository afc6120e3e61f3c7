//! Reading the metadata section: keys and typed values, arrays nested to a bounded depth.

use super::cursor::Cursor;
use super::limits::{MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_KEY_LEN, MAX_STRING_LEN};
use super::value::{ArrayItems, ArrayView, Value, ValueType, decode_fixed};
use crate::error::{GgufError, GgufErrorKind};

/// One key/value pair and where it starts in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataEntry<'a> {
    pub key: &'a str,
    pub value: Value<'a>,
    /// Byte offset of the entry (its key length field).
    pub offset: u64,
}

pub(crate) fn read_entry<'a>(c: &mut Cursor<'a>) -> Result<MetadataEntry<'a>, GgufError> {
    let offset = c.pos();
    let key = c.string("metadata key", MAX_KEY_LEN)?;
    if key.is_empty() {
        return Err(Cursor::error_at(offset, GgufErrorKind::EmptyKey));
    }
    let value = read_value(c, key, 0)?;
    Ok(MetadataEntry { key, value, offset })
}

fn read_value_type(c: &mut Cursor<'_>, key: &str) -> Result<ValueType, GgufError> {
    let offset = c.pos();
    let type_id = c.u32(key)?;
    ValueType::from_id(type_id).ok_or_else(|| {
        Cursor::error_at(
            offset,
            GgufErrorKind::InvalidValueType {
                field: key.to_owned(),
                type_id,
            },
        )
    })
}

/// A type tag followed by a value of that type.
fn read_value<'a>(c: &mut Cursor<'a>, key: &str, depth: u32) -> Result<Value<'a>, GgufError> {
    let value_type = read_value_type(c, key)?;
    read_value_of(c, key, value_type, depth)
}

fn read_value_of<'a>(
    c: &mut Cursor<'a>,
    key: &str,
    value_type: ValueType,
    depth: u32,
) -> Result<Value<'a>, GgufError> {
    match value_type {
        ValueType::String => Ok(Value::String(c.string(key, MAX_STRING_LEN)?)),
        ValueType::Array => Ok(Value::Array(read_array(c, key, depth + 1)?)),
        fixed => {
            let size = fixed.fixed_size().unwrap_or(0) as u64;
            let bytes = c.take(size, key)?;
            // `take` returned exactly `size` bytes of a fixed-size type, so this decodes.
            decode_fixed(fixed, bytes).ok_or_else(|| {
                c.error(GgufErrorKind::InvalidValueType {
                    field: key.to_owned(),
                    type_id: fixed.id(),
                })
            })
        }
    }
}

/// An array: element type, u64 count, elements. Counts are checked against the bytes
/// left before any element is read or any vector is sized by them.
fn read_array<'a>(c: &mut Cursor<'a>, key: &str, depth: u32) -> Result<ArrayView<'a>, GgufError> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(c.error(GgufErrorKind::NestingTooDeep {
            key: key.to_owned(),
            limit: MAX_ARRAY_DEPTH,
        }));
    }
    let elem_type = read_value_type(c, key)?;
    let count_offset = c.pos();
    let count = c.u64(key)?;
    if count > MAX_ARRAY_LEN {
        return Err(Cursor::error_at(
            count_offset,
            GgufErrorKind::LimitExceeded {
                field: format!("{key}: array length"),
                value: count,
                limit: MAX_ARRAY_LEN,
            },
        ));
    }
    // Strings take at least their 8-byte length, nested arrays their type and count.
    let min_elem_bytes = match elem_type {
        ValueType::String => 8,
        ValueType::Array => 4 + 8,
        fixed => fixed.fixed_size().unwrap_or(1) as u64,
    };
    // `count <= MAX_ARRAY_LEN`, so this product cannot overflow.
    let min_bytes = count * min_elem_bytes;
    if min_bytes > c.remaining() {
        return Err(c.error(GgufErrorKind::Truncated {
            field: format!("{key}: {count} array elements of type {elem_type}"),
            needed: min_bytes,
            available: c.remaining(),
        }));
    }
    let items = match elem_type {
        ValueType::String => ArrayItems::Strings(
            (0..count)
                .map(|_| c.string(key, MAX_STRING_LEN))
                .collect::<Result<_, _>>()?,
        ),
        ValueType::Array => ArrayItems::Arrays(
            (0..count)
                .map(|_| read_array(c, key, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        _ => ArrayItems::Fixed(c.take(min_bytes, key)?),
    };
    Ok(ArrayView { elem_type, items })
}
