//! How the KV cache stores each cached K or V value.

use crate::backend::cpu::quantize_q8_0;
use crate::error::{Error, Result};
use crate::tensor::{GgmlType, dequantize_row};

/// The KV cache's element type. A row of K or V (one token, one layer) is stored as the
/// GGUF tensor type of the same name lays out a row of values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvType {
    /// llama.cpp's default: half the bytes of f32, no visible loss.
    #[default]
    F16,
    F32,
    /// Blocks of 32 values, an f16 step and 32 8-bit quants (34 bytes): 53% of F16's
    /// bytes, for contexts twice as long in the same memory.
    Q8_0,
}

/// Values per Q8_0 block.
pub(crate) const Q8_0_BLOCK: usize = 32;
/// Bytes per Q8_0 block.
pub(crate) const Q8_0_BLOCK_BYTES: usize = 34;

impl KvType {
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "F16",
            KvType::F32 => "F32",
            KvType::Q8_0 => "Q8_0",
        }
    }

    /// The number a saved sequence state records for this type (ggml's type id).
    pub fn id(self) -> u32 {
        self.ggml_type() as u32
    }

    /// The type a saved sequence state's id names.
    pub fn from_id(id: u32) -> Option<KvType> {
        [KvType::F16, KvType::F32, KvType::Q8_0]
            .into_iter()
            .find(|t| t.id() == id)
    }

    fn ggml_type(self) -> GgmlType {
        match self {
            KvType::F16 => GgmlType::F16,
            KvType::F32 => GgmlType::F32,
            KvType::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// Refuses heads this type cannot store: a Q8_0 block must not straddle two heads,
    /// since attention reads one head's values at a time.
    pub fn check_head_dim(self, head_dim: usize) -> Result<()> {
        if self == KvType::Q8_0 && !head_dim.is_multiple_of(Q8_0_BLOCK) {
            return Err(Error::Unsupported(format!(
                "a Q8_0 KV cache needs heads of a multiple of {Q8_0_BLOCK} values; this model's have {head_dim}"
            )));
        }
        Ok(())
    }

    /// Bytes of `values` values (for Q8_0, a multiple of 32).
    pub fn bytes(self, values: usize) -> usize {
        match self {
            KvType::F16 => values * 2,
            KvType::F32 => values * 4,
            KvType::Q8_0 => values / Q8_0_BLOCK * Q8_0_BLOCK_BYTES,
        }
    }

    /// Stores `values` into `out` (`self.bytes(values.len())` bytes).
    pub fn encode(self, values: &[f32], out: &mut [u8]) {
        match self {
            KvType::F16 => {
                for (v, bytes) in values.iter().zip(out.chunks_exact_mut(2)) {
                    bytes.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                }
            }
            KvType::F32 => {
                for (v, bytes) in values.iter().zip(out.chunks_exact_mut(4)) {
                    bytes.copy_from_slice(&v.to_le_bytes());
                }
            }
            KvType::Q8_0 => quantize_q8_0(values, out),
        }
    }

    /// Reads `out.len()` values stored by [`encode`](Self::encode) from `bytes`; a
    /// length that is not theirs is an error.
    pub fn decode(self, bytes: &[u8], out: &mut [f32]) -> Result<()> {
        dequantize_row(self.ggml_type(), bytes, out)
    }
}
