//! Helpers shared by the GPU integration tests: finding a usable GPU.
//!
//! A test that needs a GPU is marked `#[ignore = "needs a GPU: ..."]`, so a plain
//! `cargo test` counts it as ignored, never as passed, and starts with
//! `let device = gpu_common::gpu();`. It runs where it is asked for by name:
//! `--include-ignored` (or `--ignored`) on a GPU machine, as the bundle of
//! scripts/build-gpu-bundle.sh does. Asked for there, a test that finds no usable GPU
//! fails with the reason, so a broken driver cannot pass as "skipped".
//!
//! Tests that make a vendor call fail on purpose (out of memory, a bad image) are named
//! `provoked_*`: the runner's compute-sanitizer pass reports failing API calls as errors
//! everywhere except in those tests.
#![allow(dead_code)] // each test crate uses its own subset

use std::sync::OnceLock;

use rocmforge::backend::gpu::{self, Device};
use rocmforge::backend::{self, DeviceKind, DeviceReport};

/// The first usable GPU's report, or why there is none; looked up once per test binary.
fn usable_gpu() -> &'static Result<DeviceReport, String> {
    static FOUND: OnceLock<Result<DeviceReport, String>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let reports = backend::enumerate();
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

/// A freshly opened usable GPU (so each test has its own allocation counters). Without
/// one the test fails: GPU tests run only when asked for, on a machine meant to have one.
pub fn gpu() -> Device {
    match usable_gpu() {
        Ok(report) => report
            .open()
            .expect("opening a GPU that enumerate called usable"),
        Err(why) => panic!("this test needs a GPU and none is usable: {why}"),
    }
}

/// The device list indices of the first two usable GPUs. Without two the test fails:
/// the tests that need two are named `two_gpus_*`, and the bundle's runner skips them, and
/// says so, on a machine with fewer.
pub fn two_gpus() -> [usize; 2] {
    let usable: Vec<usize> = backend::enumerate()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind != DeviceKind::Cpu && r.usable)
        .map(|(index, _)| index)
        .collect();
    match usable[..] {
        [first, second, ..] => [first, second],
        _ => panic!(
            "this test needs two usable GPUs and {} is usable",
            usable.len()
        ),
    }
}

/// A usable GPU, a stream on it and the forward-pass kernels loaded there: what the
/// tests of single operations need.
pub struct OpsGpu {
    pub device: Device,
    pub stream: gpu::Stream,
    pub ops: gpu::ops::GpuOps,
}

pub fn ops_gpu() -> OpsGpu {
    let device = gpu();
    let stream = gpu::Stream::new(&device).unwrap();
    let ops = gpu::ops::GpuOps::load(&device).expect("the embedded op kernels load");
    OpsGpu {
        device,
        stream,
        ops,
    }
}

impl DeviceIo for OpsGpu {
    fn device(&self) -> &Device {
        &self.device
    }

    fn stream(&self) -> &gpu::Stream {
        &self.stream
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

/// Copies to and from a device on one stream, for tests that hold both.
pub trait DeviceIo {
    fn device(&self) -> &Device;
    fn stream(&self) -> &gpu::Stream;

    fn upload<T: gpu::DeviceCopy>(&self, values: &[T]) -> gpu::DeviceBuffer<T> {
        self.device().upload(self.stream(), values).unwrap()
    }

    fn download<T: gpu::DeviceCopy>(&self, buffer: &gpu::DeviceBuffer<T>) -> Vec<T> {
        buffer.to_host_vec(self.stream()).unwrap()
    }

    /// The buffer's values as their bits, for comparisons that must hold to the bit.
    fn download_bits(&self, buffer: &gpu::DeviceBuffer<f32>) -> Vec<u32> {
        self.download(buffer).iter().map(|v| v.to_bits()).collect()
    }

    /// `len` elements with every byte 0xFF (NaN for floats), so an element a kernel
    /// should have written and did not, or one it should not have written, shows.
    fn poisoned<T: gpu::DeviceCopy>(&self, len: usize) -> gpu::DeviceBuffer<T> {
        let mut buffer = self.device().alloc(len).unwrap();
        buffer.fill_bytes(self.stream(), 0xFF).unwrap();
        buffer
    }
}

/// How far the device's free memory may move with nothing of the library's left on it:
/// the driver takes and gives back its own memory in 2 MiB pages (2 MiB seen on an H200;
/// 2 and 4 MiB on an H100, with the library's allocation tracker at zero). What the tests
/// must catch is larger: the failed loads' first shares hold 13 MB or more (a fifth of
/// the layers or heads of 67-72 MB), a hundred cycles' buffers 0.9 MB each.
pub const DRIVER_FREE_MEMORY_SLACK: u64 = 6 << 20;

/// Runs `load`, a model load meant to fail part-way (a later share over its memory
/// limit), and checks that it fails for lack of device memory and that the GPU `probe`
/// watches has its memory back: the earlier shares' weights (13 MB or more) are freed, up to
/// [`DRIVER_FREE_MEMORY_SLACK`].
pub fn assert_failed_load_frees_the_gpu<T>(
    probe: &Device,
    load: impl FnOnce() -> rocmforge::error::Result<T>,
) {
    let free_before = probe.memory_info().expect("free memory").free_bytes;
    let err = load().err().expect("the load fails");
    assert!(
        matches!(err, rocmforge::error::Error::DeviceOutOfMemory(_)),
        "{err}"
    );
    let free_after = probe.memory_info().expect("free memory").free_bytes;
    assert!(
        free_after + DRIVER_FREE_MEMORY_SLACK >= free_before,
        "{} bytes of the GPU stayed taken after the failed load",
        free_before - free_after
    );
}
