//! GGUF metadata values: the type tags, borrowed values as read from a file, and owned
//! values as given to the writer.

use std::fmt;

/// The value type tag stored before every metadata value and array element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    pub fn from_id(id: u32) -> Option<ValueType> {
        Self::ALL.get(usize::try_from(id).ok()?).copied()
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// Bytes of one value of this type, or `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The name gguf-py uses (`UINT32`, `STRING`, …).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value borrowed from the file's bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a str),
    Array(ArrayView<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array value. Elements of fixed size stay as the file's bytes; strings and nested
/// arrays were validated and indexed when the file was parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayView<'a> {
    pub(crate) elem_type: ValueType,
    pub(crate) items: ArrayItems<'a>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ArrayItems<'a> {
    /// Little-endian elements of `elem_type.fixed_size()` bytes each.
    Fixed(&'a [u8]),
    Strings(Vec<&'a str>),
    Arrays(Vec<ArrayView<'a>>),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as a signed integer wide enough for every GGUF integer type.
    pub fn as_integer(&self) -> Option<i128> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::I8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::U64(v) => Some(v.into()),
            Value::I64(v) => Some(v.into()),
            _ => None,
        }
    }

    pub fn to_owned_value(&self) -> OwnedValue {
        match self {
            Value::U8(v) => OwnedValue::U8(*v),
            Value::I8(v) => OwnedValue::I8(*v),
            Value::U16(v) => OwnedValue::U16(*v),
            Value::I16(v) => OwnedValue::I16(*v),
            Value::U32(v) => OwnedValue::U32(*v),
            Value::I32(v) => OwnedValue::I32(*v),
            Value::F32(v) => OwnedValue::F32(*v),
            Value::Bool(v) => OwnedValue::Bool(*v),
            Value::String(v) => OwnedValue::String((*v).to_owned()),
            Value::Array(a) => OwnedValue::Array {
                elem_type: a.elem_type,
                items: a.iter().map(|v| v.to_owned_value()).collect(),
            },
            Value::U64(v) => OwnedValue::U64(*v),
            Value::I64(v) => OwnedValue::I64(*v),
            Value::F64(v) => OwnedValue::F64(*v),
        }
    }
}

impl<'a> ArrayView<'a> {
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    pub fn len(&self) -> usize {
        match &self.items {
            ArrayItems::Fixed(bytes) => match self.elem_type.fixed_size() {
                Some(size) => bytes.len() / size,
                None => 0,
            },
            ArrayItems::Strings(s) => s.len(),
            ArrayItems::Arrays(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as strings, or `None` when this is not an array of strings.
    pub fn strings(&self) -> Option<&[&'a str]> {
        match &self.items {
            ArrayItems::Strings(s) => Some(s),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        let fixed_chunks = match (&self.items, self.elem_type.fixed_size()) {
            (ArrayItems::Fixed(bytes), Some(size)) => Some(bytes.chunks_exact(size)),
            _ => None,
        };
        let fixed = fixed_chunks
            .into_iter()
            .flatten()
            .map(|chunk| decode_fixed(self.elem_type, chunk));
        let strings = self
            .strings()
            .unwrap_or(&[])
            .iter()
            .map(|s| Value::String(s));
        let arrays = match &self.items {
            ArrayItems::Arrays(a) => a.as_slice(),
            _ => &[],
        }
        .iter()
        .map(|a| Value::Array(a.clone()));
        fixed.flatten().chain(strings).chain(arrays)
    }
}

/// Decodes one little-endian value of a fixed-size type; `None` when `bytes` has the
/// wrong length or the type is not fixed-size.
pub(crate) fn decode_fixed<'a>(elem_type: ValueType, bytes: &[u8]) -> Option<Value<'a>> {
    Some(match elem_type {
        ValueType::U8 => Value::U8(u8::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::I8 => Value::I8(i8::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::Bool => Value::Bool(u8::from_le_bytes(bytes.try_into().ok()?) != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::String | ValueType::Array => return None,
    })
}

/// A metadata value owned by the caller, as written by [`crate::gguf::GgufWriter`].
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Every item must have type `elem_type`; the writer checks.
    Array {
        elem_type: ValueType,
        items: Vec<OwnedValue>,
    },
    U64(u64),
    I64(i64),
    F64(f64),
}

impl OwnedValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            OwnedValue::U8(_) => ValueType::U8,
            OwnedValue::I8(_) => ValueType::I8,
            OwnedValue::U16(_) => ValueType::U16,
            OwnedValue::I16(_) => ValueType::I16,
            OwnedValue::U32(_) => ValueType::U32,
            OwnedValue::I32(_) => ValueType::I32,
            OwnedValue::F32(_) => ValueType::F32,
            OwnedValue::Bool(_) => ValueType::Bool,
            OwnedValue::String(_) => ValueType::String,
            OwnedValue::Array { .. } => ValueType::Array,
            OwnedValue::U64(_) => ValueType::U64,
            OwnedValue::I64(_) => ValueType::I64,
            OwnedValue::F64(_) => ValueType::F64,
        }
    }

    /// An array of strings, the commonest array in model files (token lists, merges).
    pub fn string_array<S: Into<String>>(items: impl IntoIterator<Item = S>) -> OwnedValue {
        OwnedValue::Array {
            elem_type: ValueType::String,
            items: items
                .into_iter()
                .map(|s| OwnedValue::String(s.into()))
                .collect(),
        }
    }

    pub fn f32_array(items: impl IntoIterator<Item = f32>) -> OwnedValue {
        OwnedValue::Array {
            elem_type: ValueType::F32,
            items: items.into_iter().map(OwnedValue::F32).collect(),
        }
    }

    pub fn i32_array(items: impl IntoIterator<Item = i32>) -> OwnedValue {
        OwnedValue::Array {
            elem_type: ValueType::I32,
            items: items.into_iter().map(OwnedValue::I32).collect(),
        }
    }
}

impl fmt::Display for Value<'_> {
    /// Scalars as text; arrays as their type and length, with the first few items.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN_ITEMS: usize = 8;
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(v) => write!(f, "{v:?}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Array(a) => {
                write!(f, "[{}; {}] [", a.elem_type, a.len())?;
                for (i, item) in a.iter().take(SHOWN_ITEMS).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                if a.len() > SHOWN_ITEMS {
                    f.write_str(", …")?;
                }
                f.write_str("]")
            }
        }
    }
}
