//! One context driven by a decode program through the C ABI, checked after every
//! operation against the [`Shadow`]: statuses, the KV bookkeeping (`rf_context_memory`:
//! used + free == total; `rf_seq_pos_max` as accepted), all-or-nothing refusals, and
//! logits (finite; equal wherever the same K/V inputs were decoded again).

use std::collections::HashMap;
use std::ptr;

use rocmforge::ffi::*;

use crate::decode_program::{BatchSpec, ContextShape, Op};
use crate::host::{assert_no_panic, last_error};
use crate::kv_shadow::{Placed, Shadow, bad_token};

/// Token slots of a KV block (`kv_block_tokens`).
const BLOCK_TOKENS: u64 = 16;
/// Logit rows remembered per run, by fingerprint.
const LOGITS_REMEMBERED: usize = 256;
/// How far two decodes of the same inputs may differ, relative to the row's largest
/// logit: the batch around a token changes only the order of independent row work.
const SAME_INPUTS_TOLERANCE: f32 = 1e-4;

/// What a refused operation must leave as it was: the block counts and every
/// sequence's last position.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    used: u64,
    free: u64,
    pos_max: Vec<i32>,
}

pub struct DecodeRun {
    ctx: *mut rf_context,
    shadow: Shadow,
    n_vocab: usize,
    n_batch: usize,
    blocks_total: u64,
    /// Logits decoded at each fingerprint so far.
    logits_seen: HashMap<u64, Vec<f32>>,
    /// The rows of the last accepted decode.
    last_rows: Vec<Vec<f32>>,
}

impl DecodeRun {
    /// A context of `shape` on `model`, a model with `n_vocab` tokens.
    ///
    /// # Safety
    /// `model` must be live for as long as the run is.
    pub unsafe fn new(model: *const rf_model, n_vocab: usize, shape: ContextShape) -> DecodeRun {
        let params = rf_context_params {
            n_ctx: shape.n_ctx,
            n_seq_max: shape.n_seq_max,
            n_batch: shape.n_batch,
            n_threads: 1,
            ..rf_context_default_params()
        };
        let mut ctx = ptr::null_mut();
        // SAFETY: `model` is live by this function's contract; `params` and `ctx` are valid.
        let status = unsafe { rf_context_new(model, &params, &mut ctx) };
        assert_no_panic(status, "rf_context_new");
        assert_eq!(status, rf_status::RF_OK, "{shape:?}: {}", last_error());
        let mut run = DecodeRun {
            ctx,
            shadow: Shadow::new(shape.n_seq_max as usize),
            n_vocab,
            n_batch: 0,
            blocks_total: 0,
            logits_seen: HashMap::new(),
            last_rows: Vec::new(),
        };
        let report = run.memory();
        let n_ctx = u64::from(shape.n_ctx);
        assert_eq!(report.kv_block_tokens, BLOCK_TOKENS);
        assert_eq!(
            report.kv_blocks_total,
            n_ctx.div_ceil(BLOCK_TOKENS),
            "n_ctx {n_ctx} is rounded up to whole blocks"
        );
        run.blocks_total = report.kv_blocks_total;
        // A batch never holds more tokens than the cache.
        run.n_batch =
            (shape.n_batch as usize).min((report.kv_blocks_total * BLOCK_TOKENS) as usize);
        run.check_state();
        run
    }

    /// Runs `op`, checks its status against the shadow's, then every invariant.
    pub fn run(&mut self, op: &Op) {
        let before = self.snapshot();
        let accepted = match op {
            Op::Decode(batch) => self.decode(batch, before.free),
            &Op::Remove { seq, p0, p1 } => {
                // SAFETY: `self.ctx` is live.
                let status = unsafe { rf_seq_remove(self.ctx, seq, p0, p1) };
                expect_sequence_op(status, self.shadow.remove(seq, p0, p1), op)
            }
            &Op::Copy { src, dst, p0, p1 } => {
                // SAFETY: `self.ctx` is live.
                let status = unsafe { rf_seq_copy(self.ctx, src, dst, p0, p1) };
                expect_sequence_op(status, self.shadow.copy(src, dst, p0, p1), op)
            }
            Op::Cancel => {
                // SAFETY: `self.ctx` is live.
                let status = unsafe { rf_context_cancel(self.ctx) };
                assert_eq!(status, rf_status::RF_OK, "rf_context_cancel");
                false
            }
        };
        if !accepted {
            assert_eq!(
                self.snapshot(),
                before,
                "{op:?} was refused but changed the cache"
            );
        }
        self.check_state();
    }

