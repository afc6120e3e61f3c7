//! A sequence's saved state: the blob [`Context::state_seq_save`] writes and
//! [`Context::state_seq_load`] reads back, into any sequence of a context of the same model.
//!
//! Layout, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `RFSEQST` and a zero byte |
//! | 4 | format version ([`VERSION`]) |
//! | 4 | KV type (ggml's type id: 1 F16, 0 F32, 8 Q8_0) |
//! | 8 | model fingerprint ([`model_fingerprint`]) |
//! | 4 + 4 | layers, K/V values per token and layer |
//! | 4 | tokens |
//! | 4 | window tokens: the last tokens whose sliding-window layers' K/V is held |
//! | 8 per token | token id, position (i32 each), in position order |
//! | per row | per layer, its tokens' K rows, then their V rows, as the KV type stores them: every token's in a global layer, the window tokens' in a sliding-window layer |
//! | 8 | checksum: FNV-1a over every byte before it, in 8-byte words |
//!
//! A context whose window layers keep only their window (the default for a model with
//! window layers, see [`crate::kv_cache::WindowCache`]) saves those layers' K/V for the
//! tokens it holds; a model without window layers, or a context with `swa_full`, saves
//! every token's. A blob loads into either kind of context when what it holds covers
//! what the loading context needs: the last token's window, and with `swa_full` every
//! token.
//!
//! Reading checks everything before the cache is touched: a blob from another model, of
//! another format or KV type, truncated, or with any byte changed is an
//! [`Error::InvalidArgument`] naming what is wrong, never garbage in the cache.
//!
//! [`Context::state_seq_save`]: crate::context::Context::state_seq_save
//! [`Context::state_seq_load`]: crate::context::Context::state_seq_load

use std::io::Read;
use std::path::Path;

use crate::backend::{KvType, is_window_layer};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;
use crate::input_file::open_regular;
use crate::model::Model;

const MAGIC: [u8; 8] = *b"RFSEQST\0";
/// Bumped whenever the layout changes; older blobs are refused by name. Version 2 added
/// the window tokens.
pub const VERSION: u32 = 2;
const HEADER_BYTES: usize = 8 + 4 + 4 + 8 + 4 + 4 + 4 + 4;
const CHECKSUM_BYTES: usize = 8;

/// What a blob must match to be read into a context: the model and its cache's shape
/// and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateShape {
    pub fingerprint: u64,
    pub n_layer: usize,
    pub kv_dim: usize,
    pub n_vocab: usize,
    pub kv_type: KvType,
    /// The model's sliding-window layers: all but every `global_every`-th layer
    /// ([`is_window_layer`]); `None` when it has none.
    pub global_every: Option<usize>,
}

impl StateShape {
    /// The shape of a context of `model` whose cache stores `kv_type`.
    pub fn of(model: &Model, kv_type: KvType) -> StateShape {
        let config = model.config();
        StateShape {
            fingerprint: model_fingerprint(model),
            n_layer: config.n_layer,
            kv_dim: config.kv_dim(),
            n_vocab: config.n_vocab,
            kv_type,
            global_every: config.sliding_window.map(|w| w.global_every),
        }
    }

    /// Whether layer `layer` is a sliding-window layer.
    pub fn is_window_layer(&self, layer: usize) -> bool {
        self.global_every
            .is_some_and(|every| is_window_layer(layer, every))
    }

    /// The tokens whose K/V rows layer `layer` holds of a state of `n_tokens` tokens whose
    /// last `n_window` have window-layer rows.
    pub fn layer_tokens(&self, layer: usize, n_tokens: usize, n_window: usize) -> usize {
        if self.is_window_layer(layer) {
            n_window
        } else {
            n_tokens
        }
    }

    /// Bytes of the K/V rows of `n_tokens` tokens over every layer, the window layers'
    /// of the last `n_window` of them.
    pub fn kv_bytes(&self, n_tokens: usize, n_window: usize) -> Result<usize> {
        let row = self.kv_type.bytes(self.kv_dim);
        (0..self.n_layer)
            .try_fold(0usize, |bytes, layer| {
                let n = self.layer_tokens(layer, n_tokens, n_window);
                n.checked_mul(2 * row)?.checked_add(bytes)
            })
            .ok_or_else(|| too_large(n_tokens))
    }

