//! What happens without a usable GPU runtime, testable on any machine: loading fails with
//! an error that says which step failed, never a panic, and the CPU is always there.

use rocmforge::Error;
use rocmforge::backend::gpu::{self, Driver, Unavailable, Vendor, kernels};
use rocmforge::backend::{self, DeviceChoice, DeviceKind};

#[test]
fn a_missing_library_is_named_with_every_place_tried() {
    let tried = vec![
        "/nonexistent/libcuda.so.1".to_owned(),
        "libdefinitely-not-cuda.so.1".to_owned(),
    ];
    let Err(Unavailable::LibraryNotFound {
        vendor,
        tried: reasons,
    }) = Driver::load_from(Vendor::Cuda, &tried)
    else {
        panic!("a library that does not exist loaded");
    };
    assert_eq!(vendor, Vendor::Cuda);
    assert_eq!(
        reasons.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        tried
    );
    assert!(reasons.iter().all(|(_, reason)| !reason.is_empty()));

    let error = Error::from(Unavailable::LibraryNotFound {
        vendor,
        tried: reasons,
    });
    let message = error.to_string();
    assert!(matches!(error, Error::Device(_)));
    assert!(
        message.contains("libcuda.so.1") && message.contains("/nonexistent"),
        "{message}"
    );
}

#[test]
fn a_library_without_the_entry_points_is_refused_by_symbol_name() {
    // The C library loads everywhere and exports none of either runtime's symbols.
    for (vendor, first_symbol) in [(Vendor::Cuda, "cuInit"), (Vendor::Hip, "hipInit")] {
        let Err(error) = Driver::load_from(vendor, &["libc.so.6".to_owned()]) else {
            panic!("libc.so.6 loaded as the {vendor} runtime");
        };
        let Unavailable::MissingSymbol {
            symbol, library, ..
        } = &error
        else {
            panic!("{error}");
        };
        assert_eq!((*symbol, library.as_str()), (first_symbol, "libc.so.6"));
        let message = Error::from(error).to_string();
        assert!(message.contains(first_symbol), "{message}");
    }
}

#[test]
fn every_runtime_either_starts_or_says_why() {
    for runtime in gpu::runtimes() {
        match &runtime.problem {
            None => {
                assert!(runtime.devices > 0 && runtime.library.is_some());
                println!(
                    "{}: {} devices, driver {}, from {}",
                    runtime.vendor,
                    runtime.devices,
                    runtime.version.map(|v| v.to_string()).unwrap_or_default(),
                    runtime.library.as_deref().unwrap_or_default()
                );
            }
            Some(problem) => {
                assert!(problem.contains(runtime.vendor.name()), "{problem}");
                println!("{}: unavailable: {problem}", runtime.vendor);
            }
        }
    }
}

#[test]
fn the_device_list_starts_with_the_cpu_and_explains_every_unusable_gpu() {
    let devices = backend::enumerate();
    let cpu = &devices[0];
    assert_eq!(cpu.kind, DeviceKind::Cpu);
    assert!(cpu.usable && cpu.why_unusable.is_none());
    assert!(cpu.total_bytes > 0 && cpu.free_bytes <= cpu.total_bytes);
    for device in &devices[1..] {
        assert_ne!(device.kind, DeviceKind::Cpu);
        assert_eq!(device.usable, device.why_unusable.is_none(), "{device:?}");
    }
    let chosen = backend::choose(&devices, DeviceChoice::Auto).unwrap();
    if devices
        .iter()
        .any(|d| d.kind != DeviceKind::Cpu && d.usable)
    {
        assert_ne!(chosen, 0);
    } else {
        assert_eq!(chosen, 0, "no usable GPU: auto must pick the CPU");
    }
    assert!(backend::choose(&devices, DeviceChoice::Index(devices.len())).is_err());
}

#[test]
fn opening_a_device_that_is_not_there_is_an_error() {
    for vendor in Vendor::ALL {
        let error = gpu::Device::open(vendor, 1 << 20).unwrap_err();
        assert!(
            matches!(error, Error::Device(_) | Error::InvalidArgument(_)),
            "{error:?}"
        );
    }
}

#[test]
fn the_build_says_what_kernels_it_carries() {
    let summary = kernels::summary();
    println!("{summary}");
    assert!(summary == "built without GPU kernels" || summary.starts_with("GPU kernels for"));
}
