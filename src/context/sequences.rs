//! Operations on a context's sequences beside decoding: removing, copying and shifting
//! positions, recomputing the last token's logits, and saving and loading a sequence's
//! state. Each changes the full cache and the window layers' cache alike (see
//! [`KvCaches`](crate::kv_cache::KvCaches)).

use super::{Context, KV_BLOCK_SIZE};
use crate::backend::cpu::ops::rotate_stored_rows;
use crate::backend::{KvRowSlots, StepTables};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;
use crate::kv_cache::{BlockPool, SequenceTable, TokenSlot};
use crate::seq_state::{self, SeqState, StateShape};

impl Context {
    /// Removes positions `p0..p1` (`p1 < 0`: to the end) of a sequence. With a window
    /// cache, a removal can leave the sequence unable to go on: after a rollback to a
    /// position whose window the cache dropped already, the next decode is refused (see
    /// [`crate::kv_cache::WindowCache`]); remove the whole sequence and decode it again.
    pub fn seq_remove(&mut self, seq: i32, p0: i32, p1: i32) -> Result<()> {
        self.caches.remove(seq, p0, p1)
    }

    /// Makes `dst` share `src`'s cached positions `p0..p1`; no K/V is copied.
    pub fn seq_copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> Result<()> {
        self.caches.copy_seq(src, dst, p0, p1)
    }

    /// The highest position a sequence holds, or -1 when it is empty.
    pub fn seq_pos_max(&self, seq: i32) -> Result<i32> {
        self.caches.pos_max(seq)
    }

    /// Recomputes the logits of a sequence's last token, as if it had just been decoded,
    /// so that generation can continue the sequence after other sequences' decodes. The
    /// caches are not changed: the step reads the sequence through a spare table whose
    /// last block is a copy in the block past the pool's, and writes the token's K/V
    /// there. Refused when the window cache dropped a position the token sees.
    pub fn recompute_last_logits(&mut self, seq: i32) -> Result<()> {
        self.step.n_outputs = 0;
        self.caches.check_last_token_sees(seq)?;
        let full = self.caches.full();
        let Some(last) = full.sequence(seq)?.live_tokens().last() else {
            return Err(Error::InvalidArgument(format!(
                "sequence {seq} holds no tokens"
            )));
        };
        let spare_seq = self.params.n_seq_max;
        let step = &mut self.step;
        let table = full.sequence(seq)?;
        redirect_last_block(&mut step.full, table, last, spare_seq, full.pool());
        if let (Some(tables), Some(window)) = (&mut step.window, self.caches.window()) {
            let (cache, table) = (window.cache(), window.cache().sequence(seq)?);
            // The window cache holds every position the last token sees (checked above).
            match table.live_tokens().last() {
                Some(last_w) if last_w.position == last.position => {
                    redirect_last_block(tables, table, last_w, spare_seq, cache.pool());
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "sequence {seq}'s window cache lacks its last token"
                    )));
                }
            }
        }
        step.n_tokens = 1;
        step.tokens[0] = self.slot_tokens[last.slot as usize];
        step.positions[0] = last.position;
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
    ///
    /// With a window cache, the window layers' keys move with the rest; when the shift
    /// brings positions the window cache dropped back into the window of the next token
    /// (the kept part of a short sequence, say), the next decode is refused, as after a
    /// rollback.
    pub fn seq_shift(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) -> Result<()> {
        let moved = self.caches.tokens_to_shift(seq, p0, p1, delta)?;
        if moved.full.is_empty() || delta == 0 {
            return Ok(());
        }
        let full_slots = slots_of(moved.full.iter().copied(), "a shift's slots")?;
        let window_slots = slots_of(moved.window.iter().copied(), "a shift's window slots")?;
        let slots = self.row_slots(&full_slots, &window_slots);
        let config = self.model.config();
        let kv_type = self.params.kv_type;
        let shape = StateShape::of(&self.model, kv_type);
        let kv_bytes = shape.kv_bytes(slots.full.len(), slots.window.len())?;
        let mut rows = filled_vec(kv_bytes, 0u8, "the K/V rows of a shift")?;
        self.backend.read_kv_rows(&slots, &mut rows)?;
        let row_bytes = kv_type.bytes(config.kv_dim());
        let mut rest = &mut rows[..];
        for layer in 0..config.n_layer {
            let n = shape.layer_tokens(layer, slots.full.len(), slots.window.len());
            let (layer_rows, tail) = std::mem::take(&mut rest).split_at_mut(2 * n * row_bytes);
            rest = tail;
            let keys = &mut layer_rows[..n * row_bytes];
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
        self.backend.write_kv_rows(&slots, &rows)?;
        self.caches.shift(seq, p0, p1, delta)
    }

    /// The size of [`Context::state_seq_save`]'s blob for `seq` as it is now.
    pub fn state_seq_size(&self, seq: i32) -> Result<usize> {
        let n_tokens = self.caches.full().sequence(seq)?.n_tokens();
        let n_window = match self.caches.window() {
            Some(window) => window.cache().sequence(seq)?.n_tokens(),
            None => n_tokens,
        };
        StateShape::of(&self.model, self.params.kv_type).blob_len(n_tokens, n_window)
    }

    /// Appends `seq`'s state to `out`: its tokens, their positions and their K/V in every
    /// layer (in the window layers, of the tokens the window cache holds), in the format
    /// of [`crate::seq_state`]. The caches are not changed.
    pub fn state_seq_save(&mut self, seq: i32, out: &mut Vec<u8>) -> Result<()> {
        let shape = StateShape::of(&self.model, self.params.kv_type);
        let table = self.caches.full().sequence(seq)?;
        let full_slots = slots_of(table.live_tokens(), "a state's slots")?;
        let n = full_slots.len();
        let window_slots = match self.caches.window() {
            Some(window) => {
                let tokens = window.cache().sequence(seq)?.live_tokens();
                slots_of(tokens, "a state's window slots")?
            }
            None => Vec::new(),
        };
        let slots = self.row_slots(&full_slots, &window_slots);
        let mut state = SeqState {
            tokens: filled_vec(n, 0, "a sequence state's tokens")?,
            positions: filled_vec(n, 0, "a sequence state's positions")?,
            n_window: slots.window.len(),
            kv: filled_vec(
                shape.kv_bytes(n, slots.window.len())?,
                0,
                "a sequence state's K/V",
            )?,
        };
        for (i, token) in table.live_tokens().enumerate() {
            state.positions[i] = token.position;
            state.tokens[i] = self.slot_tokens[token.slot as usize];
        }
        self.backend.read_kv_rows(&slots, &mut state.kv)?;
        seq_state::encode(&shape, &state, out)
    }

    /// Replaces `seq`'s contents with a state [`Context::state_seq_save`] wrote from a
    /// context of the same model (any sequence, any context size that holds it), then
    /// recomputes its last token's logits, so sampling continues where the saved sequence
    /// stood. Every field of the blob is checked first: a blob from another model, a
    /// truncated or corrupted one is `InvalidArgument`, and a state the cache has no room
    /// for is `ContextFull`, each with the context unchanged. So is a state without the
    /// window layers' K/V this context needs: for its last token's window (which the
    /// saving context had dropped too), or with `swa_full` for every token. A device
    /// error while the K/V are written leaves the sequence empty; an error from the
    /// logits' recomputation (cancelled, a device error) leaves the state loaded without
    /// logits; so does running out of host memory for the window rows it keeps.
    pub fn state_seq_load(&mut self, seq: i32, blob: &[u8]) -> Result<()> {
        let shape = StateShape::of(&self.model, self.params.kv_type);
        let state = seq_state::decode(&shape, blob)?;
        let n = state.tokens.len();
        if self.caches.window().is_none() && state.n_window < n {
            return Err(Error::InvalidArgument(format!(
                "the state holds the sliding-window layers' K/V of its last {} of {n} tokens; \
                 this context keeps every position for them (swa_full) and needs all",
                state.n_window
            )));
        }
        let first_window =
            self.caches
                .load(seq, &state.positions, state.n_window, &mut self.plans)?;
        self.step.n_outputs = 0;
        if n == 0 {
            return Ok(());
        }
        // The window cache took the tokens the last one sees, perhaps fewer than the blob
        // holds window-layer rows of.
        let trimmed;
        let rows = if self.caches.window().is_some() && first_window + state.n_window > n {
            trimmed = match state.window_rows_from(&shape, first_window) {
                Ok(kv) => kv,
                Err(e) => {
                    self.caches.remove(seq, -1, -1)?;
                    return Err(e);
                }
            };
            &trimmed
        } else {
            &state.kv
        };
        let slots = self.row_slots(self.plans.full.slots(), self.plans.window.slots());
        if let Err(e) = self.backend.write_kv_rows(&slots, rows) {
            self.caches.remove(seq, -1, -1)?;
            return Err(e);
        }
        for (&slot, &token) in self.plans.full.slots().iter().zip(&state.tokens) {
            self.slot_tokens[slot as usize] = token;
        }
        self.recompute_last_logits(seq)
    }

    /// The rows of tokens at `full` slots and at `window` slots in the window cache;
    /// without a window cache the window layers read the full cache, at `full`.
    fn row_slots<'a>(&self, full: &'a [u32], window: &'a [u32]) -> KvRowSlots<'a> {
        let window = if self.caches.window().is_some() {
            window
        } else {
            full
        };
        KvRowSlots { full, window }
    }
}