    /// The size of the blob of `n_tokens` tokens, the last `n_window` with window-layer
    /// rows.
    pub fn blob_len(&self, n_tokens: usize, n_window: usize) -> Result<usize> {
        let kv_bytes = self.kv_bytes(n_tokens, n_window)?;
        n_tokens
            .checked_mul(8)
            .and_then(|b| b.checked_add(kv_bytes))
            .and_then(|b| b.checked_add(HEADER_BYTES + CHECKSUM_BYTES))
            .ok_or_else(|| too_large(n_tokens))
    }
}

fn too_large(n_tokens: usize) -> Error {
    Error::OutOfMemory(format!(
        "the state of {n_tokens} tokens is larger than memory can address"
    ))
}

/// A sequence's tokens and their K/V, as a blob holds them.
#[derive(Debug, PartialEq)]
pub struct SeqState {
    pub tokens: Vec<i32>,
    pub positions: Vec<i32>,
    /// How many of the last tokens have their window-layer rows in `kv`.
    pub n_window: usize,
    /// `[n_layer][K, V][the layer's tokens]` rows, as `BackendState::read_kv_rows` lays
    /// them out: every token's in a global layer, the last `n_window` tokens' in a
    /// window layer.
    pub kv: Vec<u8>,
}

impl SeqState {
    /// `kv` with the window layers' rows of the tokens from `first` on only (`first` at
    /// least the first window token).
    pub fn window_rows_from(&self, shape: &StateShape, first: usize) -> Result<Vec<u8>> {
        let n = self.tokens.len();
        let keep = n.saturating_sub(first).min(self.n_window);
        let mut kv = filled_vec(shape.kv_bytes(n, keep)?, 0, "a sequence state's K/V")?;
        let row = shape.kv_type.bytes(shape.kv_dim);
        let (mut from, mut to) = (0, 0);
        for layer in 0..shape.n_layer {
            let stored = shape.layer_tokens(layer, n, self.n_window) * row;
            let kept = shape.layer_tokens(layer, n, keep) * row;
            // K rows, then V rows: each keeps its last `kept` bytes.
            for _ in 0..2 {
                let src = &self.kv[from + stored - kept..from + stored];
                kv[to..to + kept].copy_from_slice(src);
                (from, to) = (from + stored, to + kept);
            }
        }
        Ok(kv)
    }
}

/// Appends the blob of `state` to `out` (fallibly reserved first).
pub fn encode(shape: &StateShape, state: &SeqState, out: &mut Vec<u8>) -> Result<()> {
    let (n_tokens, n_window) = (state.tokens.len(), state.n_window);
    check_window(shape, n_tokens, n_window).map_err(Error::InvalidArgument)?;
    let kv_bytes = shape.kv_bytes(n_tokens, n_window)?;
    if state.positions.len() != n_tokens || state.kv.len() != kv_bytes {
        return Err(Error::InvalidArgument(format!(
            "a state of {n_tokens} tokens with {} positions and {} K/V bytes (expected {kv_bytes})",
            state.positions.len(),
            state.kv.len()
        )));
    }
    let len = shape.blob_len(n_tokens, n_window)?;
    out.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(format!("no host memory for a {len}-byte state")))?;
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    for word in [VERSION, shape.kv_type.id()] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&shape.fingerprint.to_le_bytes());
    for count in [shape.n_layer, shape.kv_dim, n_tokens, n_window] {
        out.extend_from_slice(&header_u32(count)?.to_le_bytes());
    }
    for (token, position) in state.tokens.iter().zip(&state.positions) {
        out.extend_from_slice(&token.to_le_bytes());
        out.extend_from_slice(&position.to_le_bytes());
    }
    out.extend_from_slice(&state.kv);
    let checksum = fnv1a_words(&out[start..]);
    out.extend_from_slice(&checksum.to_le_bytes());
    Ok(())
}

