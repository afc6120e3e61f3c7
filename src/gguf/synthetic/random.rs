//! Seeded random tensor data of any GGML type with a dequantizer, of a chosen spread. A
//! tensor is filled in chunks on every core: an 8B-class model is about 5 GB of it.

use half::{bf16, f16};

use super::SplitMix64;
use crate::error::{Error, Result};
use crate::tensor::{GgmlType, dequantize_row};

/// Bytes of a tensor one worker fills at a time (rounded down to whole blocks): large
/// enough that handing out a chunk costs nothing next to filling it, small enough to
/// spread one large tensor over every core.
const CHUNK_BYTES: usize = 1 << 20;

/// Blocks dequantized at a time to measure a chunk's spread, so the floats stay in cache.
const BLOCKS_PER_MEASURE: usize = 64;

/// `n_values` seeded random values of `dtype` (a whole number of its blocks) whose
/// root-mean-square, as the reference dequantizer reads them, is about `rms`.
///
/// Float types hold uniform values. Block types hold random quants and random scale
/// fields of either sign; every value is linear in a block's scale fields, so the tensor
/// is dequantized once and its scales multiplied to give it the wanted spread. Integer
/// types have no scale to make sane and are refused.
///
/// The first chunk continues `rng`'s stream, one draw a byte or float as this always did
/// (a tensor of one chunk holds what the tests' tolerances were measured on), and leaves
/// `rng` where it ends; every other chunk starts a stream of its own, so a large tensor's
/// bytes do not depend on how many threads fill them.
pub fn random_weights(
    dtype: GgmlType,
    n_values: u64,
    rms: f32,
    rng: &mut SplitMix64,
) -> Result<Vec<u8>> {
    let n_bytes = dtype
        .bytes_for(n_values)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{n_values} values are not a whole number of {dtype} blocks"
            ))
        })?;
    let fill = Fill::of(dtype, rms)?;
    let block_bytes = dtype.block_bytes() as usize;
    let chunk_bytes = (CHUNK_BYTES / block_bytes).max(1) * block_bytes;
    let mut data = vec![0u8; n_bytes];
    let start = rng.clone();
    let filled = for_each_chunk(&mut data, chunk_bytes, |i, chunk| {
        let mut stream = if i == 0 {
            start.clone()
        } else {
            SplitMix64(start.0 ^ (i as u64).wrapping_mul(0xd1b5_4a32_d192_ed03))
        };
        let sum_sq = fill.chunk(dtype, chunk, &mut stream)?;
        Ok::<_, Error>((sum_sq, stream))
    });
    let mut sum_sq = 0.0;
    for (i, result) in filled.into_iter().enumerate() {
        let (chunk_sum, after) = result?;
        sum_sq += chunk_sum;
        if i == 0 {
            *rng = after;
        }
    }
    if let Fill::Blocks(fields) = &fill {
        let actual = (sum_sq / n_values.max(1) as f64).sqrt() as f32;
        if actual > 0.0 {
            let gain = rms / actual;
            for_each_chunk(&mut data, chunk_bytes, |_, chunk| {
                for block in chunk.chunks_exact_mut(block_bytes) {
                    fields.scale(block, gain);
                }
            });
        }
    }
    Ok(data)
}

/// How a type's random values are made.
enum Fill {
    /// Uniform in [-amplitude, amplitude).
    Floats { amplitude: f32 },
    /// Random bytes and random scales, to be scaled to the spread once all are measured.
    Blocks(ScaleFields),
}

impl Fill {
    fn of(dtype: GgmlType, rms: f32) -> Result<Fill> {
        use GgmlType::*;
        Ok(match dtype {
            // A uniform value in [-a, a) has root-mean-square a / sqrt(3).
            F32 | F64 | F16 | Bf16 => Fill::Floats {
                amplitude: rms * 3f32.sqrt(),
            },
            _ => Fill::Blocks(ScaleFields::of(dtype)?),
        })
    }

