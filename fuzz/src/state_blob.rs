//! The `state_load` target's world: a tiny Gemma 3 model (five sliding-window layers and a
//! global one, so a blob holds rows of both kinds), the contexts a blob is loaded into
//! (the window cache and `swa_full`, in the blob's K/V type), and the checksum a mutated
//! blob gets back, so the fuzzer's changes reach the checks behind it.
//!
//! Input format: a sequence-state blob (`rf_state_seq_save`) of [`model_bytes`]'s model;
//! its last 8 bytes are replaced by the checksum of the rest (see [`sealed`]).

use std::ptr;

use rocmforge::Result;
use rocmforge::ffi::*;
use rocmforge::gguf::synthetic::{LlamaWeightTypes, SyntheticFamily};
use rocmforge::seq_state::checksum;
use rocmforge::tensor::GgmlType;

use crate::host::{assert_no_panic, last_error};
use crate::models::{TinyShape, tiny_model};
use crate::vocabularies::byte_level;

/// The window of the model's sliding-window layers, in positions.
pub const WINDOW: u32 = 8;
/// The contexts' batch: also how far past the window a window cache keeps positions.
pub const N_BATCH: u32 = 4;
pub const N_CTX: u32 = 64;
pub const N_SEQ_MAX: u32 = 3;

/// Six layers: Gemma 3 makes every sixth layer global, so the last one is. Heads of 32
/// values, the least a Q8_0 cache stores.
const SHAPE: TinyShape = TinyShape {
    n_embd: 64,
    n_ff: 64,
    n_head: 2,
    n_head_kv: 1,
    head_dim: 32,
    n_layer: 6,
};

/// Where the token count and the first (token, position) pair sit in a blob.
const TOKEN_COUNT_AT: usize = 32;
const TOKENS_AT: usize = 40;
/// Where the K/V type (ggml's type id) sits in a blob.
const KV_TYPE_AT: usize = 12;

/// The model every blob belongs to, the same bytes on every run.
pub fn model_bytes() -> Result<Vec<u8>> {
    let vocab = byte_level(Some("smollm"), &[]);
    let family = SyntheticFamily::Gemma3 {
        sliding_window: WINDOW,
    };
    let types = LlamaWeightTypes::uniform(GgmlType::Q8_0, true);
    tiny_model(&vocab, SHAPE, types, 11, None, family)
}

/// `data` with its last 8 bytes replaced by the checksum of the bytes before them (as it
/// is when shorter than that).
pub fn sealed(data: &[u8]) -> Vec<u8> {
    let mut blob = data.to_vec();
    if let Some(body_len) = blob.len().checked_sub(8) {
        let sum = checksum(&blob[..body_len]);
        blob[body_len..].copy_from_slice(&sum.to_le_bytes());
    }
    blob
}