fn header_u32(count: usize) -> Result<u32> {
    u32::try_from(count)
        .map_err(|_| Error::InvalidArgument(format!("{count} does not fit a state header")))
}

/// Reads a blob written for `shape`'s model, checking every field.
pub fn decode(shape: &StateShape, blob: &[u8]) -> Result<SeqState> {
    let invalid = |why: String| Error::InvalidArgument(format!("invalid sequence state: {why}"));
    if blob.len() < HEADER_BYTES + CHECKSUM_BYTES || blob[..8] != MAGIC {
        return Err(invalid(format!(
            "{} bytes that do not begin with a ROCmForge sequence-state header",
            blob.len()
        )));
    }
    let mut header = Reader {
        bytes: &blob[8..HEADER_BYTES],
    };
    let version = header.u32();
    if version != VERSION {
        return Err(invalid(format!(
            "format version {version}, this library reads version {VERSION}"
        )));
    }
    let (body, stored) = blob.split_at(blob.len() - CHECKSUM_BYTES);
    let mut checksum = Reader { bytes: stored };
    if fnv1a_words(body) != checksum.u64() {
        return Err(invalid(
            "the checksum does not match (the blob is truncated or corrupted)".into(),
        ));
    }
    let kv_type = header.u32();
    if kv_type != shape.kv_type.id() {
        let name = KvType::from_id(kv_type).map_or("unknown", KvType::name);
        return Err(invalid(format!(
            "K/V type {kv_type} ({name}), this context stores {} ({})",
            shape.kv_type.id(),
            shape.kv_type.name()
        )));
    }
    if header.u64() != shape.fingerprint {
        return Err(invalid("it was saved from another model".into()));
    }
    let (n_layer, kv_dim) = (header.u32() as usize, header.u32() as usize);
    if (n_layer, kv_dim) != (shape.n_layer, shape.kv_dim) {
        return Err(invalid(format!(
            "{n_layer} layers of {kv_dim} K/V values, the model has {} of {}",
            shape.n_layer, shape.kv_dim
        )));
    }
    let (n_tokens, n_window) = (header.u32() as usize, header.u32() as usize);
    check_window(shape, n_tokens, n_window).map_err(invalid)?;
    let expected = shape.blob_len(n_tokens, n_window)?;
    if blob.len() != expected {
        return Err(invalid(format!(
            "{} bytes, {n_tokens} tokens take {expected}",
            blob.len()
        )));
    }
    let mut rest = Reader {
        bytes: &body[HEADER_BYTES..],
    };
    let mut tokens = filled_vec(n_tokens, 0, "a sequence state's tokens")?;
    let mut positions = filled_vec(n_tokens, 0, "a sequence state's positions")?;
    for (token, position) in tokens.iter_mut().zip(positions.iter_mut()) {
        (*token, *position) = (rest.u32() as i32, rest.u32() as i32);
    }
    check_tokens(shape, &tokens, &positions).map_err(invalid)?;
    let mut kv = filled_vec(rest.bytes.len(), 0, "a sequence state's K/V")?;
    kv.copy_from_slice(rest.bytes);
    check_finite(shape, &kv).map_err(invalid)?;
    Ok(SeqState {
        tokens,
        positions,
        n_window,
        kv,
    })
}

/// At most every token has window-layer rows, and every token does in a model without
/// window layers.
fn check_window(
    shape: &StateShape,
    n_tokens: usize,
    n_window: usize,
) -> std::result::Result<(), String> {
    if n_window > n_tokens || (shape.global_every.is_none() && n_window != n_tokens) {
        return Err(format!(
            "{n_window} window tokens of {n_tokens}, for a model {} sliding-window layers",
            if shape.global_every.is_some() {
                "with"
            } else {
                "without"
            }
        ));
    }
    Ok(())
}

