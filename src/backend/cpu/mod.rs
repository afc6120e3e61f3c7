//! The CPU backend, the oracle for every other one: [`CpuBackend`] implements the
//! backend boundary with host K/V storage (`kv_storage`), activation buffers (`buffers`),
//! row operations (`ops`) and paged attention (`attention`); its quantized matrix
//! multiplication runs on a persistent thread pool, with SIMD kernels chosen at run time
//! (AVX2+FMA+F16C on x86-64) and a scalar reference for each.
//!
//! ```text
//! x [n_tokens, n_cols] f32 ──quantize once──▶ Q8 / Q8_K blocks ──┐
//! W [n_rows, n_cols] (GGUF bytes, borrowed) ─────────────────────┼─▶ integer block dots,
//!                                                                │   f32 accumulation
//! rows of W split over the pool's threads ◀──────────────────────┘──▶ y [n_tokens, n_rows]
//! ```

mod activations;
mod attention;
mod backend;
mod buffers;
mod dot;
mod kv_storage;
mod matmul;
pub mod ops;
mod pool;
mod simd;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) use activations::quantize_q8_0;
pub use backend::CpuBackend;
pub use matmul::CpuMatmul;
pub use pool::{MAX_THREADS, WorkerPool};
pub use simd::SimdLevel;

/// Locks a mutex whose data stays valid even if a holder panicked: the pool and the
/// activation buffers are consistent between calls whatever happened inside one.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