/// The slots of `tokens`, in a fallibly allocated vector.
fn slots_of(tokens: impl ExactSizeIterator<Item = TokenSlot>, what: &str) -> Result<Vec<u32>> {
    let mut slots = filled_vec(tokens.len(), 0u32, what)?;
    for (slot, token) in slots.iter_mut().zip(tokens) {
        *slot = token.slot;
    }
    Ok(slots)
}

/// Puts `table` in `tables`' spare row `spare_seq` with its last block redirected to the
/// block past `pool`'s, which the step fills with a copy of the last block first, and
/// writes the step's one token into that copy at the offset of `last`, the table's last
/// token.
fn redirect_last_block(
    tables: &mut StepTables,
    table: &SequenceTable,
    last: TokenSlot,
    spare_seq: usize,
    pool: &BlockPool,
) {
    let spare_block = pool.blocks_total();
    let blocks = table.block_table();
    let last_slot = last.slot as usize;
    let (last_block, offset) = (last_slot / KV_BLOCK_SIZE, last_slot % KV_BLOCK_SIZE);
    let redirected = blocks.iter().enumerate().map(|(i, b)| {
        if i + 1 == blocks.len() {
            spare_block as u32
        } else {
            b.index() as u32
        }
    });
    tables.set_sequence(spare_seq, redirected, table.slot_positions());
    tables.block_copies.clear();
    tables
        .block_copies
        .push((last_block as u32, spare_block as u32));
    tables.write_slots[0] = (spare_block * KV_BLOCK_SIZE + offset) as u32;
}
