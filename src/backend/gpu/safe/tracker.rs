//! Counting every device allocation and free, so tests (and `rf_context_memory`) can
//! prove that what was allocated was released.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one device's allocations made through this crate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Allocations not yet freed.
    pub live_allocations: u64,
    /// The most `live_bytes` has been.
    pub peak_bytes: u64,
    /// Allocations made since the device was opened.
    pub total_allocations: u64,
    /// Frees the runtime refused. The buffer is gone either way (it is counted as freed),
    /// but a non-zero count means device memory may have leaked.
    pub failed_frees: u64,
}

#[derive(Debug, Default)]
pub(crate) struct MemoryTracker {
    live_bytes: AtomicU64,
    live_allocations: AtomicU64,
    peak_bytes: AtomicU64,
    total_allocations: AtomicU64,
    failed_frees: AtomicU64,
}

impl MemoryTracker {
    pub fn record_alloc(&self, bytes: u64) {
        let live = self.live_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_bytes.fetch_max(live, Ordering::Relaxed);
        self.live_allocations.fetch_add(1, Ordering::Relaxed);
        self.total_allocations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_free(&self, bytes: u64, freed: bool) {
        self.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.live_allocations.fetch_sub(1, Ordering::Relaxed);
        if !freed {
            self.failed_frees.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            live_bytes: self.live_bytes.load(Ordering::Relaxed),
            live_allocations: self.live_allocations.load(Ordering::Relaxed),
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
            total_allocations: self.total_allocations.load(Ordering::Relaxed),
            failed_frees: self.failed_frees.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_live_peak_and_failures() {
        let tracker = MemoryTracker::default();
        tracker.record_alloc(100);
        tracker.record_alloc(50);
        tracker.record_free(100, true);
        tracker.record_alloc(10);
        tracker.record_free(50, false);
        tracker.record_free(10, true);
        assert_eq!(
            tracker.stats(),
            MemoryStats {
                live_bytes: 0,
                live_allocations: 0,
                peak_bytes: 150,
                total_allocations: 3,
                failed_frees: 1,
            }
        );
    }
}
