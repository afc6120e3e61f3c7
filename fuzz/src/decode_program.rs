//! The decode target's input: a context's shape, then a program of operations on it.
//!
//! Format (every read past the end gives 0, see [`ByteReader`]):
//! - three bytes: `n_ctx` (1 to 96 slots), `n_seq_max` (1 to 4), `n_batch` (1 to 24);
//! - operations until the input ends (at most [`MAX_OPS`]), each a kind byte:
//!   - decode (kind % 8 in 0..=3): a token count in `0..=n_batch + 1` (0 and `n_batch +
//!     1` are refused), a flags byte (bit 0: explicit positions, bit 1: explicit sequence
//!     ids, bit 2: explicit logit flags), then per token its id, and as the flags say its
//!     position, its sequence id and its logit flag;
//!   - remove (4, 5): sequence id, `p0`, `p1`;
//!   - copy (6): source, destination, `p0`, `p1`;
//!   - cancel (7): `rf_context_cancel` with no call running, which the next decode drops.
//!
//! Ids are [`ByteReader::index`]es (mostly in range), positions [`ByteReader::i32_wide`]s.

use crate::bytes::{ByteReader, ByteWriter};

/// Operations one input may run: a bound on the time one input takes.
pub const MAX_OPS: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextShape {
    pub n_ctx: u32,
    pub n_seq_max: u32,
    pub n_batch: u32,
}

/// One `rf_decode` batch; `None` arrays are passed as NULL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchSpec {
    pub tokens: Vec<i32>,
    pub positions: Option<Vec<i32>>,
    pub seq_ids: Option<Vec<i32>>,
    pub want_logits: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Decode(BatchSpec),
    Remove {
        seq: i32,
        p0: i32,
        p1: i32,
    },
    Copy {
        src: i32,
        dst: i32,
        p0: i32,
        p1: i32,
    },
    Cancel,
}

const KIND_DECODE: u8 = 0;
const KIND_REMOVE: u8 = 4;
const KIND_COPY: u8 = 6;
const KIND_CANCEL: u8 = 7;

const FLAG_POSITIONS: u8 = 1;
const FLAG_SEQ_IDS: u8 = 2;
const FLAG_WANT: u8 = 4;

/// Reads a context shape and its program; `n_vocab` bounds the token ids mostly drawn.
pub fn parse(bytes: &[u8], n_vocab: usize) -> (ContextShape, Vec<Op>) {
    let mut r = ByteReader::new(bytes);
    let shape = ContextShape {
        n_ctx: 1 + r.below(96) as u32,
        n_seq_max: 1 + r.below(4) as u32,
        n_batch: 1 + r.below(24) as u32,
    };
    // One past the last valid sequence id is drawn too.
    let seq_range = shape.n_seq_max as usize + 1;
    let mut ops = Vec::new();
    while !r.is_empty() && ops.len() < MAX_OPS {
        let op = match r.u8() % 8 {
            0..=3 => {
                let n = r.below(shape.n_batch as usize + 2);
                let flags = r.u8();
                let mut batch = BatchSpec {
                    positions: (flags & FLAG_POSITIONS != 0).then(Vec::new),
                    seq_ids: (flags & FLAG_SEQ_IDS != 0).then(Vec::new),
                    want_logits: (flags & FLAG_WANT != 0).then(Vec::new),
                    ..BatchSpec::default()
                };
                for _ in 0..n {
                    batch.tokens.push(r.index(n_vocab));
                    if let Some(p) = &mut batch.positions {
                        p.push(r.i32_wide());
                    }
                    if let Some(s) = &mut batch.seq_ids {
                        s.push(r.index(seq_range));
                    }
                    if let Some(w) = &mut batch.want_logits {
                        w.push(r.u8() & 1);
                    }
                }
                Op::Decode(batch)
            }
            4 | 5 => Op::Remove {
                seq: r.index(seq_range),
                p0: r.i32_wide(),
                p1: r.i32_wide(),
            },
            6 => Op::Copy {
                src: r.index(seq_range),
                dst: r.index(seq_range),
                p0: r.i32_wide(),
                p1: r.i32_wide(),
            },
            _ => Op::Cancel,
        };
        ops.push(op);
    }
    (shape, ops)
}

/// The bytes [`parse`] reads back as `shape` and `ops` (for the seed corpus). Values must
/// be ones the reader can produce: `n_ctx` 1 to 96, `n_seq_max` 1 to 4, `n_batch` 1 to
/// 24, token counts up to `n_batch + 1`, array lengths equal to the token count.
pub fn encode(shape: ContextShape, ops: &[Op]) -> Vec<u8> {
    let mut w = ByteWriter::default();
    w.u8((shape.n_ctx - 1) as u8)
        .u8((shape.n_seq_max - 1) as u8)
        .u8((shape.n_batch - 1) as u8);
    for op in ops {
        match op {
            Op::Decode(b) => {
                let flags = [
                    (b.positions.is_some(), FLAG_POSITIONS),
                    (b.seq_ids.is_some(), FLAG_SEQ_IDS),
                    (b.want_logits.is_some(), FLAG_WANT),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .fold(0, |acc, (_, bit)| acc | bit);
                w.u8(KIND_DECODE).u8(b.tokens.len() as u8).u8(flags);
                for (i, &token) in b.tokens.iter().enumerate() {
                    w.index(token);
                    if let Some(p) = &b.positions {
                        w.i32_wide(p[i]);
                    }
                    if let Some(s) = &b.seq_ids {
                        w.index(s[i]);
                    }
                    if let Some(want) = &b.want_logits {
                        w.u8(want[i]);
                    }
                }
            }
            &Op::Remove { seq, p0, p1 } => {
                w.u8(KIND_REMOVE).index(seq).i32_wide(p0).i32_wide(p1);
            }
            &Op::Copy { src, dst, p0, p1 } => {
                w.u8(KIND_COPY)
                    .index(src)
                    .index(dst)
                    .i32_wide(p0)
                    .i32_wide(p1);
            }
            Op::Cancel => {
                w.u8(KIND_CANCEL);
            }
        }
    }
    w.bytes
}
