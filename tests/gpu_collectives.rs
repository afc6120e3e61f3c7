//! The vendor's collectives library (NCCL, RCCL) through `Communicators`, on one GPU:
//! found where the dynamic loader finds it (LD_LIBRARY_PATH for a pip-installed NCCL),
//! an all-reduce over a group of one GPU leaves its values as they were (the sum of one),
//! a group naming one GPU twice is refused with the library's reason, and nothing is left
//! allocated. (Without the library, `Communicators::new` is `Error::Unsupported`: the
//! unit tests of `result::collectives` cover that on any machine.)

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
