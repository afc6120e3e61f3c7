//! The one internal error type. The C ABI maps each variant to a status code; nothing
//! below `ffi/` knows about status codes.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file breaks the GGUF format or its own declarations.
    #[error(transparent)]
    InvalidGguf(#[from] GgufError),

    /// A metadata key the model needs is absent.
    #[error("model is missing the required key '{key}'")]
    MissingKey { key: String },

    /// A metadata key holds a value of another type than its meaning requires.
    #[error("key '{key}' at byte {offset}: expected {expected}, found {found}")]
    WrongKeyType {
        key: String,
        offset: u64,
        expected: &'static str,
        found: String,
    },

    /// The model's declarations contradict each other or what its architecture needs
    /// (a tensor shape against the hyperparameters, a zero head count).
    #[error("invalid model: {0}")]
    InvalidModel(String),

    /// The tokenizer vocabulary in the model's metadata is inconsistent (a token list and
    /// its scores of different lengths, a merge naming an unknown token, a malformed byte
    /// token).
    #[error("invalid vocabulary: {0}")]
    InvalidVocab(String),

    /// A tensor the model needs is absent.
    #[error("model has no tensor named '{name}'")]
    MissingTensor { name: String },

    /// Well-formed input that asks for something this build does not do.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A cancellation request stopped the call; nothing was changed.
    #[error("cancelled")]
    Cancelled,

    /// A caller passed a value that can never be valid (wrong length, out of range).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The text holds a byte that the vocabulary has no token for: a byte-level BPE
    /// vocabulary without that byte, a SentencePiece one without its byte-fallback token
    /// for a character that is no token. `offset` is the byte's in the caller's text.
    #[error(
        "text byte 0x{byte:02X} at offset {offset} (in U+{:04X}) has no token in this vocabulary",
        u32::from(*.character)
    )]
    NoTokenForByte {
        byte: u8,
        offset: usize,
        character: char,
    },

    /// Host memory (or another host resource a call sizes, such as worker threads) could
    /// not be had: what was being made and how many bytes it asked for. Nothing changed.
    #[error("out of memory: {0}")]
    OutOfMemory(String),

    /// The KV cache has no room for the tokens asked for; the cache is unchanged.
    #[error("context full: {0}")]
    ContextFull(String),

    /// A GPU runtime could not be started or a device call failed: which library, symbol
    /// or call, and the vendor's message.
    #[error("device error: {0}")]
    Device(String),

    /// The device has no memory left for an allocation; nothing was changed and a smaller
    /// allocation may still succeed.
    #[error("device out of memory: {0}")]
    DeviceOutOfMemory(String),

    /// The device's context is corrupted (a kernel faulted, an uncorrectable ECC error):
    /// sticky, every later call on that device fails with it.
    #[error("device lost: {0}")]
    DeviceLost(String),

    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O failure on the file at `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A structural fault in a GGUF file, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GGUF at byte {offset}: {kind}")]
pub struct GgufError {
    pub offset: u64,
    pub kind: GgufErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufErrorKind {
    #[error("bad magic {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: Vec<u8> },

    #[error("{field}: needs {needed} bytes, only {available} remain")]
    Truncated {
        field: String,
        needed: u64,
        available: u64,
    },

    #[error("{field}: {value} exceeds the limit of {limit}")]
    LimitExceeded {
        field: String,
        value: u64,
        limit: u64,
    },

    #[error("{field}: size overflows")]
    Overflow { field: String },

    #[error("{field}: not valid UTF-8")]
    InvalidUtf8 { field: String },

    #[error("metadata key is empty")]
    EmptyKey,

    #[error("duplicate metadata key '{0}'")]
    DuplicateKey(String),

    #[error("{field}: value type {type_id} is not a GGUF type")]
    InvalidValueType { field: String, type_id: u32 },

    #[error("key '{key}': arrays nested deeper than {limit}")]
    NestingTooDeep { key: String, limit: u32 },

    #[error("general.alignment: {0}")]
    InvalidAlignment(String),

    #[error("tensor '{tensor}': {n_dims} dimensions, expected 1 to {max}")]
    TensorRank {
        tensor: String,
        n_dims: u32,
        max: u32,
    },

    #[error("tensor '{tensor}': dimension {index} is {value}, expected 1 to 2^63-1")]
    TensorDim {
        tensor: String,
        index: usize,
        value: u64,
    },

    #[error("tensor '{tensor}': {problem}")]
    TensorSize { tensor: String, problem: String },

    #[error("tensor '{tensor}': offset {offset} is not a multiple of the alignment {alignment}")]
    UnalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error(
        "tensor '{tensor}': bytes {start}..{end} lie past the end of the data section ({len} bytes)"
    )]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        len: u64,
    },

    #[error("tensors '{first}' and '{second}' overlap")]
    OverlappingTensors { first: String, second: String },

    #[error("duplicate tensor name '{0}'")]
    DuplicateTensor(String),
}
