//! Kernels on a real device: the embedded module loads, kernels launch with arguments and
//! match a CPU reference, and a captured graph replays. Ignored unless asked for (see
//! gpu_common).

mod gpu_common;

use gpu_common::{Random, assert_all_freed, gpu};
use rocmforge::Error;
use rocmforge::backend::gpu::{Device, Event, KernelArgs, LaunchConfig, Module, Stream};

const MODULE: &str = "runtime_test";

fn module(device: &Device) -> Module {
    Module::load_embedded(device, MODULE).expect("the embedded test kernels load")
}

/// Blocks for a grid-stride launch: a few per compute unit.
fn grid_blocks(device: &Device) -> u32 {
    device.facts().compute_units * 4
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn kernels_launch_and_match_the_cpu() {
    let device = gpu();
    let stream = Stream::new(&device).unwrap();
    let module = module(&device);
    let (fill, axpy) = (
        module.function("rf_test_fill_u32").unwrap(),
        module.function("rf_test_axpy_f32").unwrap(),
    );
    // An odd size, so the last block is partial.
    let n = 1_000_003usize;
    let config = LaunchConfig::for_elements(n as u64, 256, grid_blocks(&device));

    let mut filled = device.alloc::<u32>(n).unwrap();
    let mut args = KernelArgs::new();
    args.push(&mut filled).push(0xdead_beefu32).push(n as u64);
    // SAFETY: (u32 *out, u32 value, u64 n) matches the kernel; `filled` holds n elements
    // and outlives the synchronising copy below.
    unsafe { fill.launch(&stream, &config, &args) }.unwrap();
    assert!(
        filled
            .to_host_vec(&stream)
            .unwrap()
            .iter()
            .all(|&v| v == 0xdead_beef)
    );

    let mut random = Random::new(42);
    let x: Vec<f32> = (0..n).map(|_| random.next_f32()).collect();
    let y: Vec<f32> = (0..n).map(|_| random.next_f32()).collect();
    let a = 1.75f32;
    let x_dev = device.upload(&stream, &x).unwrap();
    let mut y_dev = device.upload(&stream, &y).unwrap();
    let mut args = KernelArgs::new();
    args.push(&mut y_dev).push(&x_dev).push(a).push(n as u64);
    // SAFETY: (f32 *y, const f32 *x, f32 a, u64 n) matches; both hold n elements.
    unsafe { axpy.launch(&stream, &config, &args) }.unwrap();
    let result = y_dev.to_host_vec(&stream).unwrap();
    for i in 0..n {
        // One fused or unfused multiply-add: at most one rounding apart.
        let expected = a.mul_add(x[i], y[i]);
        assert!(
            (result[i] - expected).abs() <= 1e-6,
            "y[{i}] = {} != {expected}",
            result[i]
        );
    }
    drop((filled, x_dev, y_dev));
    assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn reductions_use_shared_memory_and_shuffles_correctly() {
    let device = gpu();
    let stream = Stream::new(&device).unwrap();
    let module = module(&device);
    let block_sum = module.function("rf_test_block_sum_f32").unwrap();
    let warp_size = module.function("rf_test_warp_size").unwrap();

    let mut seen = device.alloc::<u32>(1).unwrap();
    let mut args = KernelArgs::new();
    args.push(&mut seen);
    // SAFETY: (u32 *out) matches; one element written by one thread.
    unsafe { warp_size.launch(&stream, &LaunchConfig::linear(1, 64), &args) }.unwrap();
    assert_eq!(
        seen.to_host_vec(&stream).unwrap(),
        [device.facts().warp_size]
    );

    let mut random = Random::new(7);
    for n in [1usize, 31, 1000, 65_537, 3_000_001] {
        for threads in [64u32, 256, 1024] {
            let x: Vec<f32> = (0..n).map(|_| random.next_f32()).collect();
            let blocks = 37u32;
            let x_dev = device.upload(&stream, &x).unwrap();
            let mut partial = device.alloc::<f32>(blocks as usize).unwrap();
            partial.fill_bytes(&stream, 0xff).unwrap(); // NaN: every block must write
            let mut args = KernelArgs::new();
            args.push(&x_dev).push(&mut partial).push(n as u64);
            // SAFETY: (const f32 *x, f32 *partial, u64 n) matches; `partial` has one
            // slot per block; threads is a multiple of the warp size, at most 1024.
            unsafe { block_sum.launch(&stream, &LaunchConfig::linear(blocks, threads), &args) }
                .unwrap();
            let sum: f64 = partial
                .to_host_vec(&stream)
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .sum();
            let reference: f64 = x.iter().map(|&v| v as f64).sum();
            let magnitude: f64 = x.iter().map(|&v| (v as f64).abs()).sum::<f64>().max(1.0);
            assert!(
                (sum - reference).abs() / magnitude < 1e-5,
                "n={n} threads={threads}: {sum} vs {reference}"
            );
        }
    }
    drop(seen);
    assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_captured_graph_replays_a_thousand_times() {
    let device = gpu();
    let mut stream = Stream::new(&device).unwrap();
    let module = module(&device);
    let increment = module.function("rf_test_increment_u32").unwrap();
    let n = 4099usize;
    let mut counters = device.alloc::<u32>(n).unwrap();
    counters.fill_bytes(&stream, 0).unwrap();
    stream.synchronize().unwrap();

    let mut args = KernelArgs::new();
    args.push(&mut counters).push(n as u64);
    let config = LaunchConfig::for_elements(n as u64, 128, grid_blocks(&device));
    let graph = stream
        .capture(|s| {
            // SAFETY: (u32 *counter, u64 n) matches; `counters` outlives the graph's
            // replays, all synchronised before it drops.
            unsafe { increment.launch(s, &config, &args) }?;
            // SAFETY: as above; two launches per replay.
            unsafe { increment.launch(s, &config, &args) }
        })
        .unwrap();
    // Capturing ran nothing.
    assert!(
        counters
            .to_host_vec(&stream)
            .unwrap()
            .iter()
            .all(|&c| c == 0)
    );

    let (start, end) = (Event::new(&device).unwrap(), Event::new(&device).unwrap());
    start.record(&stream).unwrap();
    for _ in 0..1000 {
        // SAFETY: the captured buffer and function are alive.
        unsafe { graph.launch(&stream) }.unwrap();
    }
    end.record(&stream).unwrap();
    end.synchronize().unwrap();
    let per_replay_us = start.elapsed_ms(&end).unwrap() * 1000.0 / 1000.0;
    println!("graph replay (2 kernels): {per_replay_us:.2} us each");
    let counted = counters.to_host_vec(&stream).unwrap();
    assert!(
        counted.iter().all(|&c| c == 2000),
        "first counters: {:?}",
        &counted[..8]
    );

    drop(graph);
    drop(counters);
    assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_failed_capture_leaves_the_stream_usable() {
    let device = gpu();
    let mut stream = Stream::new(&device).unwrap();
    let error = stream
        .capture(|_| Err(Error::InvalidArgument("recording gave up".into())))
        .err()
        .unwrap();
    assert!(error.to_string().contains("recording gave up"), "{error}");
    // Not capturing any more: ordinary work runs.
    let buffer = device.upload(&stream, &[5u8; 100]).unwrap();
    assert_eq!(buffer.to_host_vec(&stream).unwrap(), [5u8; 100]);
    drop(buffer);
    assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn provoked_load_errors_name_the_kernel_or_image() {
    let device = gpu();
    let module = module(&device);
    let error = module.function("rf_no_such_kernel").err().unwrap();
    assert!(error.to_string().contains("rf_no_such_kernel"), "{error}");
    assert!(Module::load(&device, "garbage", b"not a code object at all").is_err());
    assert!(Module::load(&device, "empty", b"").is_err());
    assert!(Module::load_embedded(&device, "no_such_file").is_err());
    assert!(device.lost_reason().is_none());
}
