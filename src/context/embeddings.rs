//! Embeddings: the last decode's hidden states after the output norm (the head's input,
//! what llama.cpp returns with embeddings on), per output or pooled over a sequence.

use super::Context;
use crate::error::{Error, Result};

/// How [`Context::embeddings`] combines a sequence's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// One output's own row: the index is an output index (-1: the last).
    None,
    /// The mean over every token of the sequence in the last batch.
    Mean,
    /// The sequence's first token in the last batch (BERT's CLS position).
    Cls,
    /// The sequence's last token in the last batch.
    Last,
}

impl Context {
    /// The embedding of output `index` (`Pooling::None`; -1: the last output) or of
    /// sequence `index` pooled over its tokens in the last batch, into `out` (`n_embd`
    /// values), scaled to unit length with `normalize`. The tokens pooled must have asked
    /// for outputs (`WantLogits::All` gives every token one); one that did not is an
    /// `InvalidArgument` naming it. After [`Context::state_seq_load`] or
    /// [`Context::recompute_last_logits`] the last step was that one token on its own, so
    /// only `Pooling::None` applies until the next decode.
    pub fn embeddings(
        &mut self,
        index: i32,
        pooling: Pooling,
        normalize: bool,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let rows = match pooling {
            Pooling::None => vec![self.output_row(index)?],
            _ => self.pooled_rows(index, pooling)?,
        };
        let n_embd = self.model.config().n_embd;
        let hidden = self.backend.embeddings()?;
        out.clear();
        out.try_reserve_exact(n_embd)
            .map_err(|_| Error::OutOfMemory("no host memory for an embedding".into()))?;
        out.resize(n_embd, 0.0);
        for &row in &rows {
            for (sum, &v) in out
                .iter_mut()
                .zip(&hidden[row * n_embd..(row + 1) * n_embd])
            {
                *sum += v;
            }
        }
        // Normalising the sum gives the mean's direction.
        let scale = if normalize {
            let norm = out
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 { (1.0 / norm) as f32 } else { 0.0 }
        } else {
            1.0 / rows.len() as f32
        };
        out.iter_mut().for_each(|v| *v *= scale);
        Ok(())
    }

    /// The output rows `pooling` combines for sequence `seq`, in token order.
    fn pooled_rows(&self, seq: i32, pooling: Pooling) -> Result<Vec<usize>> {
        let seq_index = self.seq_index(seq)? as u32;
        let step = &self.step;
        let mut tokens = (0..step.n_tokens).filter(|&t| step.seq_of_token[t] == seq_index);
        let wanted: Vec<usize> = match pooling {
            Pooling::Cls => tokens.next().into_iter().collect(),
            Pooling::Last => tokens.next_back().into_iter().collect(),
            _ => tokens.collect(),
        };
        if wanted.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "sequence {seq} had no token in the last batch"
            )));
        }
        let outputs = &step.output_tokens[..step.n_outputs];
        wanted
            .iter()
            .map(|&t| {
                outputs.iter().position(|&o| o as usize == t).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "token {t} of the last batch (sequence {seq}) asked for no output: decode it with logits to pool it"
                    ))
                })
            })
            .collect()
    }
}
