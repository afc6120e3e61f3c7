//! A kernel that faults loses the device: the error says so, every later call on that
//! device fails at once with the first reason (sticky), and dropping everything neither
//! hangs nor leaks. Its own test binary, because the fault corrupts the process's shared
//! context for the device; the runner keeps it out of the compute-sanitizer passes (the
//! fault is what memcheck reports).

mod gpu_common;

use std::time::{Duration, Instant};

use gpu_common::gpu;
use rocmforge::Error;
use rocmforge::backend::gpu::{KernelArgs, LaunchConfig, Module, Stream, Vendor};
use rocmforge::ffi::rf_status;

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_faulting_kernel_loses_the_device_for_good_without_hanging() {
    let device = gpu();
    if device.vendor() == Vendor::Hip {
        // ROCm's runtime aborts the whole process on a GPU memory fault (the HSA default),
        // which no library can turn into an error.
        eprintln!("SKIPPED: a GPU memory fault aborts HIP processes");
        return;
    }
    let started = Instant::now();
    let stream = Stream::new(&device).unwrap();
    let module = Module::load_embedded(&device, "runtime_test").unwrap();
    let fault = module.function("rf_test_fault").unwrap();
    let survivor = device.upload(&stream, &[1u32, 2, 3]).unwrap();

    let mut args = KernelArgs::new();
    args.push(16u64); // an address no allocation maps
    // SAFETY: not safe on purpose: the kernel writes through an invalid pointer, which
    // the GPU reports as a fault of this context; host memory is not involved.
    unsafe { fault.launch(&stream, &LaunchConfig::linear(1, 32), &args) }.unwrap();
    let error = stream.synchronize().unwrap_err();
    println!("{error}");
    assert!(matches!(error, Error::DeviceLost(_)), "{error:?}");
    assert_eq!(rf_status::from(&error), rf_status::RF_ERR_DEVICE_LOST);
    let reason = device
        .lost_reason()
        .expect("the device is marked lost")
        .to_owned();
    assert!(reason.contains("ILLEGAL_ADDRESS"), "{reason}");

    // Sticky: later calls fail with the first reason, without reaching the driver.
    for later in [
        device.alloc::<u8>(1024).map(drop).unwrap_err(),
        survivor.to_host_vec(&stream).map(drop).unwrap_err(),
        Stream::new(&device).map(drop).unwrap_err(),
        device.memory_info().map(drop).unwrap_err(),
    ] {
        assert!(
            matches!(&later, Error::DeviceLost(r) if *r == reason),
            "{later:?}"
        );
    }

    // Releasing everything on a lost device completes and balances the counters.
    drop((survivor, fault, module, stream));
    gpu_common::assert_all_freed(&device);
    drop(device);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
