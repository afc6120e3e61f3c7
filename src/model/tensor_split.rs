//! How a tensor split divides each layer over GPUs: every GPU takes whole K/V heads with
//! the query heads that read them, and a contiguous slice of the FFN's hidden width. Its
//! Q/K/V and gate/up products are then its rows of those matrices and its attention its
//! own heads over its own K/V cache; the attention output and down products take its
//! columns of theirs, giving partial sums of the whole residual stream that an all-reduce
//! adds up (twice a layer). Norms, the embedding and the output head are not split.

use std::ops::Range;

use super::config::ModelConfig;
use super::placement::shares_in_proportion;
use crate::backend::Shape;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// What a tensor split of a layer depends on.
#[derive(Clone, Copy, Debug)]
pub struct TensorSplitShape {
    pub n_head: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// The FFN's hidden width (gate and up rows, down columns).
    pub n_ff: usize,
    /// Values per block of the attention output matrix's rows (1 for F16 and F32, 32 or
    /// 256 for the quantized types): a device's columns must be whole blocks.
    pub output_block: usize,
    /// The same for the down matrix.
    pub down_block: usize,
}

impl TensorSplitShape {
    /// The shape of `config`'s layers, with the widest blocks of `file`'s attention output
    /// and down matrices.
    pub fn of(config: &ModelConfig, file: &GgufFile<'_>) -> TensorSplitShape {
        let widest = |name: &str| {
            (0..config.n_layer)
                .filter_map(|i| file.tensor_info(&format!("blk.{i}.{name}.weight")))
                .map(|t| t.dtype().block_size() as usize)
                .max()
                .unwrap_or(1)
        };
        TensorSplitShape {
            n_head: config.n_head,
            n_kv_heads: config.n_head_kv,
            head_dim: config.head_dim,
            n_ff: config.n_ff,
            output_block: widest("attn_output"),
            down_block: widest("ffn_down"),
        }
    }
}

/// One device's part of every layer.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorShare {
    pub kv_heads: Range<usize>,
    /// The query heads that read `kv_heads` (grouped-query attention).
    pub q_heads: Range<usize>,
    /// Rows of gate and up, columns of down.
    pub ff: Range<usize>,
}

impl TensorShare {
    /// The shape of a device's state for this share of a model of shape `whole`: its own
    /// query and K/V heads and FFN slice.
    pub fn shape_of(&self, whole: Shape) -> Shape {
        Shape {
            n_head: self.q_heads.len(),
            n_head_kv: self.kv_heads.len(),
            n_ff: self.ff.len(),
            ..whole
        }
    }
}

/// The quantized activations' group: a device's slice of a product's input must be whole
/// groups (`Q8_GROUP` on the GPU).
const ACTIVATION_GROUP: usize = 32;

