//! A real model cut short anywhere in its header, metadata or tensor infos is rejected
//! with a typed error, never a panic.

mod common;

use common::{SMOLLM2, model_path};
use rocmforge::Error;
use rocmforge::gguf::GgufFile;
use rocmforge::gguf::synthetic::SplitMix64;

const RANDOM_CUTS: usize = 1000;

fn assert_rejected(prefix: &[u8]) {
    match GgufFile::parse(prefix) {
        Err(Error::InvalidGguf(_)) => {}
        Err(other) => panic!("cut at {}: unexpected error kind: {other}", prefix.len()),
        Ok(_) => panic!("cut at {} was accepted", prefix.len()),
    }
}

#[test]
fn smollm2_cut_anywhere_before_its_tensor_data_is_rejected() {
    let bytes = std::fs::read(model_path(SMOLLM2)).unwrap();
    let data_offset = GgufFile::parse(&bytes).unwrap().data_offset() as usize;

    for cut in 0..4096 {
        assert_rejected(&bytes[..cut]);
    }
    let mut rng = SplitMix64(0x5eed);
    for _ in 0..RANDOM_CUTS {
        let cut = 4096 + rng.below((data_offset - 4096) as u64) as usize;
        assert_rejected(&bytes[..cut]);
    }
}

#[test]
fn smollm2_cut_inside_its_tensor_data_is_rejected() {
    let bytes = std::fs::read(model_path(SMOLLM2)).unwrap();
    let data_offset = GgufFile::parse(&bytes).unwrap().data_offset() as usize;
    let mut rng = SplitMix64(0xda7a);
    for _ in 0..20 {
        let cut = data_offset + rng.below((bytes.len() - data_offset) as u64) as usize;
        assert_rejected(&bytes[..cut]);
    }
}