/// Every K/V value finite: the checksum guards against accidents, not against a crafted
/// file.
fn check_finite(shape: &StateShape, kv: &[u8]) -> std::result::Result<(), String> {
    let row_bytes = shape.kv_type.bytes(shape.kv_dim);
    let mut row = vec![0.0f32; shape.kv_dim];
    for (i, bytes) in kv.chunks_exact(row_bytes).enumerate() {
        shape
            .kv_type
            .decode(bytes, &mut row)
            .map_err(|e| e.to_string())?;
        if let Some(d) = row.iter().position(|v| !v.is_finite()) {
            return Err(format!("K/V row {i} holds {} at {d}, not finite", row[d]));
        }
    }
    Ok(())
}

/// Token ids inside the vocabulary; positions from 0, strictly increasing and below
/// `i32::MAX` (the cache's mark of an empty slot).
fn check_tokens(
    shape: &StateShape,
    tokens: &[i32],
    positions: &[i32],
) -> std::result::Result<(), String> {
    if let Some((i, token)) = tokens
        .iter()
        .enumerate()
        .find(|&(_, &t)| usize::try_from(t).map_or(true, |t| t >= shape.n_vocab))
    {
        return Err(format!(
            "token {i} is {token}, outside the vocabulary of {}",
            shape.n_vocab
        ));
    }
    let mut previous = -1;
    for (i, &position) in positions.iter().enumerate() {
        if position <= previous || position == i32::MAX {
            return Err(format!(
                "position {position} of token {i} does not follow {previous}"
            ));
        }
        previous = position;
    }
    Ok(())
}

/// Little-endian fields read in order from a slice whose length was checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        let mut out = [0; N];
        out.copy_from_slice(head);
        out
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over 8-byte little-endian words (the tail zero-padded, then the length): each
/// step is a bijection of the running hash, so a change confined to one word, any single
/// flipped byte among them, always changes the result. Eight bytes a step keep a large
/// state's checksum at memory speed.
fn fnv1a_words(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        hash = (hash ^ u64::from_le_bytes(w)).wrapping_mul(FNV_PRIME);
    }
    let mut tail = [0; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(FNV_PRIME);
    (hash ^ bytes.len() as u64).wrapping_mul(FNV_PRIME)
}

/// The checksum a blob's last 8 bytes hold (little-endian) over every byte before them:
/// what a tool that edits a blob on purpose (the `state_load` fuzz target) writes back.
pub fn checksum(body: &[u8]) -> u64 {
    fnv1a_words(body)
}

/// A model's identity for saved states: its configuration as this library reads it (shape,
/// RoPE, norms, sliding window: what the cached keys and values depend on) and, for every
/// tensor, its name, type, dimensions and the first and last 64 bytes of its data. Two
/// files with the same tensors but different weights (another fine-tune) differ in those
/// bytes; reading them costs microseconds, not a pass over gigabytes.
pub fn model_fingerprint(model: &Model) -> u64 {
    let gguf = model.gguf();
    let mut bytes = format!("{:?}", model.config()).into_bytes();
    for info in gguf.tensors() {
        bytes.extend_from_slice(info.name().as_bytes());
        bytes.extend_from_slice(&(info.dtype() as u32).to_le_bytes());
        for &dim in info.shape() {
            bytes.extend_from_slice(&dim.to_le_bytes());
        }
        if let Ok(data) = gguf.tensor_data(info) {
            let edge = data.len().min(64);
            bytes.extend_from_slice(&data[..edge]);
            bytes.extend_from_slice(&data[data.len() - edge..]);
        }
    }
    fnv1a_words(&bytes)
}

impl Context {
    /// [`Context::state_seq_save`] into the file at `path`, created or replaced. The blob
    /// goes to a temporary file beside it that is then renamed over it, so a save that
    /// fails (a full disk) leaves an earlier state file whole.
    pub fn state_seq_save_file(&mut self, seq: i32, path: &Path) -> Result<()> {
        let mut blob = Vec::new();
        self.state_seq_save(seq, &mut blob)?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = Path::new(&partial);
        std::fs::write(partial, &blob)
            .and_then(|()| std::fs::rename(partial, path))
            .map_err(|source| {
                let _ = std::fs::remove_file(partial);
                Error::io(path, source)
            })
    }

