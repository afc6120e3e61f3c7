//! Caps on what a GGUF file may declare. Real models sit far below each one; a file that
//! exceeds one is rejected before anything sized by it is allocated or read.

/// Longest metadata key, in bytes.
pub const MAX_KEY_LEN: u64 = 64 * 1024;
/// Longest string value (chat templates are the longest seen, tens of KiB).
pub const MAX_STRING_LEN: u64 = 16 * 1024 * 1024;
/// Most elements in one array (vocabularies and merge lists reach a few hundred thousand).
pub const MAX_ARRAY_LEN: u64 = 1 << 26;
/// Deepest nesting of arrays inside arrays; bounds the parser's recursion.
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// Longest tensor name, in bytes.
pub const MAX_TENSOR_NAME_LEN: u64 = 256;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_TENSOR_DIMS: u32 = 4;
/// Largest `general.alignment`.
pub const MAX_ALIGNMENT: u32 = 64 * 1024;
/// The alignment a file gets when it declares none.
pub const DEFAULT_ALIGNMENT: u32 = 32;

/// The fewest bytes one metadata entry can take: key length, a one-byte key, the type
/// tag and a one-byte value.
pub const MIN_METADATA_ENTRY_BYTES: u64 = 8 + 1 + 4 + 1;
/// The fewest bytes one tensor info can take: name length, a one-byte name, the rank,
/// one dimension, the type id and the offset.
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;
