//! GGUF: the model file format. The reader trusts nothing in the file: every count,
//! length, offset and size is checked for overflow and against the bytes present before
//! it is used. The writer builds files for tests and tools.

mod cursor;
mod file;
pub mod limits;
mod metadata;
mod owned;
pub mod synthetic;
mod tensor_info;
mod typed;
mod value;
mod writer;

pub use file::{ALIGNMENT_KEY, GGUF_MAGIC, GgufFile, TensorView};
pub use metadata::MetadataEntry;
pub use owned::OwnedGguf;
pub use tensor_info::TensorInfo;
pub use typed::FromValue;
pub use value::{ArrayView, OwnedValue, Value, ValueType};
pub use writer::GgufWriter;