    /// [`Context::state_seq_load`] from the file at `path`. A file larger than any state
    /// this context can hold is refused before it is read.
    pub fn state_seq_load_file(&mut self, seq: i32, path: &Path) -> Result<()> {
        let n_ctx = self.params().n_ctx;
        let largest = StateShape::of(self.model(), self.params().kv_type).blob_len(n_ctx, n_ctx)?;
        let (file, len) = open_regular(path)?;
        if len > largest as u64 {
            return Err(Error::InvalidArgument(format!(
                "{}: {len} bytes, more than the state of this context's {} tokens ({largest})",
                path.display(),
                self.params().n_ctx
            )));
        }
        let mut blob = Vec::new();
        blob.try_reserve_exact(len as usize)
            .map_err(|_| Error::OutOfMemory(format!("no host memory for a {len}-byte state")))?;
        file.take(len)
            .read_to_end(&mut blob)
            .map_err(|source| Error::io(path, source))?;
        self.state_seq_load(seq, &blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> StateShape {
        StateShape {
            fingerprint: 0x1234_5678_9abc_def0,
            n_layer: 2,
            kv_dim: 3,
            n_vocab: 100,
            kv_type: KvType::F16,
            global_every: None,
        }
    }

    fn state(n: usize) -> SeqState {
        SeqState {
            tokens: (0..n as i32).map(|t| (t * 7) % 100).collect(),
            positions: (0..n as i32).map(|p| 3 * p + 1).collect(),
            n_window: n,
            kv: (0..n * 12)
                .flat_map(|v| half::f16::from_f32(v as f32 * 0.25 - 3.0).to_le_bytes())
                .collect(),
        }
    }

    /// Layer 0 of two is a window layer.
    fn window_shape() -> StateShape {
        StateShape {
            global_every: Some(2),
            ..shape()
        }
    }

    /// `n` tokens, the last `n_window` with rows in the window layer: each row's values
    /// name its layer, K or V, and token (`100 * layer + 10 * v + token`).
    fn window_state(n: usize, n_window: usize) -> SeqState {
        let mut kv = Vec::new();
        for (layer, tokens) in [(0, n - n_window..n), (1, 0..n)] {
            for v in 0..2 {
                for token in tokens.clone() {
                    let value = (100 * layer + 10 * v + token) as f32;
                    for _ in 0..3 {
                        kv.extend_from_slice(&half::f16::from_f32(value).to_le_bytes());
                    }
                }
            }
        }
        SeqState {
            n_window,
            kv,
            ..state(n)
        }
    }

    /// The tokens whose rows a layer's K (or V) holds, read back from the values.
    fn row_tokens(kv: &[u8], layer: usize, v: usize, rows: std::ops::Range<usize>) -> Vec<usize> {
        rows.map(|row| {
            let at = row * 6;
            let value = half::f16::from_le_bytes([kv[at], kv[at + 1]]).to_f32() as usize;
            assert_eq!(value / 100, layer);
            assert_eq!(value / 10 % 10, v);
            value % 10
        })
        .collect()
    }

    #[test]
    fn a_blob_with_fewer_window_tokens_reads_back_and_trims() {
        let shape = window_shape();
        let state = window_state(6, 4);
        let mut bytes = Vec::new();
        encode(&shape, &state, &mut bytes).unwrap();
        assert_eq!(bytes.len(), shape.blob_len(6, 4).unwrap());
        assert_eq!(shape.kv_bytes(6, 4).unwrap(), (2 * 4 + 2 * 6) * 6);
        assert_eq!(decode(&shape, &bytes).unwrap(), state);

        // Tokens 3.. keep their window-layer rows; the global layer keeps every token's.
        let kv = state.window_rows_from(&shape, 3).unwrap();
        assert_eq!(kv.len(), shape.kv_bytes(6, 3).unwrap());
        assert_eq!(row_tokens(&kv, 0, 0, 0..3), [3, 4, 5]);
        assert_eq!(row_tokens(&kv, 0, 1, 3..6), [3, 4, 5]);
        assert_eq!(row_tokens(&kv, 1, 0, 6..12), [0, 1, 2, 3, 4, 5]);
        assert_eq!(row_tokens(&kv, 1, 1, 12..18), [0, 1, 2, 3, 4, 5]);
        // From before the first window token: all the window tokens.
        assert_eq!(state.window_rows_from(&shape, 0).unwrap(), state.kv);
    }

    #[test]
    fn window_tokens_beyond_the_tokens_or_missing_without_window_layers_are_refused() {
        let mut bytes = Vec::new();
        let too_many = SeqState {
            n_window: 7,
            ..window_state(6, 6)
        };
        let message = encode(&window_shape(), &too_many, &mut bytes)
            .unwrap_err()
            .to_string();
        assert!(message.contains("7 window tokens of 6"), "{message}");
        let message = encode(&shape(), &window_state(6, 4), &mut bytes)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("without sliding-window layers"),
            "{message}"
        );
        // A blob written for window layers, read for a model without them.
        encode(&window_shape(), &window_state(6, 4), &mut bytes).unwrap();
        let message = decode(&shape(), &bytes).unwrap_err().to_string();
        assert!(message.contains("4 window tokens of 6"), "{message}");
    }

    fn blob(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&shape(), &state(n), &mut out).unwrap();
        out
    }

