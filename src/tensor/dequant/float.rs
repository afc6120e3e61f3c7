//! Plain types, one value per "block": converted to f32 value by value.

use half::f16;

pub(super) fn dequantize_row_f32(data: &[u8], out: &mut [f32]) {
    convert(data, out, f32::from_le_bytes);
}

/// Widening is exact. NaN payloads come back with the quiet bit set, as ggml's F16C path
/// does (numpy keeps signalling NaNs signalling); no weight tensor holds NaNs anyway.
pub(super) fn dequantize_row_f16(data: &[u8], out: &mut [f32]) {
    convert(data, out, |b| f16::from_le_bytes(b).to_f32());
}

/// BF16 is the top half of an f32. Shifted by hand rather than through `half::bf16`, which
/// sets the quiet bit of NaNs; ggml and gguf-py keep every bit.
pub(super) fn dequantize_row_bf16(data: &[u8], out: &mut [f32]) {
    convert(data, out, |b| {
        f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
    });
}

/// Rounds to the nearest f32.
pub(super) fn dequantize_row_f64(data: &[u8], out: &mut [f32]) {
    convert(data, out, |b| f64::from_le_bytes(b) as f32);
}

pub(super) fn dequantize_row_i8(data: &[u8], out: &mut [f32]) {
    convert(data, out, |b| f32::from(i8::from_le_bytes(b)));
}

pub(super) fn dequantize_row_i16(data: &[u8], out: &mut [f32]) {
    convert(data, out, |b| f32::from(i16::from_le_bytes(b)));
}

/// Values beyond ±2^24 round to the nearest f32.
pub(super) fn dequantize_row_i32(data: &[u8], out: &mut [f32]) {
    convert(data, out, |b| i32::from_le_bytes(b) as f32);
}

/// Decodes each `N`-byte value of `data` into the matching slot of `out`.
fn convert<const N: usize>(data: &[u8], out: &mut [f32], decode: impl Fn([u8; N]) -> f32) {
    for (bytes, y) in data.chunks_exact(N).zip(out) {
        let mut value = [0; N];
        value.copy_from_slice(bytes);
        *y = decode(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_keeps_nan_payload_bits() {
        // A signalling NaN: exponent all ones, top mantissa bit clear.
        let mut out = [0.0];
        dequantize_row_bf16(&0x7F81_u16.to_le_bytes(), &mut out);
        assert_eq!(out[0].to_bits(), 0x7F81_0000);
    }

    #[test]
    fn integers_convert_by_value() {
        let mut out = [0.0; 2];
        dequantize_row_i16(&[0xFF, 0xFF, 0x10, 0x00], &mut out);
        assert_eq!(out, [-1.0, 16.0]);
    }
}
