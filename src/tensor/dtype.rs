//! GGML tensor data types: their GGUF type ids, block sizes and byte sizes.
//!
//! Quantized types store values in blocks: `block_size` consecutive values of a row share
//! scales and take `block_bytes` bytes. Plain types are blocks of one value.

use std::fmt;

/// Every tensor data type a GGUF file may declare today. The discriminant is the type id
/// stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2K = 10,
    Q3K = 11,
    Q4K = 12,
    Q5K = 13,
    Q6K = 14,
    Q8K = 15,
    Iq2Xxs = 16,
    Iq2Xs = 17,
    Iq3Xxs = 18,
    Iq1S = 19,
    Iq4Nl = 20,
    Iq3S = 21,
    Iq2S = 22,
    Iq4Xs = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    Iq1M = 29,
    Bf16 = 30,
    Tq1_0 = 34,
    Tq2_0 = 35,
    Mxfp4 = 39,
}

/// What a type id read from a file means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeIdLookup {
    Known(GgmlType),
    /// An id ggml once used and then dropped; files with it need converting again.
    Removed(&'static str),
    Unknown,
}

impl GgmlType {
    pub const ALL: [GgmlType; 32] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q8K,
        GgmlType::Iq2Xxs,
        GgmlType::Iq2Xs,
        GgmlType::Iq3Xxs,
        GgmlType::Iq1S,
        GgmlType::Iq4Nl,
        GgmlType::Iq3S,
        GgmlType::Iq2S,
        GgmlType::Iq4Xs,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
        GgmlType::F64,
        GgmlType::Iq1M,
        GgmlType::Bf16,
        GgmlType::Tq1_0,
        GgmlType::Tq2_0,
        GgmlType::Mxfp4,
    ];

    /// Interprets a type id from a GGUF tensor info.
    pub fn from_id(id: u32) -> TypeIdLookup {
        if let Some(t) = Self::ALL.iter().find(|t| t.id() == id) {
            return TypeIdLookup::Known(*t);
        }
        match id {
            4 => TypeIdLookup::Removed("Q4_2"),
            5 => TypeIdLookup::Removed("Q4_3"),
            31 => TypeIdLookup::Removed("Q4_0_4_4"),
            32 => TypeIdLookup::Removed("Q4_0_4_8"),
            33 => TypeIdLookup::Removed("Q4_0_8_8"),
            36 => TypeIdLookup::Removed("IQ4_NL_4_4"),
            37 => TypeIdLookup::Removed("IQ4_NL_4_8"),
            38 => TypeIdLookup::Removed("IQ4_NL_8_8"),
            _ => TypeIdLookup::Unknown,
        }
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// The name ggml and gguf-py use (`Q4_K`, `BF16`, …).
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            Iq2Xxs => "IQ2_XXS",
            Iq2Xs => "IQ2_XS",
            Iq3Xxs => "IQ3_XXS",
            Iq1S => "IQ1_S",
            Iq4Nl => "IQ4_NL",
            Iq3S => "IQ3_S",
            Iq2S => "IQ2_S",
            Iq4Xs => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            Iq1M => "IQ1_M",
            Bf16 => "BF16",
            Tq1_0 => "TQ1_0",
            Tq2_0 => "TQ2_0",
            Mxfp4 => "MXFP4",
        }
    }

    /// Values per block.
    pub fn block_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | F16 | Bf16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | Iq4Nl | Mxfp4 => 32,
            Q2K | Q3K | Q4K | Q5K | Q6K | Q8K | Iq2Xxs | Iq2Xs | Iq3Xxs | Iq1S | Iq3S | Iq2S
            | Iq4Xs | Iq1M | Tq1_0 | Tq2_0 => 256,
        }
    }

    /// Bytes one block takes in a file.
    pub fn block_bytes(self) -> u64 {
        use GgmlType::*;
        match self {
            I8 => 1,
            F16 | Bf16 | I16 => 2,
            F32 | I32 => 4,
            F64 | I64 => 8,
            Mxfp4 => 17,
            Q4_0 | Iq4Nl => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Iq1S => 50,
            Tq1_0 => 54,
            Iq1M => 56,
            Iq2Xxs | Tq2_0 => 66,
            Iq2Xs => 74,
            Iq2S => 82,
            Q2K => 84,
            Iq3Xxs => 98,
            Q3K | Iq3S => 110,
            Iq4Xs => 136,
            Q4K => 144,
            Q5K => 176,
            Q6K => 210,
            Q8K => 292,
        }
    }

    /// Bytes taken by `n_values` values, or `None` when `n_values` is not a whole number
    /// of blocks or the size overflows.
    pub fn bytes_for(self, n_values: u64) -> Option<u64> {
        if !n_values.is_multiple_of(self.block_size()) {
            return None;
        }
        (n_values / self.block_size()).checked_mul(self.block_bytes())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), TypeIdLookup::Known(t));
        }
        let mut ids: Vec<u32> = GgmlType::ALL.iter().map(|t| t.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), GgmlType::ALL.len());
    }

    #[test]
    fn removed_and_unknown_ids_are_told_apart() {
        assert_eq!(GgmlType::from_id(4), TypeIdLookup::Removed("Q4_2"));
        assert_eq!(GgmlType::from_id(36), TypeIdLookup::Removed("IQ4_NL_4_4"));
        assert_eq!(GgmlType::from_id(40), TypeIdLookup::Unknown);
        assert_eq!(GgmlType::from_id(u32::MAX), TypeIdLookup::Unknown);
    }

    #[test]
    fn byte_sizes_follow_blocks() {
        assert_eq!(GgmlType::Q4K.bytes_for(512), Some(288));
        assert_eq!(GgmlType::Q4_0.bytes_for(33), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
    }
}
