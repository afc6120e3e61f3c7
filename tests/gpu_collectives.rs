//! The vendor's collectives library (NCCL, RCCL) through `Communicators`, on one GPU:
//! found where the dynamic loader finds it (LD_LIBRARY_PATH for a pip-installed NCCL),
//! an all-reduce over a group of one GPU leaves its values as they were (the sum of one),
//! a group naming one GPU twice is refused with the library's reason, and nothing is left
//! allocated; over two GPUs (`two_gpus_*`, on a machine with two) it sums. (Without the
//! library, `Communicators::new` is `Error::Unsupported`: the unit tests of
//! `result::collectives` cover that on any machine.)

mod gpu_common;

use rocmforge::backend::gpu::{Communicators, Stream};
use rocmforge::error::Error;

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn an_all_reduce_over_one_gpu_keeps_its_values() {
    let device = gpu_common::gpu();
    let stream = Stream::new(&device).unwrap();
    let values: Vec<f32> = (0..4099).map(|i| i as f32 * 0.5 - 700.0).collect();
    let mut buffer = device.upload(&stream, &values).unwrap();
    let mut group = Communicators::new(std::slice::from_ref(&device))
        .expect("the collectives library is on the loader's path");
    eprintln!("collectives: {}", group.library_path());
    group
        .all_reduce_sum(&mut [&mut buffer], &[&stream])
        .expect("the all-reduce queues");
    assert_eq!(buffer.to_host_vec(&stream).unwrap(), values);

    // Two buffers for a group of one are refused before the library sees them.
    let mut other = device.upload(&stream, &values).unwrap();
    let err = group
        .all_reduce_sum(&mut [&mut other, &mut buffer], &[&stream, &stream])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    drop((group, buffer, other, stream));
    gpu_common::assert_all_freed(&device);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_group_with_one_gpu_twice_is_refused_with_the_reason() {
    let (device, again) = (gpu_common::gpu(), gpu_common::gpu());
    let err = match Communicators::new(&[device.clone(), again]) {
        Err(e) => e,
        Ok(_) => panic!("a group of one GPU twice was made"),
    };
    let text = err.to_string();
    assert!(matches!(err, Error::Device(_)), "{text}");
    assert!(text.contains("ncclCommInitAll failed"), "{text}");
    gpu_common::assert_all_freed(&device);
}

#[test]
#[ignore = "needs two GPUs: run with --include-ignored on a machine with two"]
fn two_gpus_all_reduce_sums_over_both() {
    let reports = rocmforge::backend::enumerate();
    let devices = gpu_common::two_gpus().map(|i| reports[i].open().expect("a usable GPU opens"));
    let streams = devices.each_ref().map(|d| Stream::new(d).unwrap());
    // Halves of small integers: every sum is exact in f32, in any order.
    let values = |k: f32| {
        (0..4099)
            .map(|i| (i % 1000) as f32 * 0.5 * k - 100.0)
            .collect()
    };
    let inputs: [Vec<f32>; 2] = [values(1.0), values(-3.0)];
    let [mut a, mut b] = [0, 1].map(|i| devices[i].upload(&streams[i], &inputs[i]).unwrap());
    let mut group =
        Communicators::new(&devices).expect("the collectives library is on the loader's path");
    eprintln!("collectives: {}", group.library_path());
    group
        .all_reduce_sum(&mut [&mut a, &mut b], &[&streams[0], &streams[1]])
        .expect("the all-reduce queues");
    let expected: Vec<f32> = inputs[0]
        .iter()
        .zip(&inputs[1])
        .map(|(x, y)| x + y)
        .collect();
    assert_eq!(
        a.to_host_vec(&streams[0]).unwrap(),
        expected,
        "on the first GPU"
    );
    assert_eq!(
        b.to_host_vec(&streams[1]).unwrap(),
        expected,
        "on the second GPU"
    );
    drop((group, a, b, streams));
    devices.iter().for_each(gpu_common::assert_all_freed);
}
