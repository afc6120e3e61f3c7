//! Operations on a context's sequences beside decoding: removing, copying and shifting
//! positions, recomputing the last token's logits, and saving and loading a sequence's
//! state.

use super::{Context, KV_BLOCK_SIZE};
use crate::backend::KvRowSlots;
use crate::backend::cpu::ops::rotate_stored_rows;
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;
use crate::seq_state::{self, SeqState, StateShape};

impl Context {
    /// Removes positions `p0..p1` (`p1 < 0`: to the end) of a sequence.
    pub fn seq_remove(&mut self, seq: i32, p0: i32, p1: i32) -> Result<()> {
        self.cache.remove(seq, p0, p1)
    }

    /// Makes `dst` share `src`'s cached positions `p0..p1`; no K/V is copied.
    pub fn seq_copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> Result<()> {
        self.cache.copy_seq(src, dst, p0, p1)
    }

    /// The highest position a sequence holds, or -1 when it is empty.
    pub fn seq_pos_max(&self, seq: i32) -> Result<i32> {
        self.cache.pos_max(seq)
    }

    /// Recomputes the logits of a sequence's last token, as if it had just been decoded,
    /// so that generation can continue the sequence after other sequences' decodes. The
    /// cache is not changed: the step reads the sequence through a spare table whose last
    /// block is a copy in the block past the pool's, and writes the token's K/V there.
    pub fn recompute_last_logits(&mut self, seq: i32) -> Result<()> {
        self.step.n_outputs = 0;
        let table = self.cache.sequence(seq)?;
        let Some(last) = table.live_tokens().last() else {
            return Err(Error::InvalidArgument(format!(
                "sequence {seq} holds no tokens"
            )));
        };
        let spare_seq = self.params.n_seq_max;
        let spare_block = self.cache.pool().blocks_total();
        let last_block = last.slot as usize / KV_BLOCK_SIZE;
        let offset = last.slot as usize % KV_BLOCK_SIZE;
        let blocks = table.block_table();
        let redirected = blocks.iter().enumerate().map(|(i, b)| {
            if i + 1 == blocks.len() {
                spare_block as u32
            } else {
                b.index() as u32
            }
        });
        let step = &mut self.step;
        step.full
            .set_sequence(spare_seq, redirected, table.slot_positions());
        step.full.block_copies.clear();
        step.full
            .block_copies
            .push((last_block as u32, spare_block as u32));
        step.n_tokens = 1;
        step.tokens[0] = self.slot_tokens[last.slot as usize];
        step.positions[0] = last.position;
        step.full.write_slots[0] = (spare_block * KV_BLOCK_SIZE + offset) as u32;
        step.seq_of_token[0] = spare_seq as u32;
        step.output_tokens[0] = 0;
        step.n_outputs = 1;
        let result = self.run_step();
        if result.is_err() {
            self.step.n_outputs = 0;
        }
        result
    }

    /// Moves `seq`'s cached positions `p0..p1` (`p0 < 0`: from the first, `p1 < 0`: to the
    /// last) by `delta`, re-rotating their keys (RoPE of position p + delta is RoPE of delta
    /// applied to RoPE of p), so a host can drop the oldest turns of a chat with
    /// [`Context::seq_remove`] and go on without re-encoding the rest (llama.cpp's
    /// `llama_memory_seq_add`). The new positions must stay at 0 or above and keep their
    /// order with the sequence's other tokens (`InvalidArgument`), and the tokens must not
    /// lie in a KV block another sequence shares (`Unsupported`); either way nothing
    /// changes. A device error while the keys are rewritten can leave some of them
    /// rotated: drop the sequence then. The last decode's logits stay as they were.
    pub fn seq_shift(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) -> Result<()> {
        let moved = self.cache.tokens_to_shift(seq, p0, p1, delta)?;
        if moved.is_empty() || delta == 0 {
            return Ok(());
        }
        let mut slots = filled_vec(moved.len(), 0u32, "a shift's slots")?;
        for (slot, token) in slots.iter_mut().zip(&moved) {
            *slot = token.slot;
        }
        let config = self.model.config();
        let kv_type = self.params.kv_type;
        let kv_bytes = StateShape::of(&self.model, kv_type).kv_bytes(moved.len())?;
        let mut rows = filled_vec(kv_bytes, 0u8, "the K/V rows of a shift")?;
        // Without a window cache every layer reads the one cache.
        let row_slots = KvRowSlots {
            full: &slots,
            window: &slots,
        };
        self.backend.read_kv_rows(&row_slots, &mut rows)?;
        let layer_bytes = kv_bytes / config.n_layer;
        for (layer, kv) in rows.chunks_exact_mut(layer_bytes).enumerate() {
            let keys = &mut kv[..layer_bytes / 2];
            let rope = config.layer_rope(layer);
            rotate_stored_rows(
                keys,
                kv_type,
                config.kv_dim(),
                config.head_dim,
                &rope,
                delta,
            )?;
        }
        self.backend.write_kv_rows(&row_slots, &rows)?;
        self.cache.shift(seq, p0, p1, delta)
    }