    /// Decodes `b`; true when the library took it (it must have, or refused it as the
    /// shadow says it may).
    fn decode(&mut self, b: &BatchSpec, free_before: u64) -> bool {
        let n = b.tokens.len();
        let batch = rf_batch {
            n_tokens: n,
            tokens: b.tokens.as_ptr(),
            positions: b.positions.as_ref().map_or(ptr::null(), |p| p.as_ptr()),
            seq_ids: b.seq_ids.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            want_logits: b.want_logits.as_ref().map_or(ptr::null(), |w| w.as_ptr()),
        };
        // SAFETY: `self.ctx` is live; each array holds `n` elements or is NULL.
        let status = unsafe { rf_decode(self.ctx, &batch) };
        assert_no_panic(status, "rf_decode");
        let error = || last_error();
        // No call was running when a cancel came, so the decode dropped it.
        assert_ne!(status, rf_status::RF_ERR_CANCELLED, "{b:?}: a stale cancel");
        let seq_ids = b.seq_ids.clone().unwrap_or_else(|| vec![0; n]);
        let placed = if n == 0 || n > self.n_batch {
            Err(format!(
                "{n} tokens, the context takes 1 to {}",
                self.n_batch
            ))
        } else {
            self.shadow
                .place(&b.tokens, &seq_ids, b.positions.as_deref())
        };
        let placed = match placed {
            Ok(placed) => placed,
            Err(reason) => {
                assert_eq!(
                    status,
                    rf_status::RF_ERR_INVALID_ARGUMENT,
                    "{b:?} must be refused ({reason}): {}",
                    error()
                );
                self.expect_last_or_no_logits(status);
                return false;
            }
        };
        let bad_token = bad_token(&b.tokens, self.n_vocab);
        // Each token starts at most one block, and each sequence copies at most its
        // shared tail block: with that many free, the batch fits.
        let mut seqs: Vec<usize> = placed.iter().map(|p| p.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let fits = free_before >= (n + seqs.len()) as u64;
        match status {
            rf_status::RF_OK if bad_token.is_none() => {
                self.shadow.append(&placed);
                self.check_logits(b, &placed);
                return true;
            }
            rf_status::RF_ERR_INVALID_ARGUMENT if bad_token.is_some() => {}
            rf_status::RF_ERR_CONTEXT_FULL if !fits => {}
            other => panic!(
                "{b:?}: got {other:?} ({}); expected {}",
                error(),
                match (&bad_token, fits) {
                    (Some(t), _) => format!("RF_ERR_INVALID_ARGUMENT for {t}"),
                    (None, true) => format!("RF_OK: {free_before} blocks free"),
                    (None, false) => "RF_OK or RF_ERR_CONTEXT_FULL".into(),
                }
            ),
        }
        self.expect_last_or_no_logits(status);
        false
    }

    /// After an accepted batch: one finite row of `n_vocab` logits per token that asked,
    /// and nothing past them; a row equal to an earlier one decoded from the same inputs.
    fn check_logits(&mut self, b: &BatchSpec, placed: &[Placed]) {
        let n = b.tokens.len();
        let wanted: Vec<usize> = match &b.want_logits {
            Some(w) => (0..n).filter(|&i| w[i] != 0).collect(),
            None => vec![n - 1],
        };
        let mut rows = Vec::with_capacity(wanted.len());
        for (row, &token) in wanted.iter().enumerate() {
            let logits = self
                .logits(row as i32)
                .unwrap_or_else(|s| panic!("{b:?}: logits of output {row}: {s:?}"));
            assert_eq!(logits.len(), self.n_vocab, "logits of output {row}");
            assert!(
                logits.iter().all(|v| v.is_finite()),
                "{b:?}: output {row} has a logit that is not finite"
            );
            self.compare_with_earlier(placed[token].fingerprint, &logits, b);
            rows.push(logits);
        }
        for output in [wanted.len() as i32, -2] {
            assert_eq!(
                self.logits(output).map(drop),
                Err(rf_status::RF_ERR_INVALID_ARGUMENT),
                "{b:?}: output {output} does not exist"
            );
        }
        assert_eq!(
            self.logits(-1).ok(),
            rows.last().cloned(),
            "{b:?}: output -1 is the last row"
        );
        self.last_rows = rows;
    }

    fn compare_with_earlier(&mut self, fingerprint: u64, logits: &[f32], b: &BatchSpec) {
        let Some(earlier) = self.logits_seen.get(&fingerprint) else {
            if self.logits_seen.len() < LOGITS_REMEMBERED {
                self.logits_seen.insert(fingerprint, logits.to_vec());
            }
            return;
        };
        let scale = earlier.iter().fold(1f32, |m, v| m.max(v.abs()));
        let (worst, at) = earlier
            .iter()
            .zip(logits)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold(
                (0f32, 0),
                |(w, at), (i, d)| if d > w { (d, i) } else { (w, at) },
            );
        assert!(
            worst <= SAME_INPUTS_TOLERANCE * scale,
            "{b:?}: logits differ from an earlier decode of the same token, position and \
             context by {worst} at token {at} ({} vs {})",
            earlier[at],
            logits[at]
        );
    }

    /// After a refused decode, `rf_get_logits` gives nothing, or the last accepted
    /// decode's rows untouched (a batch refused before it reaches the context, such as an
    /// empty one, leaves them, as llama.cpp's `llama_decode` does); never a row the refused
    /// batch half wrote.
    fn expect_last_or_no_logits(&self, status: rf_status) {
        for (row, last) in self.last_rows.iter().enumerate() {
            if let Ok(logits) = self.logits(row as i32) {
                assert!(
                    logits
                        .iter()
                        .zip(last)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "logits of output {row} changed in a decode that gave {status:?}"
                );
            }
        }
    }

    fn logits(&self, output: i32) -> Result<Vec<f32>, rf_status> {
        let (mut data, mut len) = (ptr::null(), 0usize);
        // SAFETY: `self.ctx` is live; `data` and `len` are writable.
        let status = unsafe { rf_get_logits(self.ctx, output, &mut data, &mut len) };
        assert_no_panic(status, "rf_get_logits");
        if status != rf_status::RF_OK {
            return Err(status);
        }
        // SAFETY: on success `data` holds `len` floats until the next decode.
        Ok(unsafe { std::slice::from_raw_parts(data, len) }.to_vec())
    }

    fn memory(&self) -> rf_memory_report {
        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut report: rf_memory_report = unsafe { std::mem::zeroed() };
        report.struct_size = size_of::<rf_memory_report>() as u32;
        // SAFETY: `self.ctx` is live; `report` is writable for its `struct_size`.
        let status = unsafe { rf_context_memory(self.ctx, &mut report) };
        assert_no_panic(status, "rf_context_memory");
        assert_eq!(
            status,
            rf_status::RF_OK,
            "rf_context_memory: {}",
            last_error()
        );
        report
    }

    fn pos_max(&self, seq: i32) -> Result<i32, rf_status> {
        let mut pos = 0;
        // SAFETY: `self.ctx` is live; `pos` is writable.
        let status = unsafe { rf_seq_pos_max(self.ctx, seq, &mut pos) };
        assert_no_panic(status, "rf_seq_pos_max");
        match status {
            rf_status::RF_OK => Ok(pos),
            other => Err(other),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let report = self.memory();
        Snapshot {
            used: report.kv_blocks_used,
            free: report.kv_blocks_free,
            pos_max: (0..self.shadow.n_seq_max() as i32)
                .map(|s| self.pos_max(s).unwrap_or(i32::MIN))
                .collect(),
        }
    }

    /// The KV bookkeeping invariants.
    fn check_state(&self) {
        let r = self.memory();
        assert_eq!(
            r.kv_blocks_used + r.kv_blocks_free,
            r.kv_blocks_total,
            "used + free == total"
        );
        assert_eq!(r.kv_blocks_total, self.blocks_total, "the cache's size");
        assert_eq!(r.kv_block_tokens, BLOCK_TOKENS);
        let n_seq_max = self.shadow.n_seq_max();
        for seq in 0..n_seq_max {
            assert_eq!(
                self.pos_max(seq as i32),
                Ok(self.shadow.pos_max(seq)),
                "rf_seq_pos_max of sequence {seq}"
            );
            // A sequence's tokens sit in distinct slots of blocks in use.
            let blocks = (self.shadow.len(seq) as u64).div_ceil(BLOCK_TOKENS);
            assert!(
                r.kv_blocks_used >= blocks,
                "sequence {seq} holds {} tokens in {} used blocks",
                self.shadow.len(seq),
                r.kv_blocks_used
            );
        }
        for seq in [-1, n_seq_max as i32] {
            assert_eq!(
                self.pos_max(seq),
                Err(rf_status::RF_ERR_INVALID_ARGUMENT),
                "rf_seq_pos_max of sequence {seq}"
            );
        }
        if self.shadow.is_empty() {
            assert_eq!(r.kv_blocks_used, 0, "blocks used with every sequence empty");
        }
    }
}

/// Checks a sequence operation's status: `RF_OK` when its ids were valid, else
/// `RF_ERR_INVALID_ARGUMENT`; returns whether it was accepted.
fn expect_sequence_op(status: rf_status, valid: bool, op: &Op) -> bool {
    assert_no_panic(status, "a sequence operation");
    let expected = if valid {
        rf_status::RF_OK
    } else {
        rf_status::RF_ERR_INVALID_ARGUMENT
    };
    assert_eq!(status, expected, "{op:?}: {}", last_error());
    valid
}

impl Drop for DecodeRun {
    fn drop(&mut self) {
        // SAFETY: `self.ctx` came from `rf_context_new` and is freed once.
        unsafe { rf_context_free(self.ctx) }
    }
}
