//! Decode seeds: the scenarios a host runs (prefill then decode, a fork that shares its
//! prompt, a rollback that decodes again, a full cache, holes) and the batches it must
//! refuse. The fork and rollback decode the same token at the same position in the same
//! context twice, so their logits are compared.

use rocmforge_fuzz::decode_program::{BatchSpec, ContextShape, Op, encode};

use super::Seeds;

/// Tokens of "the thing" in the tiny models' vocabulary, and more text.
const PROMPT: [i32; 12] = [116, 104, 101, 32, 116, 104, 105, 110, 103, 46, 263, 258];

fn shape(n_ctx: u32, n_seq_max: u32, n_batch: u32) -> ContextShape {
    ContextShape {
        n_ctx,
        n_seq_max,
        n_batch,
    }
}

/// Tokens on sequence 0 at the positions after its last.
fn plain(tokens: &[i32]) -> Op {
    Op::Decode(BatchSpec {
        tokens: tokens.to_vec(),
        ..BatchSpec::default()
    })
}

/// Tokens at explicit sequences and positions, all asking for logits.
fn placed(entries: &[(i32, i32, i32)]) -> Op {
    Op::Decode(BatchSpec {
        tokens: entries.iter().map(|e| e.0).collect(),
        seq_ids: Some(entries.iter().map(|e| e.1).collect()),
        positions: Some(entries.iter().map(|e| e.2).collect()),
        want_logits: Some(vec![1; entries.len()]),
    })
}

pub fn seeds() -> Seeds {
    let scenarios: Vec<(&str, ContextShape, Vec<Op>)> = vec![
        (
            "prefill-then-decode",
            shape(64, 1, 16),
            vec![
                plain(&PROMPT[..10]),
                plain(&[258]),
                plain(&[32]),
                plain(&[116]),
            ],
        ),
        (
            "fork-shares-the-prompt",
            shape(64, 2, 16),
            vec![
                plain(&PROMPT[..8]),
                Op::Copy {
                    src: 0,
                    dst: 1,
                    p0: -1,
                    p1: -1,
                },
                placed(&[(103, 0, 8), (103, 1, 8)]),
                placed(&[(32, 1, 9)]),
            ],
        ),
        (
            "rollback-decodes-again",
            shape(48, 1, 12),
            vec![
                plain(&PROMPT),
                Op::Remove {
                    seq: 0,
                    p0: 8,
                    p1: -1,
                },
                placed(&[(103, 0, 8), (46, 0, 9)]),
            ],
        ),
        (
            "full-cache",
            shape(32, 2, 16),
            vec![
                plain(&[116; 16]),
                plain(&[104; 16]),
                plain(&[101]),
                Op::Remove {
                    seq: 0,
                    p0: -1,
                    p1: -1,
                },
                plain(&[101]),
            ],
        ),
        (
            "holes-and-partial-copy",
            shape(80, 3, 8),
            vec![
                plain(&PROMPT[..8]),
                Op::Remove {
                    seq: 0,
                    p0: 2,
                    p1: 5,
                },
                Op::Copy {
                    src: 0,
                    dst: 2,
                    p0: 0,
                    p1: 6,
                },
                placed(&[(46, 0, 8), (46, 2, 9), (258, 1, 0)]),
            ],
        ),
        (
            "refused-batches",
            shape(16, 2, 4),
            vec![
                placed(&[(116, 2, 0)]),
                placed(&[(116, 0, 5), (104, 0, 5)]),
                placed(&[(9999, 0, 0)]),
                placed(&[(-1, 1, 0)]),
                Op::Decode(BatchSpec::default()),
                plain(&[1, 2, 3, 4, 5]),
                Op::Cancel,
                plain(&[7]),
                Op::Remove {
                    seq: 3,
                    p0: 0,
                    p1: 1,
                },
                Op::Copy {
                    src: 0,
                    dst: -1,
                    p0: 0,
                    p1: 1,
                },
            ],
        ),
        (
            "positions-near-the-limit",
            shape(16, 1, 4),
            vec![placed(&[(1, 0, i32::MAX - 2)]), plain(&[2, 3])],
        ),
    ];
    scenarios
        .into_iter()
        .map(|(name, shape, ops)| (name.to_owned(), encode(shape, &ops)))
        .collect()
}
