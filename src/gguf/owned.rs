//! A parsed GGUF file that owns its bytes: a memory map of a file on disk, or a buffer.

use std::io::Read;
use std::path::Path;

use memmap2::Mmap;
use self_cell::self_cell;

use super::file::GgufFile;
use crate::error::{Error, Result};
use crate::host_memory;
use crate::input_file::open_regular;

/// Where an [`OwnedGguf`]'s bytes live.
enum Backing {
    Mapped(Mmap),
    Buffer(Vec<u8>),
    Borrowed(&'static [u8]),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(map) => map,
            Backing::Buffer(buf) => buf,
            Backing::Borrowed(bytes) => bytes,
        }
    }
}

self_cell!(
    struct Cell {
        owner: Backing,
        #[covariant]
        dependent: GgufFile,
    }
);

/// A GGUF file parsed once and kept together with the bytes its views borrow.
pub struct OwnedGguf(Cell);

impl OwnedGguf {
    /// Maps the file at `path` and parses it. The tensor data stays on disk until read.
    pub fn open(path: &Path) -> Result<OwnedGguf> {
        let (file, len) = open_regular(path)?;
        // An empty file cannot be mapped on every platform; it fails parsing either way.
        if len == 0 {
            return OwnedGguf::from_buffer(Vec::new());
        }
        // SAFETY: the map is read-only and private to this process. Another process
        // truncating or rewriting the file while it is mapped is outside what any mapping
        // reader can defend against; llama.cpp and every mmap-based loader share this
        // precondition, and `rf_model_params.use_mmap = false` avoids it.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::io(path, source))?;
        Self::from_backing(Backing::Mapped(map))
    }

    /// Parses a file held in memory.
    pub fn from_buffer(bytes: Vec<u8>) -> Result<OwnedGguf> {
        Self::from_backing(Backing::Buffer(bytes))
    }

    /// Parses bytes that outlive the parsed file (for a C host's buffer that it promises
    /// to keep valid and unchanged until the model is freed).
    pub fn from_static(bytes: &'static [u8]) -> Result<OwnedGguf> {
        Self::from_backing(Backing::Borrowed(bytes))
    }

    /// Reads the whole file at `path` into memory and parses it (no memory map). The
    /// buffer is reserved fallibly: a file larger than the memory left is an error.
    pub fn read(path: &Path) -> Result<OwnedGguf> {
        let (file, len) = open_regular(path)?;
        let size = usize::try_from(len).map_err(|_| {
            Error::OutOfMemory(format!(
                "the model file's {len} bytes exceed the address space"
            ))
        })?;
        let mut bytes = Vec::new();
        host_memory::reserve(&mut bytes, size, "the model file read into memory")?;
        // No more than the length checked: a file that grows while it is read is cut there.
        file.take(len)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::io(path, source))?;
        Self::from_buffer(bytes)
    }

    fn from_backing(backing: Backing) -> Result<OwnedGguf> {
        Cell::try_new(backing, |b| GgufFile::parse(b.bytes())).map(OwnedGguf)
    }

    pub fn file(&self) -> &GgufFile<'_> {
        self.0.borrow_dependent()
    }
}
