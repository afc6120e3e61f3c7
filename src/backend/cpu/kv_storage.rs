//! K and V of every cached token on the host, per layer, in the context's [`KvType`].

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::backend::{
    ContextSizes, KvRowSlots, KvType, Q8_0_BLOCK, Q8_0_BLOCK_BYTES, Shape, saturating_bytes,
};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;

/// One layer's K or V, `[n_slots, kv_dim]` values as the cache type stores them.
pub enum KvValues {
    F16(Vec<f16>),
    F32(Vec<f32>),
    /// ggml's Q8_0 blocks, 34 bytes per 32 values.
    Q8_0(Vec<u8>),
}

impl KvValues {
    pub fn new(kv_type: KvType, n_values: usize, what: &str) -> Result<KvValues> {
        Ok(match kv_type {
            KvType::F16 => KvValues::F16(filled_vec(n_values, f16::ZERO, what)?),
            KvType::F32 => KvValues::F32(filled_vec(n_values, 0.0, what)?),
            KvType::Q8_0 => KvValues::Q8_0(filled_vec(kv_type.bytes(n_values), 0, what)?),
        })
    }

    fn bytes(&self) -> usize {
        match self {
            KvValues::F16(v) => v.len() * 2,
            KvValues::F32(v) => v.len() * 4,
            KvValues::Q8_0(v) => v.len(),
        }
    }

    /// `out.len()` values from value `first` on, as f32 (for Q8_0, `first` and the length
    /// are whole blocks: a head's values).
    pub fn read_f32(&self, first: usize, out: &mut [f32]) {
        match self {
            KvValues::F16(v) => v[first..first + out.len()].convert_to_f32_slice(out),
            KvValues::F32(v) => out.copy_from_slice(&v[first..first + out.len()]),
            KvValues::Q8_0(bytes) => {
                let at = KvType::Q8_0.bytes(first);
                let blocks = bytes[at..].chunks_exact(Q8_0_BLOCK_BYTES);
                for (block, values) in blocks.zip(out.chunks_exact_mut(Q8_0_BLOCK)) {
                    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                    for (value, &q) in values.iter_mut().zip(&block[2..]) {
                        *value = d * f32::from(q as i8);
                    }
                }
            }
        }
    }

    /// Stores `values` at value `first` on (whole blocks for Q8_0).
    pub fn write_f32(&mut self, first: usize, values: &[f32]) {
        match self {
            KvValues::F16(v) => v[first..first + values.len()].convert_from_f32_slice(values),
            KvValues::F32(v) => v[first..first + values.len()].copy_from_slice(values),
            KvValues::Q8_0(bytes) => {
                let at = KvType::Q8_0.bytes(first);
                let len = KvType::Q8_0.bytes(values.len());
                KvType::Q8_0.encode(values, &mut bytes[at..at + len]);
            }
        }
    }

    /// The bytes of values `first..first + n` as stored.
    fn read_bytes(&self, first: usize, n: usize, out: &mut [u8]) {
        match self {
            KvValues::F16(v) => {
                for (value, bytes) in v[first..first + n].iter().zip(out.chunks_exact_mut(2)) {
                    bytes.copy_from_slice(&value.to_le_bytes());
                }
            }
            KvValues::F32(v) => {
                for (value, bytes) in v[first..first + n].iter().zip(out.chunks_exact_mut(4)) {
                    bytes.copy_from_slice(&value.to_le_bytes());
                }
            }
            KvValues::Q8_0(v) => {
                let at = KvType::Q8_0.bytes(first);
                out.copy_from_slice(&v[at..at + out.len()]);
            }
        }
    }

