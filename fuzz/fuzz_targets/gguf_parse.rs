//! The GGUF reader on any bytes: it must return an error or a file whose every metadata
//! value and tensor can be read, never panic or read out of bounds. A file it accepts
//! must survive a trip through the writer: written again and read back, it holds the
//! same metadata and tensors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue};
use rocmforge::tensor::GgmlType;

/// What a file holds, in a form two files can be compared by: keys with their values,
/// and tensors with their type, shape and bytes.
#[derive(Debug, PartialEq)]
struct Contents {
    metadata: Vec<(String, String)>,
    tensors: Vec<(String, GgmlType, Vec<u64>, Vec<u8>)>,
}

/// Reads every value and every tensor's bytes; `None` when a tensor's bytes are not in
/// the file (the reader reports that when the tensor is asked for, not at parse time).
fn contents(file: &GgufFile<'_>) -> Option<(Contents, Vec<OwnedValue>)> {
    let mut values = Vec::new();
    let mut metadata = Vec::new();
    for entry in file.metadata() {
        let value = entry.value.to_owned_value();
        // Debug text compares floats bit for bit (NaN equals NaN).
        metadata.push((entry.key.to_owned(), format!("{value:?}")));
        values.push(value);
    }
    let mut tensors = Vec::new();
    for info in file.tensors() {
        let data = file.tensor_data(info).ok()?;
        assert_eq!(data.len() as u64, info.n_bytes(), "{}", info.name());
        let view = file.tensor(info.name()).ok()?;
        assert_eq!(view.data, data, "{}: by name and by info", info.name());
        tensors.push((
            info.name().to_owned(),
            info.dtype(),
            info.shape().to_vec(),
            data.to_vec(),
        ));
    }
    let _ = file.dtype_counts();
    Some((Contents { metadata, tensors }, values))
}

/// The same contents written by the library's writer, or `None` where the writer is
/// stricter than the reader (an empty key, say).
fn rewrite(contents: &Contents, values: Vec<OwnedValue>) -> Option<Vec<u8>> {
    let mut w = GgufWriter::new();
    for ((key, _), value) in contents.metadata.iter().zip(values) {
        w.add_metadata(key.as_str(), value).ok()?;
    }
    for (name, dtype, shape, data) in &contents.tensors {
        w.add_tensor(name.as_str(), *dtype, shape, data.clone())
            .ok()?;
    }
    Some(w.to_bytes())
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::parse(data) else {
        return;
    };
    let Some((first, values)) = contents(&file) else {
        return;
    };
    let Some(bytes) = rewrite(&first, values) else {
        return;
    };
    let again = GgufFile::parse(&bytes).expect("the writer's output parses");
    let (second, _) = contents(&again).expect("the writer's tensors are in its file");
    assert_eq!(first, second, "a file changed through the writer");
});