    /// The size of [`Context::state_seq_save`]'s blob for `seq` as it is now.
    pub fn state_seq_size(&self, seq: i32) -> Result<usize> {
        let n_tokens = self.cache.sequence(seq)?.n_tokens();
        StateShape::of(&self.model, self.params.kv_type).blob_len(n_tokens)
    }

    /// Appends `seq`'s state to `out`: its tokens, their positions and their K/V in every
    /// layer, in the format of [`crate::seq_state`]. The cache is not changed.
    pub fn state_seq_save(&mut self, seq: i32, out: &mut Vec<u8>) -> Result<()> {
        let shape = StateShape::of(&self.model, self.params.kv_type);
        let table = self.cache.sequence(seq)?;
        let n = table.n_tokens();
        let mut slots = filled_vec(n, 0u32, "a sequence state's slots")?;
        let mut state = SeqState {
            tokens: filled_vec(n, 0, "a sequence state's tokens")?,
            positions: filled_vec(n, 0, "a sequence state's positions")?,
            kv: filled_vec(shape.kv_bytes(n)?, 0, "a sequence state's K/V")?,
        };
        for (i, token) in table.live_tokens().enumerate() {
            slots[i] = token.slot;
            state.positions[i] = token.position;
            state.tokens[i] = self.slot_tokens[token.slot as usize];
        }
        let row_slots = KvRowSlots {
            full: &slots,
            window: &slots,
        };
        self.backend.read_kv_rows(&row_slots, &mut state.kv)?;
        seq_state::encode(&shape, &state, out)
    }

    /// Replaces `seq`'s contents with a state [`Context::state_seq_save`] wrote from a
    /// context of the same model (any sequence, any context size that holds it), then
    /// recomputes its last token's logits, so sampling continues where the saved sequence
    /// stood. Every field of the blob is checked first: a blob from another model, a
    /// truncated or corrupted one is `InvalidArgument`, and a state the cache has no room
    /// for is `ContextFull`, each with the context unchanged. A device error while the K/V
    /// are written leaves the sequence empty; an error from the logits' recomputation
    /// (cancelled, a device error) leaves the state loaded without logits.
    pub fn state_seq_load(&mut self, seq: i32, blob: &[u8]) -> Result<()> {
        let shape = StateShape::of(&self.model, self.params.kv_type);
        let state = seq_state::decode(&shape, blob)?;
        let n = state.tokens.len();
        let table = self.cache.sequence(seq)?;
        let pool = self.cache.pool();
        let reclaimed = table
            .block_table()
            .iter()
            .filter(|&&block| pool.ref_count(block) == 1)
            .count();
        let room = pool.blocks_free() + reclaimed;
        let needed = n.div_ceil(KV_BLOCK_SIZE);
        if needed > room {
            return Err(Error::ContextFull(format!(
                "a saved state of {n} tokens needs {needed} KV blocks, sequence {seq} can have {room}"
            )));
        }
        self.step.n_outputs = 0;
        self.cache.remove(seq, -1, -1)?;
        if n == 0 {
            return Ok(());
        }
        // Into an empty sequence, with room counted: the append cannot fail, and it
        // copies no block.
        self.cache.append(seq, &state.positions, &mut self.plan)?;
        let slots = self.plan.slots();
        let row_slots = KvRowSlots {
            full: slots,
            window: slots,
        };
        if let Err(e) = self.backend.write_kv_rows(&row_slots, &state.kv) {
            self.cache.undo_append(&mut self.plan);
            return Err(e);
        }
        for (&slot, &token) in self.plan.slots().iter().zip(&state.tokens) {
            self.slot_tokens[slot as usize] = token;
        }
        self.recompute_last_logits(seq)
    }
}