    /// Fills `chunk` (whole blocks) from `rng`; for block types, returns the sum of the
    /// squares of the values before scaling.
    fn chunk(&self, dtype: GgmlType, chunk: &mut [u8], rng: &mut SplitMix64) -> Result<f64> {
        match self {
            Fill::Floats { amplitude } => {
                let mut uniform = || amplitude * rng.symmetric();
                match dtype {
                    GgmlType::F64 => fill_each(chunk, || f64::from(uniform()).to_le_bytes()),
                    GgmlType::F16 => fill_each(chunk, || f16::from_f32(uniform()).to_le_bytes()),
                    GgmlType::Bf16 => fill_each(chunk, || bf16::from_f32(uniform()).to_le_bytes()),
                    _ => fill_each(chunk, || uniform().to_le_bytes()),
                }
                Ok(0.0)
            }
            Fill::Blocks(fields) => {
                for byte in chunk.iter_mut() {
                    *byte = rng.next_u64() as u8;
                }
                for block in chunk.chunks_exact_mut(dtype.block_bytes() as usize) {
                    fields.randomize(block, rng);
                }
                sum_of_squares(dtype, chunk)
            }
        }
    }
}

fn fill_each<const N: usize>(chunk: &mut [u8], mut value: impl FnMut() -> [u8; N]) {
    for slot in chunk.chunks_exact_mut(N) {
        slot.copy_from_slice(&value());
    }
}