    /// Stores bytes laid out as [`read_bytes`](Self::read_bytes) gives them.
    fn write_bytes(&mut self, first: usize, n: usize, bytes: &[u8]) {
        match self {
            KvValues::F16(v) => {
                for (value, b) in v[first..first + n].iter_mut().zip(bytes.chunks_exact(2)) {
                    *value = f16::from_le_bytes([b[0], b[1]]);
                }
            }
            KvValues::F32(v) => {
                for (value, b) in v[first..first + n].iter_mut().zip(bytes.chunks_exact(4)) {
                    *value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            KvValues::Q8_0(v) => {
                let at = KvType::Q8_0.bytes(first);
                v[at..at + bytes.len()].copy_from_slice(bytes);
            }
        }
    }

    /// Copies values `src..src + n` to `dst..` (whole blocks for Q8_0).
    fn copy_within(&mut self, src: usize, dst: usize, n: usize) {
        match self {
            KvValues::F16(v) => v.copy_within(src..src + n, dst),
            KvValues::F32(v) => v.copy_within(src..src + n, dst),
            KvValues::Q8_0(v) => {
                let byte = |i: usize| KvType::Q8_0.bytes(i);
                v.copy_within(byte(src)..byte(src + n), byte(dst));
            }
        }
    }
}

/// Per layer, K and V each `[n_slots, kv_dim]` values of one [`KvType`], `n_slots` those
/// of the cache the layer reads.
pub struct KvStorage {
    pub k: Vec<KvValues>,
    pub v: Vec<KvValues>,
    kv_dim: usize,
    sizes: ContextSizes,
}

impl KvStorage {
    pub fn new(shape: &Shape, sizes: &ContextSizes) -> Result<KvStorage> {
        let kv_type = sizes.kv_type;
        kv_type.check_head_dim(shape.head_dim)?;
        let kv_dim = shape.kv_dim();
        let total_bytes = sizes.kv_bytes(shape);
        let layer = |layer: usize| -> Result<KvValues> {
            let n_slots = sizes.layer_slots(layer);
            let values = n_slots.checked_mul(kv_dim).ok_or_else(|| {
                Error::OutOfMemory(format!(
                    "a KV cache of {n_slots} slots of {kv_dim} values overflows"
                ))
            })?;
            let what = format!(
                "the {} KV cache (layer {layer}: {n_slots} token slots; {total_bytes} bytes in all)",
                kv_type.name()
            );
            KvValues::new(kv_type, values, &what)
        };
        let layers = || (0..shape.n_layer).map(layer).collect::<Result<Vec<_>>>();
        Ok(KvStorage {
            k: layers()?,
            v: layers()?,
            kv_dim,
            sizes: *sizes,
        })
    }

    /// What `KvStorage::new(shape, sizes)` allocates.
    pub fn bytes_for(shape: &Shape, sizes: &ContextSizes) -> u64 {
        saturating_bytes(sizes.kv_bytes(shape))
    }

    pub fn bytes(&self) -> u64 {
        self.caches().map(|(_, c)| c.bytes() as u64).sum()
    }

    fn kv_type(&self) -> KvType {
        self.sizes.kv_type
    }

    /// The K and V rows of `slots` in every layer into `out` as stored, laid out as
    /// [`crate::backend::BackendState::read_kv_rows`] describes.
    pub fn read_rows(&self, slots: &KvRowSlots<'_>, out: &mut [u8]) {
        let kv_dim = self.kv_dim;
        let row_bytes = self.kv_type().bytes(kv_dim);
        let mut rest = out;
        for (layer, cache) in self.caches() {
            let slots = slots.of_layer(self.sizes.reads_window(layer));
            let (rows, tail) = std::mem::take(&mut rest).split_at_mut(slots.len() * row_bytes);
            rest = tail;
            for (&slot, row) in slots.iter().zip(rows.chunks_exact_mut(row_bytes)) {
                cache.read_bytes(slot as usize * kv_dim, kv_dim, row);
            }
        }
    }

    /// Writes rows laid out as [`KvStorage::read_rows`] gives them into `slots`.
    pub fn write_rows(&mut self, slots: &KvRowSlots<'_>, rows: &[u8]) {
        let kv_dim = self.kv_dim;
        let row_bytes = self.kv_type().bytes(kv_dim);
        let sizes = self.sizes;
        let caches = self
            .k
            .iter_mut()
            .zip(self.v.iter_mut())
            .enumerate()
            .flat_map(|(layer, (k, v))| [(layer, k), (layer, v)]);
        let mut rest = rows;
        for (layer, cache) in caches {
            let slots = slots.of_layer(sizes.reads_window(layer));
            let (layer_rows, tail) = rest.split_at(slots.len() * row_bytes);
            rest = tail;
            for (&slot, row) in slots.iter().zip(layer_rows.chunks_exact(row_bytes)) {
                cache.write_bytes(slot as usize * kv_dim, kv_dim, row);
            }
        }
    }

    /// Layer by layer, K then V, each with its layer.
    fn caches(&self) -> impl Iterator<Item = (usize, &KvValues)> {
        self.k
            .iter()
            .zip(&self.v)
            .enumerate()
            .flat_map(|(layer, (k, v))| [(layer, k), (layer, v)])
    }

    /// Copies `n_slots` slots from `src` to `dst` in every layer that reads the window
    /// cache (`window`) or the full one (copy-on-write of a shared cache block).
    pub fn copy_slots(&mut self, window: bool, src: usize, dst: usize, n_slots: usize) {
        let kv_dim = self.kv_dim;
        let sizes = self.sizes;
        let layers = self.k.iter_mut().zip(self.v.iter_mut()).enumerate();
        for (_, (k, v)) in layers.filter(|&(layer, _)| sizes.reads_window(layer) == window) {
            for cache in [k, v] {
                cache.copy_within(src * kv_dim, dst * kv_dim, n_slots * kv_dim);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored and read back, F32 values are exact, F16 within its rounding, Q8_0 within
    /// half a step of its block (max |x| / 254) plus the step's f16 rounding.
    #[test]
    fn values_read_back_within_each_type_s_rounding() {
        let values: Vec<f32> = (0..256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01 * (1 + i / 64) as f32)
            .collect();
        for kv_type in [KvType::F16, KvType::F32, KvType::Q8_0] {
            let mut cache = KvValues::new(kv_type, values.len() + 64, "test").unwrap();
            cache.write_f32(64, &values);
            let mut read = vec![0.0; values.len()];
            cache.read_f32(64, &mut read);
            for (block, (x, y)) in values.chunks(32).zip(read.chunks(32)).enumerate() {
                let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let bound = match kv_type {
                    KvType::F32 => 0.0,
                    KvType::F16 => amax / 1024.0,
                    KvType::Q8_0 => amax / 254.0 * 1.002,
                };
                for (a, b) in x.iter().zip(y) {
                    assert!(
                        (a - b).abs() <= bound,
                        "{kv_type:?} block {block}: {a} read as {b}"
                    );
                }
            }
            let mut bytes = vec![0u8; kv_type.bytes(values.len())];
            cache.read_bytes(64, values.len(), &mut bytes);
            let mut copy = KvValues::new(kv_type, values.len(), "test").unwrap();
            copy.write_bytes(0, values.len(), &bytes);
            let mut again = vec![0.0; values.len()];
            copy.read_f32(0, &mut again);
            assert_eq!(again, read, "{kv_type:?}: bytes round trip");
        }
    }
}
