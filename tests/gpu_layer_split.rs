//! A model split by layers over several GPUs computes what it computes on one. The GPUs
//! here are shares of one GPU named several times in the split, which exercises all of a
//! layer split but the link between two physical GPUs: a device handle, allocation
//! counters, stream and decode graph of each share, the residual stream handed over
//! between them, the head on the last. The logits of every step (prefill batches through
//! both product paths, then single-token steps replayed from graphs) must equal the
//! single-GPU run's bit for bit: the shares run the same kernels on the same values (a
//! later share's first norm is prepared from the stream as the residual product before it
//! prepares it on one device, `Backend::prepare_norm`).
//! A memory limit per GPU (`Placement::with_memory_limit`) that one GPU cannot hold the
//! model under is met by two shares.

mod common;
mod gpu_common;

use std::sync::Arc;

use common::tiny_model::engine::{Engine, LibraryEngine};
use common::tiny_model::variants::variants;
use common::tiny_model::vocabulary;
use rocmforge::backend::gpu::Device;
use rocmforge::backend::{BackendState, ContextSizes, DeviceKind, KvType};
use rocmforge::context::ContextParams;
use rocmforge::error::Error;
use rocmforge::ffi::{
    rf_context_default_params, rf_context_free, rf_context_new, rf_context_params, rf_model,
    rf_model_default_params, rf_model_description, rf_model_free, rf_model_info,
    rf_model_load_from_memory, rf_model_params, rf_model_share, rf_model_share_info, rf_status,
};
use rocmforge::gguf::synthetic::{LlamaFileType, SyntheticLlama};
use rocmforge::gguf::{GgufWriter, OwnedGguf};
use rocmforge::memory_estimate::estimate_shares;
use rocmforge::model::{Model, Placement};

/// The device list index of the first usable GPU.
fn gpu_index() -> usize {
    gpu_common::gpu();
    rocmforge::backend::enumerate()
        .iter()
        .position(|d| d.kind != DeviceKind::Cpu && d.usable)
        .expect("gpu() found a usable GPU")
}

/// `gguf` on the device list entries `devices` (one: no split), in proportion to
/// `proportions` where given.
fn model_on(gguf: Vec<u8>, devices: &[usize], proportions: Option<&[f32]>) -> Arc<Model> {
    let placement = Placement::split(&rocmforge::backend::enumerate(), devices, proportions)
        .expect("the devices can hold a split");
    let file = OwnedGguf::from_buffer(gguf).expect("the model parses");
    Arc::new(Model::from_gguf_on(file, placement).expect("the model loads"))
}

/// The logits of 88 teacher-forced positions: a 48-token prefill (the vendor BLAS path),
/// an 8-token one (the integer kernels), then 32 single-token steps (a captured decode
/// graph, replayed).
fn teacher_forced(model: Arc<Model>) -> Vec<Vec<f64>> {
    let mut engine = LibraryEngine::new(model);
    let mut random = gpu_common::Random::new(17);
    let mut token = || (random.next_u64() % vocabulary::N_TOKENS) as i32;
    let mut batch = |n: usize| -> Vec<(i32, i32)> { (0..n).map(|_| (0, token())).collect() };
    let mut logits = engine.decode(&batch(48));
    logits.extend(engine.decode(&batch(8)));
    for _ in 0..32 {
        logits.extend(engine.decode(&batch(1)));
    }
    logits
}

/// A handle of each share's GPU, whose counters outlive the model.
fn share_devices(model: &Model) -> Vec<Device> {
    model
        .shares()
        .iter()
        .map(|s| s.device.expect("a GPU share").clone())
        .collect()
}