/// Each device's share of `shape`'s layers, in proportion to `proportions` (one positive
/// value a device): K/V heads in runs whose attention output columns are whole blocks, FFN
/// slices of whole blocks of the down matrix and of the activation groups. Fails when a
/// device would get no K/V heads or no FFN slice, or the shape does not divide.
pub fn split_tensors(shape: &TensorSplitShape, proportions: &[f64]) -> Result<Vec<TensorShare>> {
    let n = proportions.len();
    let refuse = |why: String| {
        Err(Error::InvalidArgument(format!(
            "a tensor split over {n} devices of a layer with {} query heads, {} K/V heads of \
             {} values and an FFN of {}: {why}",
            shape.n_head, shape.n_kv_heads, shape.head_dim, shape.n_ff
        )))
    };
    if shape.n_kv_heads == 0 || !shape.n_head.is_multiple_of(shape.n_kv_heads) {
        return refuse("the query heads are not groups of the K/V heads".into());
    }
    let group = shape.n_head / shape.n_kv_heads;
    // The fewest K/V heads whose query heads' output columns are whole blocks.
    let columns = group * shape.head_dim;
    let output_block = shape.output_block.max(1);
    let heads_unit = lcm(columns, output_block) / columns;
    if !shape.n_kv_heads.is_multiple_of(heads_unit) {
        return refuse(format!(
            "the attention output's blocks of {output_block} values span {heads_unit} K/V \
             heads, which do not divide them"
        ));
    }
    let ff_unit = lcm(shape.down_block.max(1), ACTIVATION_GROUP);
    if !shape.n_ff.is_multiple_of(ff_unit) {
        return refuse(format!("the FFN is not whole slices of {ff_unit}"));
    }
    let Some(heads) = shares_in_proportion(shape.n_kv_heads / heads_unit, proportions) else {
        return refuse(format!(
            "each device needs at least {heads_unit} K/V heads of its own"
        ));
    };
    let Some(ff) = shares_in_proportion(shape.n_ff / ff_unit, proportions) else {
        return refuse(format!("each device needs at least {ff_unit} of the FFN"));
    };
    let scale = |r: &Range<usize>, unit: usize| r.start * unit..r.end * unit;
    Ok(heads
        .iter()
        .zip(&ff)
        .map(|(h, f)| {
            let kv_heads = scale(h, heads_unit);
            TensorShare {
                q_heads: scale(&kv_heads, group),
                kv_heads,
                ff: scale(f, ff_unit),
            }
        })
        .collect())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(n_head: usize, n_kv_heads: usize, head_dim: usize, n_ff: usize) -> TensorSplitShape {
        TensorSplitShape {
            n_head,
            n_kv_heads,
            head_dim,
            n_ff,
            output_block: 32,
            down_block: 32,
        }
    }

    #[test]
    fn an_8b_layer_splits_by_heads_and_ffn_slices_in_proportion() {
        let llama_8b = shape(32, 8, 128, 14336);
        assert_eq!(
            split_tensors(&llama_8b, &[1.0, 1.0]).unwrap(),
            vec![
                TensorShare {
                    kv_heads: 0..4,
                    q_heads: 0..16,
                    ff: 0..7168
                },
                TensorShare {
                    kv_heads: 4..8,
                    q_heads: 16..32,
                    ff: 7168..14336
                },
            ]
        );
        let uneven = split_tensors(&llama_8b, &[3.0, 1.0]).unwrap();
        assert_eq!(uneven[0].kv_heads, 0..6);
        assert_eq!(uneven[0].q_heads, 0..24);
        assert_eq!(uneven[0].ff, 0..10752);
        assert_eq!(uneven[1].ff, 10752..14336);
    }

    #[test]
    fn shares_cover_every_head_and_ffn_value_once_in_whole_blocks() {
        let shapes = [
            shape(32, 8, 128, 14336),
            shape(32, 8, 64, 8192),
            shape(9, 3, 64, 1536),
            shape(14, 2, 64, 4864),
        ];
        for s in shapes {
            for proportions in [&[1.0][..], &[1.0, 1.0], &[5.0, 2.0], &[1.0, 1.0, 1.0]] {
                let Ok(shares) = split_tensors(&s, proportions) else {
                    assert!(proportions.len() > s.n_kv_heads, "{s:?} {proportions:?}");
                    continue;
                };
                assert_eq!(shares.len(), proportions.len());
                let (mut kv, mut q, mut ff) = (0, 0, 0);
                for share in &shares {
                    assert_eq!(share.kv_heads.start, kv);
                    assert_eq!(share.q_heads.start, q);
                    assert_eq!(share.ff.start, ff);
                    assert!(!share.kv_heads.is_empty() && !share.ff.is_empty());
                    assert!(share.ff.start.is_multiple_of(32));
                    (kv, q, ff) = (share.kv_heads.end, share.q_heads.end, share.ff.end);
                }
                assert_eq!((kv, q, ff), (s.n_kv_heads, s.n_head, s.n_ff), "{s:?}");
            }
        }
    }

    #[test]
    fn output_blocks_wider_than_a_head_group_move_heads_together() {
        // 2 query heads of 64 values a K/V head: 128 columns, half a 256-value block.
        let s = TensorSplitShape {
            output_block: 256,
            down_block: 256,
            ..shape(8, 4, 64, 1024)
        };
        let shares = split_tensors(&s, &[1.0, 1.0]).unwrap();
        assert_eq!(shares[0].kv_heads, 0..2);
        assert_eq!(shares[1].q_heads, 4..8);
        assert_eq!(shares[1].ff, 512..1024);
        let err = split_tensors(&s, &[1.0, 1.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("at least 2 K/V heads"), "{err}");
        // SmolLM2's 3 K/V heads of 3 x 64 columns never make whole 256-value blocks.
        let smol = TensorSplitShape {
            output_block: 256,
            ..shape(9, 3, 64, 1536)
        };
        let err = split_tensors(&smol, &[1.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("do not divide them"), "{err}");
    }

    #[test]
    fn shapes_that_do_not_divide_are_refused() {
        assert!(split_tensors(&shape(32, 8, 128, 14336), &[1.0; 9]).is_err());
        assert!(split_tensors(&shape(30, 8, 128, 14336), &[1.0, 1.0]).is_err());
        assert!(split_tensors(&shape(32, 8, 128, 14340), &[1.0, 1.0]).is_err());
        assert!(split_tensors(&shape(32, 8, 128, 14336), &[]).is_err());
        let k_quant_down = TensorSplitShape {
            down_block: 256,
            ..shape(32, 8, 128, 14336 + 32)
        };
        let err = split_tensors(&k_quant_down, &[1.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("slices of 256"), "{err}");
    }
}