fn u32_at(blob: &[u8], at: usize) -> Option<u32> {
    let bytes = blob.get(at..at + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The context K/V type (`RF_KV_*`) of the blob's ggml type id; F16 when it names none.
pub fn kv_type_of(blob: &[u8]) -> u32 {
    match u32_at(blob, KV_TYPE_AT) {
        Some(0) => RF_KV_F32,
        Some(8) => RF_KV_Q8_0,
        _ => RF_KV_F16,
    }
}

/// The number of tokens the blob's header gives and the position of its last token (-1
/// when it has none); `None` when the blob is too short to say.
pub fn last_position(blob: &[u8]) -> Option<(u32, i32)> {
    let n = u32_at(blob, TOKEN_COUNT_AT)?;
    let Some(last) = n.checked_sub(1) else {
        return Some((0, -1));
    };
    let at = TOKENS_AT + 8 * usize::try_from(last).ok()? + 4;
    Some((n, u32_at(blob, at)? as i32))
}

/// A context of the state model, freed on drop.
pub struct StateContext {
    ctx: *mut rf_context,
}

impl StateContext {
    /// A context of `model` whose cache stores `kv_type`; window layers keep every
    /// position when `swa_full`.
    ///
    /// # Safety
    /// `model` must be live and outlive the context.
    pub unsafe fn new(model: *const rf_model, kv_type: u32, swa_full: bool) -> StateContext {
        let params = rf_context_params {
            n_ctx: N_CTX,
            n_seq_max: N_SEQ_MAX,
            n_batch: N_BATCH,
            n_threads: 1,
            kv_type,
            swa_full,
            ..rf_context_default_params()
        };
        let mut ctx = ptr::null_mut();
        // SAFETY: `model` is live by this function's contract; `params` and `ctx` are valid.
        let status = unsafe { rf_context_new(model, &params, &mut ctx) };
        assert_eq!(status, rf_status::RF_OK, "rf_context_new: {}", last_error());
        StateContext { ctx }
    }

    /// Decodes `tokens` on `seq` after its last position, the last token's logits kept.
    pub fn decode(&mut self, seq: i32, tokens: &[i32]) -> rf_status {
        let seq_ids = vec![seq; tokens.len()];
        let batch = rf_batch {
            n_tokens: tokens.len(),
            tokens: tokens.as_ptr(),
            positions: ptr::null(),
            seq_ids: seq_ids.as_ptr(),
            want_logits: ptr::null(),
        };
        // SAFETY: `self.ctx` is live; the batch's arrays hold `tokens.len()` entries.
        let status = unsafe { rf_decode(self.ctx, &batch) };
        assert_no_panic(status, "rf_decode");
        status
    }

    pub fn load(&mut self, seq: i32, blob: &[u8]) -> rf_status {
        // SAFETY: `self.ctx` is live; `blob` is readable for its length.
        let status = unsafe { rf_state_seq_load(self.ctx, seq, blob.as_ptr(), blob.len()) };
        assert_no_panic(status, "rf_state_seq_load");
        status
    }

    /// `seq`'s blob as `rf_state_seq_save` writes it.
    pub fn save(&mut self, seq: i32) -> Vec<u8> {
        let mut size = 0;
        // SAFETY: `self.ctx` is live; `size` is writable.
        let status = unsafe { rf_state_seq_size(self.ctx, seq, &mut size) };
        assert_eq!(
            status,
            rf_status::RF_OK,
            "rf_state_seq_size: {}",
            last_error()
        );
        let mut blob = vec![0u8; size];
        let mut written = 0;
        // SAFETY: `self.ctx` is live; `blob` is writable for `size` bytes.
        let status =
            unsafe { rf_state_seq_save(self.ctx, seq, blob.as_mut_ptr(), size, &mut written) };
        assert_eq!(
            status,
            rf_status::RF_OK,
            "rf_state_seq_save: {}",
            last_error()
        );
        assert_eq!(written, size, "the blob is the size rf_state_seq_size gave");
        blob
    }

    /// `rf_seq_remove` of positions `[p0, p1)` (-1: open) of `seq`.
    pub fn remove(&mut self, seq: i32, p0: i32, p1: i32) -> rf_status {
        // SAFETY: `self.ctx` is live.
        let status = unsafe { rf_seq_remove(self.ctx, seq, p0, p1) };
        assert_no_panic(status, "rf_seq_remove");
        status
    }

    pub fn pos_max(&self, seq: i32) -> i32 {
        let mut pos = 0;
        // SAFETY: `self.ctx` is live; `pos` is writable.
        let status = unsafe { rf_seq_pos_max(self.ctx, seq, &mut pos) };
        assert_eq!(status, rf_status::RF_OK, "rf_seq_pos_max: {}", last_error());
        pos
    }

    /// The logits of the last step's last output.
    pub fn last_logits(&mut self) -> Vec<f32> {
        let (mut logits, mut n) = (ptr::null(), 0usize);
        // SAFETY: `self.ctx` is live; `logits` and `n` are writable.
        let status = unsafe { rf_get_logits(self.ctx, -1, &mut logits, &mut n) };
        assert_eq!(status, rf_status::RF_OK, "rf_get_logits: {}", last_error());
        // SAFETY: the library gives `n` readable floats, valid until the next step.
        unsafe { std::slice::from_raw_parts(logits, n) }.to_vec()
    }
}

impl Drop for StateContext {
    fn drop(&mut self) {
        // SAFETY: `self.ctx` came from `rf_context_new` and is freed once.
        unsafe { rf_context_free(self.ctx) }
    }
}
