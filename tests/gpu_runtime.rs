//! The GPU runtime on a real device: facts, memory ownership and copies, allocation
//! counting, out-of-memory, events. Ignored unless asked for (see gpu_common).

mod gpu_common;

use gpu_common::{Random, assert_all_freed, gpu};
use rocmforge::Error;
use rocmforge::backend::gpu::{self, Event, Stream, Vendor};
use rocmforge::backend::{self, DeviceChoice, DeviceKind};
use rocmforge::ffi::rf_status;

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn device_facts_come_from_the_driver() {
    let device = gpu();
    let facts = device.facts();
    println!(
        "{} {} #{}: {}, cc {}.{}, {} compute units, warp {}, {:.1} GiB, PCI {}, driver {}",
        facts.vendor,
        facts.arch.as_deref().unwrap_or("?"),
        facts.ordinal,
        facts.name,
        facts.compute_capability.0,
        facts.compute_capability.1,
        facts.compute_units,
        facts.warp_size,
        facts.total_bytes as f64 / (1u64 << 30) as f64,
        facts.pci,
        device.driver_version()
    );
    assert!(!facts.name.is_empty());
    assert!(facts.total_bytes >= 1 << 30);
    assert!(facts.compute_units > 0);
    match facts.vendor {
        Vendor::Cuda => {
            assert_eq!(facts.warp_size, 32);
            let arch = facts.arch.as_deref().unwrap();
            let (major, minor) = facts.compute_capability;
            assert_eq!(arch, format!("sm_{major}{minor}"));
        }
        Vendor::Hip => assert!(facts.warp_size == 32 || facts.warp_size == 64),
    }
    let info = device.memory_info().unwrap();
    assert_eq!(info.total_bytes, facts.total_bytes);
    assert!(info.free_bytes > 0 && info.free_bytes <= info.total_bytes);

    // The device list agrees with what opening the device reads.
    let reports = backend::enumerate();
    let listed = reports
        .iter()
        .find(|r| r.kind == DeviceKind::from(facts.vendor) && r.ordinal == facts.ordinal)
        .expect("the open device is listed");
    assert!(listed.usable, "{listed:?}");
    assert_eq!(
        (
            &listed.name,
            listed.arch.as_str(),
            listed.total_bytes,
            listed.compute_units
        ),
        (
            &facts.name,
            facts.arch.as_deref().unwrap_or("unknown"),
            facts.total_bytes,
            facts.compute_units
        )
    );
    assert_ne!(backend::choose(&reports, DeviceChoice::Auto).unwrap(), 0);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn one_gib_round_trip_is_bit_exact() {
    let device = gpu();
    let stream = Stream::new(&device).unwrap();
    const WORDS: usize = (1 << 30) / 8;
    let mut random = Random::new(0x5eed_1234);
    let host: Vec<u64> = (0..WORDS).map(|_| random.next_u64()).collect();

    let first = device.upload(&stream, &host).unwrap();
    let mut second = device.alloc::<u64>(WORDS).unwrap();
    // Poison the destination so a copy that does nothing cannot pass.
    second.fill_bytes(&stream, 0xa5).unwrap();
    second.copy_from_device(&stream, &first).unwrap();
    let mut back = vec![0u64; WORDS];
    second.copy_to_host(&stream, &mut back).unwrap();
    assert!(back == host, "the 1 GiB round trip changed data");

    let stats = device.memory_stats();
    assert_eq!(stats.live_bytes, 2 << 30);
    assert_eq!(stats.live_allocations, 2);
    assert!(stats.peak_bytes >= 2 << 30);
    drop((first, second));
    assert_all_freed(&device);
    assert_eq!(device.memory_stats().total_allocations, 2);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn copies_check_lengths_and_empty_buffers_cost_nothing() {
    let device = gpu();
    let stream = Stream::new(&device).unwrap();
    let mut buffer = device.alloc::<f32>(16).unwrap();
    let error = buffer.copy_from_host(&stream, &[0.0; 15]).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    let error = buffer.copy_to_host(&stream, &mut [0.0; 17]).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    let other = device.alloc::<f32>(8).unwrap();
    assert!(buffer.copy_from_device(&stream, &other).is_err());

    let values: Vec<f32> = (0..16).map(|i| i as f32 * 0.5 - 3.0).collect();
    buffer.copy_from_host(&stream, &values).unwrap();
    assert_eq!(buffer.to_host_vec(&stream).unwrap(), values);

    let empty = device.alloc::<u8>(0).unwrap();
    assert!(empty.is_empty() && empty.to_host_vec(&stream).unwrap().is_empty());
    assert_eq!(
        device.memory_stats().live_allocations,
        2,
        "empty buffers allocate nothing"
    );
    assert!(
        device.alloc::<u64>(usize::MAX / 4).is_err(),
        "byte size overflow"
    );
    drop((buffer, other, empty));
    assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn provoked_out_of_memory_is_reported_and_the_next_allocation_succeeds() {
    let device = gpu();
    let too_much = usize::try_from(device.facts().total_bytes + (1 << 30)).unwrap();
    let error = device.alloc::<u8>(too_much).unwrap_err();
    assert!(matches!(error, Error::DeviceOutOfMemory(_)), "{error:?}");
    assert_eq!(
        rf_status::from(&error),
        rf_status::RF_ERR_DEVICE_OUT_OF_MEMORY
    );
    println!("{error}");
    assert_eq!(
        device.memory_stats().live_allocations,
        0,
        "a failed allocation is not counted"
    );
    assert!(
        device.lost_reason().is_none(),
        "out of memory does not lose the device"
    );

    // The device is fine: the next allocation succeeds and works.
    let stream = Stream::new(&device).unwrap();
    let buffer = device.upload(&stream, &[7u32; 1 << 20]).unwrap();
    assert!(buffer.to_host_vec(&stream).unwrap().iter().all(|&v| v == 7));
    drop(buffer);
    assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn events_order_streams_and_time_work() {
    let device = gpu();
    let producer = Stream::new(&device).unwrap();
    let consumer = Stream::new(&device).unwrap();
    let (start, end) = (Event::new(&device).unwrap(), Event::new(&device).unwrap());
    let mut source = device.alloc::<u8>(64 << 20).unwrap();
    let mut copy = device.alloc::<u8>(64 << 20).unwrap();

    start.record(&producer).unwrap();
    source.fill_bytes(&producer, 0x3c).unwrap();
    end.record(&producer).unwrap();
    // The consumer copies only after the producer's fill.
    consumer.wait_for(&end).unwrap();
    copy.copy_from_device(&consumer, &source).unwrap();
    assert!(
        copy.to_host_vec(&consumer)
            .unwrap()
            .iter()
            .all(|&b| b == 0x3c)
    );

    end.synchronize().unwrap();
    let milliseconds = start.elapsed_ms(&end).unwrap();
    assert!(milliseconds.is_finite() && milliseconds >= 0.0);
    println!("64 MiB fill: {milliseconds:.3} ms");
    drop((source, copy));
    assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn many_devices_handles_share_one_context() {
    let device = gpu();
    let again = gpu::Device::open(device.vendor(), device.facts().ordinal).unwrap();
    assert!(device.same_device(&again));
    let stream = Stream::new(&again).unwrap();
    let buffer = device.upload(&stream, &[1u16, 2, 3]).unwrap();
    assert_eq!(buffer.to_host_vec(&stream).unwrap(), [1, 2, 3]);
    // Counters belong to the handle (and its clones) that allocated.
    assert_eq!(device.memory_stats().live_allocations, 1);
    assert_eq!(again.memory_stats().live_allocations, 0);
    drop(buffer);
    assert_all_freed(&device);
}
