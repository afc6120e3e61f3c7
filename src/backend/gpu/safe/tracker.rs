//! Counting every device allocation and free, so tests (and `rf_context_memory`) can
//! prove that what was allocated was released; and holding a device handle's allocations
//! under a limit, where one is set.

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
    /// The most `live_bytes` may reach; `None`: no limit but the device's.
    limit: Option<u64>,
    live_bytes: AtomicU64,
    live_allocations: AtomicU64,
    peak_bytes: AtomicU64,
    total_allocations: AtomicU64,
    failed_frees: AtomicU64,
}

impl MemoryTracker {
    pub fn with_limit(limit: Option<u64>) -> MemoryTracker {
        MemoryTracker {
            limit,
            ..MemoryTracker::default()
        }
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Counts `bytes` as live before they are allocated, unless that would pass the
    /// limit: then nothing is counted and `false` returned. Atomic, so threads allocating
    /// at once cannot pass the limit together.
    pub fn try_reserve(&self, bytes: u64) -> bool {
        let reserved = self
            .live_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
                let next = live.checked_add(bytes)?;
                self.limit.is_none_or(|limit| next <= limit).then_some(next)
            });
        match reserved {
            Ok(live) => {
                self.peak_bytes.fetch_max(live + bytes, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Takes back a reservation whose allocation failed.
    pub fn cancel_reservation(&self, bytes: u64) {
        self.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Counts an allocation whose bytes [`MemoryTracker::try_reserve`] counted.
    pub fn record_alloc(&self) {
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
        let alloc = |bytes| {
            assert!(tracker.try_reserve(bytes));
            tracker.record_alloc();
        };
        alloc(100);
        alloc(50);
        tracker.record_free(100, true);
        alloc(10);
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

    #[test]
    fn a_limit_refuses_what_would_pass_it_and_counts_nothing_for_it() {
        let tracker = MemoryTracker::with_limit(Some(100));
        assert!(tracker.try_reserve(60));
        assert!(!tracker.try_reserve(41), "60 + 41 passes 100");
        assert_eq!(tracker.stats().live_bytes, 60);
        assert!(tracker.try_reserve(40), "60 + 40 is the limit itself");
        tracker.cancel_reservation(40);
        assert_eq!(tracker.stats().live_bytes, 60);
        assert!(
            !tracker.try_reserve(u64::MAX),
            "an overflowing sum is refused"
        );
    }
}