    #[test]
    fn a_blob_reads_back_as_written() {
        for n in [0, 1, 5] {
            let bytes = blob(n);
            assert_eq!(bytes.len(), shape().blob_len(n, n).unwrap());
            assert_eq!(decode(&shape(), &bytes).unwrap(), state(n));
        }
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = blob(5);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(
                decode(&shape(), &bad).is_err(),
                "byte {at} flipped was read"
            );
        }
        for len in 0..bytes.len() {
            assert!(
                decode(&shape(), &bytes[..len]).is_err(),
                "{len} bytes were read"
            );
        }
    }

    #[test]
    fn non_finite_keys_or_values_are_refused() {
        let mut poisoned = state(3);
        poisoned.kv[14..16].copy_from_slice(&half::f16::INFINITY.to_le_bytes());
        let mut bytes = Vec::new();
        encode(&shape(), &poisoned, &mut bytes).unwrap();
        let message = decode(&shape(), &bytes).unwrap_err().to_string();
        assert!(message.contains("K/V row 2 holds inf at 1"), "{message}");
    }

    #[test]
    fn another_model_or_shape_is_named() {
        let bytes = blob(2);
        let other = StateShape {
            fingerprint: 1,
            ..shape()
        };
        let message = decode(&other, &bytes).unwrap_err().to_string();
        assert!(message.contains("another model"), "{message}");
        let wider = StateShape {
            kv_dim: 4,
            ..shape()
        };
        let message = decode(&wider, &bytes).unwrap_err().to_string();
        assert!(message.contains("2 layers of 3"), "{message}");
        let quantized = StateShape {
            kv_type: KvType::F32,
            ..shape()
        };
        let message = decode(&quantized, &bytes).unwrap_err().to_string();
        assert!(
            message.contains("K/V type 1 (F16), this context stores 0 (F32)"),
            "{message}"
        );
    }

    #[test]
    fn tokens_outside_the_vocabulary_and_unordered_positions_are_refused() {
        let smaller = StateShape {
            n_vocab: 20,
            ..shape()
        };
        let message = decode(&smaller, &blob(5)).unwrap_err().to_string();
        assert!(message.contains("outside the vocabulary"), "{message}");
        let mut unordered = state(3);
        unordered.positions[2] = unordered.positions[1];
        let mut bytes = Vec::new();
        encode(&shape(), &unordered, &mut bytes).unwrap();
        let message = decode(&shape(), &bytes).unwrap_err().to_string();
        assert!(message.contains("does not follow"), "{message}");
    }
}