/// Runs `work` on every `chunk_bytes` piece of `data` (with its index) on every core;
/// the results come back in chunk order.
fn for_each_chunk<R: Send>(
    data: &mut [u8],
    chunk_bytes: usize,
    work: impl Fn(usize, &mut [u8]) -> R + Sync,
) -> Vec<R> {
    let mut chunks: Vec<(usize, &mut [u8])> = data.chunks_mut(chunk_bytes).enumerate().collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chunks.len());
    if threads <= 1 {
        return chunks.into_iter().map(|(i, c)| work(i, c)).collect();
    }
    let per_thread = chunks.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .chunks_mut(per_thread)
            .map(|group| {
                scope.spawn(move || {
                    group
                        .iter_mut()
                        .map(|(i, c)| work(*i, c))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Where a block type keeps the scales every value of the block is a multiple of.
enum ScaleFields {
    /// f16 fields at these byte offsets of each block.
    F16(&'static [usize]),
    /// An f32 at offset 0 (Q8_K).
    F32,
    /// An E8M0 power-of-two exponent byte at offset 0 (MXFP4).
    E8M0,
}

impl ScaleFields {
    fn of(dtype: GgmlType) -> Result<ScaleFields> {
        use GgmlType::*;
        Ok(match dtype {
            Q4_0 | Q5_0 | Q8_0 | Iq4Nl | Iq4Xs => ScaleFields::F16(&[0]),
            // Q4_1 and Q5_1: scale and min; Q8_1: scale and scaled sum; Q4_K and Q5_K:
            // super-block scale and min scale.
            Q4_1 | Q5_1 | Q8_1 | Q4K | Q5K => ScaleFields::F16(&[0, 2]),
            Q2K => ScaleFields::F16(&[80, 82]),
            Q3K => ScaleFields::F16(&[108]),
            Q6K => ScaleFields::F16(&[208]),
            Q8K => ScaleFields::F32,
            Mxfp4 => ScaleFields::E8M0,
            _ => {
                return Err(Error::Unsupported(format!(
                    "random weights of type {dtype}"
                )));
            }
        })
    }

    /// Gives every scale of `block` a random value of magnitude 0.5 to 1 (MXFP4: an
    /// exponent of 2^-1 to 2^1).
    fn randomize(&self, block: &mut [u8], rng: &mut SplitMix64) {
        let mut unit = || {
            let magnitude = 0.75 + 0.25 * rng.symmetric();
            if rng.below(2) == 0 {
                magnitude
            } else {
                -magnitude
            }
        };
        match self {
            ScaleFields::F16(offsets) => {
                for &o in *offsets {
                    block[o..o + 2].copy_from_slice(&f16::from_f32(unit()).to_le_bytes());
                }
            }
            ScaleFields::F32 => block[..4].copy_from_slice(&unit().to_le_bytes()),
            ScaleFields::E8M0 => block[0] = 126 + rng.below(3) as u8,
        }
    }

    /// Multiplies every scale of `block` by `gain` (MXFP4: by the nearest power of two).
    fn scale(&self, block: &mut [u8], gain: f32) {
        match self {
            ScaleFields::F16(offsets) => {
                for &o in *offsets {
                    let v = f16::from_le_bytes([block[o], block[o + 1]]).to_f32();
                    block[o..o + 2].copy_from_slice(&f16::from_f32(v * gain).to_le_bytes());
                }
            }
            ScaleFields::F32 => {
                let v = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
                block[..4].copy_from_slice(&(v * gain).to_le_bytes());
            }
            ScaleFields::E8M0 => {
                let shift = gain.log2().round() as i32;
                block[0] = (i32::from(block[0]) + shift).clamp(1, 254) as u8;
            }
        }
    }
}

/// The sum of the squares of the values that whole blocks of `dtype` hold.
fn sum_of_squares(dtype: GgmlType, blocks: &[u8]) -> Result<f64> {
    let block_bytes = dtype.block_bytes() as usize;
    let block_size = dtype.block_size() as usize;
    let mut values = vec![0f32; BLOCKS_PER_MEASURE * block_size];
    let mut sum = 0.0;
    for group in blocks.chunks(BLOCKS_PER_MEASURE * block_bytes) {
        let values = &mut values[..group.len() / block_bytes * block_size];
        dequantize_row(dtype, group, values)?;
        // One running sum in value order, as the whole tensor was once summed.
        sum = values
            .iter()
            .fold(sum, |s, &v| s + f64::from(v) * f64::from(v));
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::dequantize_to_vec;

    fn measured_rms(dtype: GgmlType, data: &[u8], n: usize) -> f64 {
        let values = dequantize_to_vec(dtype, data, n).unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{dtype}");
        (values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64).sqrt()
    }

    #[test]
    fn every_block_type_gets_the_spread_asked_for() {
        use GgmlType::*;
        let types = [
            F32, F64, F16, Bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K,
            Iq4Nl, Iq4Xs,
        ];
        for dtype in types {
            let n = 256 * 64;
            let data = random_weights(dtype, n as u64, 0.05, &mut SplitMix64(3)).unwrap();
            let rms = measured_rms(dtype, &data, n);
            assert!((rms / 0.05 - 1.0).abs() < 0.01, "{dtype}: rms {rms}");
        }
        // MXFP4 scales by powers of two only.
        let data = random_weights(Mxfp4, 1024, 0.05, &mut SplitMix64(3)).unwrap();
        let rms = measured_rms(Mxfp4, &data, 1024);
        assert!((0.05 / 1.5..=0.05 * 1.5).contains(&rms), "MXFP4: rms {rms}");
    }

    #[test]
    fn a_tensor_of_many_chunks_gets_the_spread_and_distinct_chunks() {
        // Four chunks of Q8_0 and of F16 (when run on more than one core, on several).
        for dtype in [GgmlType::Q8_0, GgmlType::F16] {
            let block_bytes = dtype.block_bytes() as usize;
            let chunk_bytes = CHUNK_BYTES / block_bytes * block_bytes;
            let n = 4 * chunk_bytes / block_bytes * dtype.block_size() as usize;
            let data = random_weights(dtype, n as u64, 0.02, &mut SplitMix64(9)).unwrap();
            let rms = measured_rms(dtype, &data, n);
            assert!((rms / 0.02 - 1.0).abs() < 0.01, "{dtype}: rms {rms}");
            assert_ne!(data[..64], data[chunk_bytes..chunk_bytes + 64], "{dtype}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let draw = |seed| random_weights(GgmlType::Q4K, 1 << 21, 1.0, &mut SplitMix64(seed));
        assert_eq!(draw(5).unwrap(), draw(5).unwrap());
        assert_ne!(draw(5).unwrap(), draw(6).unwrap());
    }

    #[test]
    fn partial_blocks_and_integer_types_are_refused() {
        let rng = &mut SplitMix64(1);
        assert!(random_weights(GgmlType::Q4_0, 33, 1.0, rng).is_err());
        assert!(random_weights(GgmlType::I8, 32, 1.0, rng).is_err());
    }
}
