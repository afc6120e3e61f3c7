//! K and V of every cached token on the host, per layer.

use half::f16;

use crate::backend::{Shape, saturating_bytes};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;

/// Per layer, K and V each `[n_slots, kv_dim]` in f16 (llama.cpp's default cache type:
/// half the memory traffic of f32 for attention).
pub struct KvStorage {
    pub k: Vec<Vec<f16>>,
    pub v: Vec<Vec<f16>>,
    kv_dim: usize,
}

impl KvStorage {
    pub fn new(shape: &Shape, n_slots: usize) -> Result<KvStorage> {
        let kv_dim = shape.kv_dim();
        let values = n_slots.checked_mul(kv_dim).ok_or_else(|| {
            Error::OutOfMemory(format!(
                "a KV cache of {n_slots} slots of {kv_dim} values overflows"
            ))
        })?;
        let total_bytes = (values as u128) * 2 * 2 * (shape.n_layer as u128);
        let what = format!("the KV cache ({n_slots} token slots, {total_bytes} bytes in all)");
        let layers = || -> Result<Vec<Vec<f16>>> {
            (0..shape.n_layer)
                .map(|_| filled_vec(values, f16::ZERO, &what))
                .collect()
        };
        Ok(KvStorage {
            k: layers()?,
            v: layers()?,
            kv_dim,
        })
    }

    /// What `KvStorage::new(shape, n_slots)` allocates.
    pub fn bytes_for(shape: &Shape, n_slots: usize) -> u64 {
        saturating_bytes(shape.kv_cache_bytes(n_slots))
    }

    pub fn bytes(&self) -> u64 {
        let values: usize = self.k.iter().chain(&self.v).map(Vec::len).sum();
        (values * size_of::<f16>()) as u64
    }

    /// The K and V rows of `slots` in every layer into `out`, laid out as
    /// [`crate::backend::BackendState::read_kv_rows`] describes.
    pub fn read_rows(&self, slots: &[u32], out: &mut [f16]) {
        let kv_dim = self.kv_dim;
        for (cache, rows) in self
            .caches()
            .zip(out.chunks_exact_mut(slots.len() * kv_dim))
        {
            for (&slot, row) in slots.iter().zip(rows.chunks_exact_mut(kv_dim)) {
                let at = slot as usize * kv_dim;
                row.copy_from_slice(&cache[at..at + kv_dim]);
            }
        }
    }

    /// Writes rows laid out as [`KvStorage::read_rows`] gives them into `slots`.
    pub fn write_rows(&mut self, slots: &[u32], rows: &[f16]) {
        let kv_dim = self.kv_dim;
        let caches = self
            .k
            .iter_mut()
            .zip(self.v.iter_mut())
            .flat_map(|(k, v)| [k, v]);
        for (cache, layer_rows) in caches.zip(rows.chunks_exact(slots.len() * kv_dim)) {
            for (&slot, row) in slots.iter().zip(layer_rows.chunks_exact(kv_dim)) {
                let at = slot as usize * kv_dim;
                cache[at..at + kv_dim].copy_from_slice(row);
            }
        }
    }

    /// Layer by layer, K then V.
    fn caches(&self) -> impl Iterator<Item = &Vec<f16>> {
        self.k.iter().zip(&self.v).flat_map(|(k, v)| [k, v])
    }

    /// Copies `n_slots` slots from `src` to `dst` in every layer (copy-on-write of a
    /// shared cache block).
    pub fn copy_slots(&mut self, src: usize, dst: usize, n_slots: usize) {
        let kv_dim = self.kv_dim;
        for layer in self.k.iter_mut().chain(self.v.iter_mut()) {
            layer.copy_within(src * kv_dim..(src + n_slots) * kv_dim, dst * kv_dim);
        }
    }
}