fn assert_same_logits(split: &[Vec<f64>], single: &[Vec<f64>], what: &str) {
    assert_eq!(split.len(), single.len());
    for (position, (a, b)) in split.iter().zip(single).enumerate() {
        let differ = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits());
        assert_eq!(
            differ.count(),
            0,
            "{what}: position {position}'s logits differ from the single-GPU run's"
        );
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn every_tiny_model_split_in_two_gives_the_single_gpu_logits() {
    let gpu = gpu_index();
    let mut checked = 0;
    for variant in variants().iter().filter(|v| v.spec.n_layer >= 2) {
        let single = teacher_forced(model_on(variant.gguf(), &[gpu], None));
        let split = teacher_forced(model_on(variant.gguf(), &[gpu, gpu], None));
        assert_same_logits(&split, &single, &variant.name);
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} tiny models have two layers");
}

/// A SmolLM2-shaped model (30 layers, Q4_K_M's mix of Q4_K and Q6_K) as GGUF bytes.
fn smollm2_shape() -> Vec<u8> {
    let mut spec = SyntheticLlama::of_shape(vocabulary::N_TOKENS, [576, 30, 9, 3, 1536], 3);
    spec.types = LlamaFileType::MostlyQ4KM.weight_types(spec.row_lengths(), true);
    let mut writer = GgufWriter::new();
    for (key, value) in vocabulary::metadata() {
        writer.add_metadata(key, value).expect("tokenizer metadata");
    }
    spec.add_to(&mut writer).expect("a well-formed llama");
    writer.to_bytes()
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_three_way_split_holds_each_share_on_its_device_and_frees_them_all() {
    let gpu = gpu_index();
    let single = model_on(smollm2_shape(), &[gpu], None);
    let single_bytes = single.device().expect("on a GPU").memory_stats().live_bytes;
    let single_logits = teacher_forced(single);

    let split = model_on(smollm2_shape(), &[gpu, gpu, gpu], Some(&[1.0, 2.0, 1.0]));
    let shares = split.shares();
    let layers: Vec<_> = shares.iter().map(|s| s.layers.clone()).collect();
    assert_eq!(layers, vec![0..8, 8..23, 23..30]);
    let devices = share_devices(&split);
    let weights: Vec<u64> = devices
        .iter()
        .map(|d| d.memory_stats().live_bytes)
        .collect();
    // What each share reports is what its device holds, but for the rounding of each
    // allocation to 16 bytes.
    for (share, device) in shares.iter().zip(&devices) {
        let held = device.memory_stats();
        let rounding = 16 * held.live_allocations;
        assert!(
            share.weights_bytes <= held.live_bytes
                && held.live_bytes <= share.weights_bytes + rounding,
            "layers {:?}: reported {}, held {held:?}",
            share.layers,
            share.weights_bytes
        );
    }
    assert_eq!(
        weights.iter().sum::<u64>(),
        single_bytes,
        "the shares {weights:?} hold the single GPU's weights between them"
    );
    // The estimate, from the file alone, names the same layers and weights share by share.
    let file = OwnedGguf::from_buffer(smollm2_shape()).expect("the model parses");
    let estimated = estimate_shares(
        file.file(),
        split.placement(),
        &ContextParams {
            n_threads: 1,
            ..ContextParams::default()
        },
    )
    .expect("an estimate of the split");
    for (estimate, share) in estimated.iter().zip(&shares) {
        assert_eq!(estimate.layers, share.layers);
        assert_eq!(
            estimate.memory.weights_bytes, share.weights_bytes,
            "{:?}",
            share.layers
        );
    }
    // The middle share's 15 layers outweigh the first's 8 and the embedding.
    assert!(weights[1] > weights[0], "{weights:?}");

    // Each share's context state holds the K/V of its own layers only.
    let sizes = ContextSizes {
        n_slots: 256,
        block_size: 16,
        n_seq: 1,
        n_batch: 64,
        kv_type: KvType::F16,
        window: None,
    };
    let shape = split.config().shape();
    let state = split.new_backend(&sizes, 1).expect("a split context state");
    let BackendState::Gpu(parts) = &state else {
        panic!("a GPU model's state is on the GPU");
    };
    for (share, layers) in parts.shares().iter().zip(&layers) {
        assert_eq!(share.layers(), *layers);
        let kv = share.memory().kv_bytes;
        assert_eq!(u128::from(kv), sizes.kv_bytes_of(&shape, layers.clone()));
    }
    drop(state);

    assert_same_logits(
        &teacher_forced(split),
        &single_logits,
        "SmolLM2 shape Q4_K_M over three shares",
    );
    devices.iter().for_each(gpu_common::assert_all_freed);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_split_with_more_devices_than_layers_is_refused() {
    let gpu = gpu_index();
    let variant = variants()
        .into_iter()
        .find(|v| v.spec.n_layer == 1)
        .expect("a one-layer tiny model");
    let placement = Placement::split(&rocmforge::backend::enumerate(), &[gpu, gpu], None)
        .expect("two shares of one GPU");
    let file = OwnedGguf::from_buffer(variant.gguf()).expect("the model parses");
    let err = Model::from_gguf_on(file, placement).err().expect("refused");
    assert!(err.to_string().contains("at least one layer"), "{err}");
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_model_past_one_gpus_memory_limit_loads_and_runs_split_over_two() {
    let gpu = gpu_index();
    let single = model_on(smollm2_shape(), &[gpu], None);
    let weights = single.device().expect("on a GPU").memory_stats().live_bytes;
    let single_logits = teacher_forced(single);
    // Six tenths of the weights: more than a half share and its context state need,
    // less than the whole model.
    let limit = weights * 6 / 10;
    let limited = |devices: &[usize]| {
        let placement = Placement::split(&rocmforge::backend::enumerate(), devices, None)
            .expect("the devices can hold a split")
            .with_memory_limit(Some(limit));
        let file = OwnedGguf::from_buffer(smollm2_shape()).expect("the model parses");
        Model::from_gguf_on(file, placement)
    };
    let err = limited(&[gpu])
        .err()
        .expect("one GPU cannot hold the model");
    let text = err.to_string();
    assert!(matches!(err, Error::DeviceOutOfMemory(_)), "{text}");
    assert!(text.contains("would pass the limit"), "{text}");

    let split = Arc::new(limited(&[gpu, gpu]).expect("two shares fit under the limit"));
    let devices = share_devices(&split);
    assert_same_logits(
        &teacher_forced(Arc::clone(&split)),
        &single_logits,
        "SmolLM2 shape Q4_K_M over two shares under a limit",
    );
    for device in &devices {
        let peak = device.memory_stats().peak_bytes;
        assert!(
            peak <= limit,
            "a share peaked at {peak} bytes, past {limit}"
        );
    }
    drop(split);
    devices.iter().for_each(gpu_common::assert_all_freed);
}

/// Two physical GPUs: the residual stream crosses the link between them, each holds about
/// half of a SmolLM2-shaped model, and the logits are the single GPU's (`assert_same_logits`).
#[test]
#[ignore = "needs two GPUs: run with --include-ignored on a machine with two"]
fn two_gpus_split_a_model_and_give_the_single_gpu_logits() {
    let [first, second] = gpu_common::two_gpus();
    for variant in variants().iter().filter(|v| v.spec.n_layer >= 2) {
        let single = teacher_forced(model_on(variant.gguf(), &[first], None));
        let split = teacher_forced(model_on(variant.gguf(), &[first, second], None));
        assert_same_logits(&split, &single, &variant.name);
    }
    let single = model_on(smollm2_shape(), &[first], None);
    let whole = single.device().expect("on a GPU").memory_stats().live_bytes;
    let single_logits = teacher_forced(single);
    let split = model_on(smollm2_shape(), &[first, second], None);
    let devices = share_devices(&split);
    for (share, device) in devices.iter().enumerate() {
        let held = device.memory_stats().live_bytes;
        let fraction = held as f64 / whole as f64;
        println!("GPU share {share}: {held} of the model's {whole} bytes ({fraction:.2})");
        assert!(
            (0.3..=0.7).contains(&fraction),
            "share {share} holds {held} of {whole} bytes"
        );
    }
    assert_same_logits(
        &teacher_forced(Arc::clone(&split)),
        &single_logits,
        "SmolLM2 shape Q4_K_M over two GPUs",
    );
    drop(split);
    devices.iter().for_each(gpu_common::assert_all_freed);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_share_that_fails_to_load_frees_what_the_others_were_given() {
    let gpu = gpu_index();
    let probe = gpu_common::gpu();
    let weights = {
        let single = model_on(smollm2_shape(), &[gpu], None);
        single.device().expect("on a GPU").memory_stats().live_bytes
    };
    // The first share (a fifth of the layers) fits under the limit; the second (the
    // rest) does not, so the load fails after the first share was uploaded.
    let placement = Placement::split(
        &rocmforge::backend::enumerate(),
        &[gpu, gpu],
        Some(&[1.0, 4.0]),
    )
    .expect("two shares of one GPU")
    .with_memory_limit(Some(weights / 2));
    gpu_common::assert_failed_load_frees_the_gpu(&probe, || {
        Model::from_gguf_on(
            OwnedGguf::from_buffer(smollm2_shape()).expect("the model parses"),
            placement,
        )
    });
}

/// Share `index` of `model` through the C ABI.
fn share_info(model: *const rf_model, index: usize) -> rf_model_share {
    // SAFETY: all-zero bytes are a valid rf_model_share.
    let mut share: rf_model_share = unsafe { std::mem::zeroed() };
    share.struct_size = size_of::<rf_model_share>() as u32;
    // SAFETY: a live model and a writable share.
    let status = unsafe { rf_model_share_info(model, index, &mut share) };
    assert_eq!(status, rf_status::RF_OK, "{}", common::ffi::last_error());
    share
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn the_c_abi_reports_each_share_and_its_contexts_memory() {
    let gpu = i32::try_from(gpu_index()).expect("a small device index");
    let bytes: &'static [u8] = Box::leak(smollm2_shape().into_boxed_slice());
    let devices = [gpu, gpu];
    let params = rf_model_params {
        devices: devices.as_ptr(),
        n_devices: devices.len(),
        ..rf_model_default_params()
    };
    let mut model = std::ptr::null_mut();
    // SAFETY: the bytes live for the whole process; valid params (`devices` outlives the
    // call) and out-pointer.
    let status = unsafe {
        rf_model_load_from_memory(bytes.as_ptr().cast(), bytes.len(), &params, &mut model)
    };
    assert_eq!(status, rf_status::RF_OK, "{}", common::ffi::last_error());
    // SAFETY: all-zero bytes are a valid rf_model_description.
    let mut description: rf_model_description = unsafe { std::mem::zeroed() };
    description.struct_size = size_of::<rf_model_description>() as u32;
    // SAFETY: a live model and a writable description.
    assert_eq!(
        unsafe { rf_model_info(model, &mut description) },
        rf_status::RF_OK
    );
    assert_eq!((description.n_shares, description.device), (2, gpu));

    let loaded = [share_info(model, 0), share_info(model, 1)];
    let layers: Vec<_> = loaded.iter().map(|s| (s.first_layer, s.n_layers)).collect();
    assert_eq!(layers, [(0, 15), (15, 15)]);
    assert!(
        loaded
            .iter()
            .all(|s| s.device == gpu && s.weights_bytes > 0)
    );
    let weights: u64 = loaded.iter().map(|s| s.weights_bytes).sum();
    assert_eq!(weights, description.device_bytes);

    // A context's KV cache and buffers land on both shares' counts.
    let ctx_params = rf_context_params {
        n_ctx: 1024,
        ..rf_context_default_params()
    };
    let mut ctx = std::ptr::null_mut();
    // SAFETY: a live model, valid params and out-pointer.
    let status = unsafe { rf_context_new(model, &ctx_params, &mut ctx) };
    assert_eq!(status, rf_status::RF_OK, "{}", common::ffi::last_error());
    let with_context = [share_info(model, 0), share_info(model, 1)];
    for (before, after) in loaded.iter().zip(&with_context) {
        assert!(
            after.device_bytes > before.device_bytes,
            "a share's device bytes {} -> {} with a context",
            before.device_bytes,
            after.device_bytes
        );
    }
    // SAFETY: the context and model came from rf_context_new and rf_model_load_*.
    unsafe {
        rf_context_free(ctx);
        rf_model_free(model);
    }
}
