//! `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False,
//! indent=indent, separators=separators, sort_keys=sort_keys)`. Unlike minijinja's own
//! `tojson`, it keeps `<`, `>`, `&` and `'` as they are and writes Python's separators
//! (`", "` and `": "`, or `","` and `": "` when indenting) and Python's floats.

use std::io::{self, Write};

use minijinja::value::{Kwargs, Value};
use minijinja::{Error as JinjaError, ErrorKind};
use serde::Serialize;
use serde_json::ser::Formatter;

/// The keyword arguments of `tojson` that change what it writes.
pub(super) struct Options {
    /// What each level of nesting is indented by; `None` writes everything on one line.
    indent: Option<Indent>,
    item_separator: String,
    key_separator: String,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl Options {
    pub(super) fn from_kwargs(kwargs: &Kwargs) -> Result<Options, JinjaError> {
        let indent = match kwargs.get::<Option<Value>>("indent")? {
            None => None,
            Some(v) if v.is_none() => None,
            Some(v) => Some(match (v.as_str(), v.as_i64()) {
                (Some(text), _) => Indent::Text(text.to_owned()),
                // Python indents by `' ' * n`: nothing for n below one.
                (None, Some(n)) if n < 1 => Indent::Spaces(0),
                (None, Some(n)) => Indent::Spaces(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => return Err(invalid("tojson: indent must be an integer or a string")),
            }),
        };
        let (item_separator, key_separator) = match kwargs.get::<Option<Value>>("separators")? {
            Some(v) if !v.is_none() => {
                let parts: Vec<Value> = v.try_iter()?.collect();
                match parts.as_slice() {
                    [item, key] => match (item.as_str(), key.as_str()) {
                        (Some(item), Some(key)) => (item.to_owned(), key.to_owned()),
                        _ => return Err(invalid("tojson: separators must be strings")),
                    },
                    _ => return Err(invalid("tojson: separators must be a pair")),
                }
            }
            _ if indent.is_some() => (",".to_owned(), ": ".to_owned()),
            _ => (", ".to_owned(), ": ".to_owned()),
        };
        let options = Options {
            indent,
            item_separator,
            key_separator,
            ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
            sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        };
        kwargs.assert_all_used()?;
        Ok(options)
    }
}

/// What `tojson`'s `indent` asks each level of nesting to be indented by. A number of
/// spaces is written as the lines need them, never made up front: a value without lines
/// (a number, an empty list) costs nothing however wide the indent.
enum Indent {
    Spaces(usize),
    Text(String),
}

impl Indent {
    /// `levels` indents, written to `out`.
    fn write<W: ?Sized + Write>(&self, out: &mut W, levels: usize) -> io::Result<()> {
        match self {
            Indent::Text(text) => (0..levels).try_for_each(|_| out.write_all(text.as_bytes())),
            Indent::Spaces(n) => {
                const SPACES: [u8; 64] = [b' '; 64];
                let mut left = n.saturating_mul(levels);
                while left > 0 {
                    let now = left.min(SPACES.len());
                    out.write_all(&SPACES[..now])?;
                    left -= now;
                }
                Ok(())
            }
        }
    }
}

fn invalid(message: &'static str) -> JinjaError {
    JinjaError::new(ErrorKind::InvalidOperation, message)
}

/// Why `dumps` wrote nothing.
pub(super) enum DumpError {
    /// The text would be longer than the cap.
    TooLong,
    /// The value has no JSON form.
    Invalid(String),
}

/// `value` as `json.dumps` writes it with `options`, failing once the text passes
/// `max_bytes`.
pub(super) fn dumps(
    value: &Value,
    options: &Options,
    max_bytes: usize,
) -> Result<String, DumpError> {
    let mut out = Capped {
        text: Vec::new(),
        max_bytes,
    };
    let formatter = Python {
        options,
        level: 0,
        has_value: false,
    };
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    let written = if options.sort_keys {
        let tree = serde_json::to_value(value).map_err(|e| DumpError::Invalid(e.to_string()))?;
        sorted(tree).serialize(&mut serializer)
    } else {
        value.serialize(&mut serializer)
    };
    match written {
        Ok(()) => String::from_utf8(out.text).map_err(|e| DumpError::Invalid(e.to_string())),
        Err(e) if e.is_io() => Err(DumpError::TooLong),
        Err(e) => Err(DumpError::Invalid(e.to_string())),
    }
}

/// `value` with the keys of every map in order (a map keeps the order it is built in).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            J::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        J::Array(items) => J::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A buffer that refuses to grow past `max_bytes`.
struct Capped {
    text: Vec<u8>,
    max_bytes: usize,
}

impl Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.text.len().saturating_add(bytes.len()) > self.max_bytes {
            return Err(io::Error::other("tojson text too long"));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// serde_json's writer with Python's separators, indentation, floats and (with
/// `ensure_ascii`) escapes.
struct Python<'o> {
    options: &'o Options,
    level: usize,
    /// Whether the innermost open list or map has an item yet.
    has_value: bool,
}

impl Python<'_> {
    fn open<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(out)?;
        }
        out.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        if !first {
            out.write_all(self.options.item_separator.as_bytes())?;
        }
        self.new_line(out)
    }

    fn new_line<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        if let Some(indent) = &self.options.indent {
            out.write_all(b"\n")?;
            indent.write(out, self.level)?;
        }
        Ok(())
    }
}

impl Formatter for Python<'_> {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.item(out, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.item(out, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(self.options.key_separator.as_bytes())
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn write_f64<W: ?Sized + Write>(&mut self, out: &mut W, value: f64) -> io::Result<()> {
        out.write_all(python_float(value).as_bytes())
    }

    fn write_f32<W: ?Sized + Write>(&mut self, out: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(out, f64::from(value))
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !self.options.ensure_ascii {
            return out.write_all(fragment.as_bytes());
        }
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                out.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// A finite float as Python's `repr` writes it: the shortest text that reads back as
/// the same float, in positional notation for exponents from -4 to 15 (`1.0`, `0.0001`)
/// and in scientific notation with a signed two-digit exponent otherwise (`1e+16`).
fn python_float(value: f64) -> String {
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let positional = value.to_string();
        if positional.contains('.') {
            positional
        } else {
            positional + ".0"
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (value, python) in [
            (1.0, "1.0"),
            (2.5, "2.5"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e100, "1.2345e+100"),
            (0.1, "0.1"),
        ] {
            assert_eq!(python_float(value), python, "{value}");
        }
    }
}
