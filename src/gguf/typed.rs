//! Conversions from metadata values to the Rust types callers ask for.

use super::value::{ArrayView, Value};

/// A Rust type a metadata value can be read as. Integers convert between widths when the
/// value fits; nothing else converts.
/// `'v` is the borrow of the parsed file; strings and arrays are borrowed for it.
pub trait FromValue<'v>: Sized {
    /// What the error says was expected.
    const EXPECTED: &'static str;

    fn from_value(value: &'v Value<'v>) -> Option<Self>;
}

macro_rules! integer_from_value {
    ($($t:ty => $name:literal),*) => {$(
        impl<'v> FromValue<'v> for $t {
            const EXPECTED: &'static str = $name;

            fn from_value(value: &'v Value<'v>) -> Option<Self> {
                value.as_integer().and_then(|v| <$t>::try_from(v).ok())
            }
        }
    )*};
}

integer_from_value!(
    u8 => "an integer in 0..=255",
    u16 => "an integer in 0..=65535",
    u32 => "an integer in 0..=2^32-1",
    u64 => "a non-negative integer",
    i32 => "an integer in -2^31..2^31",
    i64 => "an integer in -2^63..2^63",
    usize => "a non-negative integer"
);

impl<'v> FromValue<'v> for f32 {
    const EXPECTED: &'static str = "FLOAT32";

    fn from_value(value: &'v Value<'v>) -> Option<Self> {
        match *value {
            Value::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl<'v> FromValue<'v> for f64 {
    const EXPECTED: &'static str = "FLOAT32 or FLOAT64";

    fn from_value(value: &'v Value<'v>) -> Option<Self> {
        match *value {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }
}

impl<'v> FromValue<'v> for bool {
    const EXPECTED: &'static str = "BOOL";

    fn from_value(value: &'v Value<'v>) -> Option<Self> {
        match *value {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }
}

impl<'v> FromValue<'v> for &'v str {
    const EXPECTED: &'static str = "STRING";

    fn from_value(value: &'v Value<'v>) -> Option<Self> {
        match *value {
            Value::String(v) => Some(v),
            _ => None,
        }
    }
}

impl<'v> FromValue<'v> for &'v ArrayView<'v> {
    const EXPECTED: &'static str = "ARRAY";

    fn from_value(value: &'v Value<'v>) -> Option<Self> {
        match value {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}
