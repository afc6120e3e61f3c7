//! Helpers shared by the GPU integration tests: finding a usable GPU, or skipping.
//!
//! A test that needs a GPU starts with `let Some(device) = gpu_common::gpu() else { return };`.
//! Without a usable GPU it reports itself skipped and passes, unless
//! `ROCMFORGE_REQUIRE_GPU=1`, which makes it fail with the reason (the GPU machine's runner
//! sets it, so a broken driver cannot pass as "skipped").
//!
//! Tests that make a vendor call fail on purpose (out of memory, a bad image) are named
//! `provoked_*`: the runner's compute-sanitizer pass reports failing API calls as errors
//! everywhere except in those tests.
#![allow(dead_code)] // each test crate uses its own subset

use std::sync::OnceLock;

use rocmforge::backend::gpu::{self, Device, DeviceKind, DeviceReport};

/// The first usable GPU's report, or why there is none; looked up once per test binary.
fn usable_gpu() -> &'static Result<DeviceReport, String> {
    static FOUND: OnceLock<Result<DeviceReport, String>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let reports = gpu::enumerate();
        if let Some(report) = reports
            .iter()
            .find(|r| r.kind != DeviceKind::Cpu && r.usable)
        {
            return Ok(report.clone());
        }
        let mut why: Vec<String> = reports
            .iter()
            .filter_map(|r| {
                Some(format!(
                    "{} {}: {}",
                    r.name,
                    r.arch,
                    r.why_unusable.as_ref()?
                ))
            })
            .collect();
        why.extend(gpu::runtimes().into_iter().filter_map(|r| r.problem));
        Err(why.join("; "))
    })
}

pub fn gpu_required() -> bool {
    std::env::var("ROCMFORGE_REQUIRE_GPU").as_deref() == Ok("1")
}

/// A freshly opened usable GPU (so each test has its own allocation counters), or `None`
/// after reporting the test skipped.
pub fn gpu() -> Option<Device> {
    match usable_gpu() {
        Ok(report) => Some(
            report
                .open()
                .expect("opening a GPU that enumerate called usable"),
        ),
        Err(why) if gpu_required() => {
            panic!("ROCMFORGE_REQUIRE_GPU=1 but no GPU is usable: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: no usable GPU ({why})");
            None
        }
    }
}

/// xorshift64*: reproducible pseudo-random test data without a dependency.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Fails the test if the device still holds memory allocated through it.
pub fn assert_all_freed(device: &Device) {
    let stats = device.memory_stats();
    assert_eq!(
        (stats.live_bytes, stats.live_allocations, stats.failed_frees),
        (0, 0, 0),
        "device memory left behind: {stats:?}"
    );
}
