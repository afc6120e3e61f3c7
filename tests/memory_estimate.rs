//! `rf_model_estimate` against what the context then reports: for SmolLM2 on the CPU at
//! three context sizes (and batch sizes), and a Q8_0 cache at the largest, the estimated
//! host bytes are within 5% of `rf_context_memory`'s after a decode, the device bytes
//! equal (none), and the weights are the file's tensor bytes. The model itself is loaded
//! only to measure. `rf_model_estimate_share` on one device, and the estimate of a layer
//! split over two GPUs share by share (a device list with two GPUs added: estimating
//! reads no GPU).

mod common;

use std::ptr;

use common::ffi::{decode_last_logits, last_error, load_model};
use common::{SMOLLM2, model_path};
use rocmforge::backend::{DeviceKind, DeviceReport, enumerate};
use rocmforge::context::ContextParams;
use rocmforge::ffi::{
    RF_DEVICE_CPU, RF_KV_F16, RF_KV_Q8_0, rf_context_default_params, rf_context_free,
    rf_context_memory, rf_context_new, rf_memory_estimate, rf_memory_report,
    rf_model_default_params, rf_model_estimate, rf_model_estimate_share, rf_model_free,
    rf_model_params, rf_status,
};
use rocmforge::gguf::GgufFile;
use rocmforge::memory_estimate::{estimate as estimate_on, estimate_shares};
use rocmforge::model::{Placement, SplitMode};

fn empty_estimate() -> rf_memory_estimate {
    rf_memory_estimate {
        struct_size: size_of::<rf_memory_estimate>() as u32,
        device: -1,
        weights_bytes: 0,
        kv_bytes: 0,
        host_bytes: 0,
        device_bytes: 0,
    }
}

fn estimate(n_ctx: u32, n_batch: u32, kv_type: u32) -> rf_memory_estimate {
    let path = model_path(SMOLLM2);
    let path = path.to_str().expect("a UTF-8 path");
    let mut model_params = rf_model_default_params();
    model_params.device = RF_DEVICE_CPU;
    let mut context_params = rf_context_default_params();
    (context_params.n_ctx, context_params.n_batch) = (n_ctx, n_batch);
    context_params.kv_type = kv_type;
    let mut out = empty_estimate();
    // SAFETY: valid path bytes, parameter structs and out-struct.
    let status = unsafe {
        rf_model_estimate(
            path.as_ptr().cast(),
            path.len(),
            &model_params,
            &context_params,
            &mut out,
        )
    };
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    out
}

fn measured(n_ctx: u32, n_batch: u32, kv_type: u32) -> rf_memory_report {
    let model = load_model(SMOLLM2);
    let mut params = rf_context_default_params();
    (params.n_ctx, params.n_batch, params.n_threads) = (n_ctx, n_batch, 1);
    params.kv_type = kv_type;
    let mut ctx = ptr::null_mut();
    let mut report = rf_memory_report {
        struct_size: size_of::<rf_memory_report>() as u32,
        kv_blocks_total: 0,
        kv_blocks_used: 0,
        kv_blocks_free: 0,
        kv_block_tokens: 0,
        host_bytes: 0,
        device_bytes: 0,
    };
    // SAFETY: a live model, valid params and out-pointers; the context is freed below.
    unsafe {
        assert_eq!(
            rf_context_new(model, &params, &mut ctx),
            rf_status::RF_OK,
            "{}",
            last_error()
        );
        decode_last_logits(ctx, &[1, 504, 2634, 3546, 3615, 359]).unwrap();
        assert_eq!(rf_context_memory(ctx, &mut report), rf_status::RF_OK);
        rf_context_free(ctx);
        rf_model_free(model);
    }
    report
}

#[test]
fn the_estimate_matches_the_context_at_three_sizes() {
    let file_tensor_bytes = {
        let bytes = std::fs::read(model_path(SMOLLM2)).unwrap();
        let gguf = GgufFile::parse(&bytes).unwrap();
        gguf.tensors().iter().map(|t| t.n_bytes()).sum::<u64>()
    };
    for (n_ctx, n_batch, kv_type) in [
        (256, 64, RF_KV_F16),
        (2048, 512, RF_KV_F16),
        (8192, 512, RF_KV_F16),
        (8192, 512, RF_KV_Q8_0),
    ] {
        let predicted = estimate(n_ctx, n_batch, kv_type);
        let report = measured(n_ctx, n_batch, kv_type);
        let host = report.host_bytes as f64;
        let error = (predicted.host_bytes as f64 - host).abs() / host;
        println!(
            "n_ctx {n_ctx}, n_batch {n_batch}, kv_type {kv_type}: estimated host {} (KV {}), measured {}: {:.2}% apart",
            predicted.host_bytes,
            predicted.kv_bytes,
            report.host_bytes,
            100.0 * error
        );
        assert!(error <= 0.05, "n_ctx {n_ctx}: {:.1}% apart", 100.0 * error);
        assert_eq!(predicted.device_bytes, report.device_bytes);
        assert_eq!(predicted.device, 0);
        assert_eq!(predicted.weights_bytes, file_tensor_bytes);
    }
}

#[test]
fn a_missing_file_or_a_vocabulary_only_model_is_refused() {
    let path = "/nonexistent/model.gguf";
    let mut out = empty_estimate();
    // SAFETY: valid path bytes and out-struct; NULL parameters take the defaults.
    let status = unsafe {
        rf_model_estimate(
            path.as_ptr().cast(),
            path.len(),
            ptr::null(),
            ptr::null(),
            &mut out,
        )
    };
    assert_eq!(status, rf_status::RF_ERR_IO);
    let mut vocab_only = rf_model_default_params();
    vocab_only.vocab_only = true;
    let (status, _) = estimate_smollm2(&vocab_only);
    assert_eq!(
        status,
        rf_status::RF_ERR_INVALID_ARGUMENT,
        "{}",
        last_error()
    );
}

#[test]
fn model_parameters_the_load_refuses_are_refused() {
    // `rf_model_load` refuses more threads than the CPU backend runs; an estimate "as
    // rf_model_load would choose" must not succeed for a load that cannot.
    let mut too_many_threads = rf_model_default_params();
    too_many_threads.n_threads = 100_000;
    let (status, out) = estimate_smollm2(&too_many_threads);
    assert_eq!(
        status,
        rf_status::RF_ERR_INVALID_ARGUMENT,
        "{}",
        last_error()
    );
    assert_eq!(out.weights_bytes, 0, "no partial result");
}

/// What `rf_model_estimate` reports for SmolLM2 loaded with `params` (default context).
fn estimate_smollm2(params: &rf_model_params) -> (rf_status, rf_memory_estimate) {
    let path = model_path(SMOLLM2);
    let path = path.to_str().expect("a UTF-8 path");
    let mut out = empty_estimate();
    // SAFETY: valid path bytes, parameter struct and out-struct.
    let status = unsafe {
        rf_model_estimate(
            path.as_ptr().cast(),
            path.len(),
            params,
            ptr::null(),
            &mut out,
        )
    };
    (status, out)
}

/// What `rf_model_estimate_share` reports for share `index` of SmolLM2 on the CPU.
fn estimate_share(index: usize) -> (rf_status, rf_memory_estimate) {
    let path = model_path(SMOLLM2);
    let path = path.to_str().expect("a UTF-8 path");
    let mut model_params = rf_model_default_params();
    model_params.device = RF_DEVICE_CPU;
    let mut context_params = rf_context_default_params();
    (context_params.n_ctx, context_params.n_batch) = (2048, 512);
    let mut out = empty_estimate();
    // SAFETY: valid path bytes, parameter structs and out-struct.
    let status = unsafe {
        rf_model_estimate_share(
            path.as_ptr().cast(),
            path.len(),
            &model_params,
            &context_params,
            index,
            &mut out,
        )
    };
    (status, out)
}

#[test]
fn a_model_on_one_device_is_one_share_of_the_whole_estimate() {
    let whole = estimate(2048, 512, RF_KV_F16);
    let (status, share) = estimate_share(0);
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    for (what, a, b) in [
        ("weights", share.weights_bytes, whole.weights_bytes),
        ("kv", share.kv_bytes, whole.kv_bytes),
        ("host", share.host_bytes, whole.host_bytes),
        ("device", share.device_bytes, whole.device_bytes),
    ] {
        assert_eq!(a, b, "{what}");
    }
    assert_eq!(share.device, RF_DEVICE_CPU);
    let (status, _) = estimate_share(1);
    assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT);
    assert!(
        last_error().contains("share 1 of a model of 1 shares"),
        "{}",
        last_error()
    );
}

/// This machine's device list with two GPUs added (an estimate reads only their kind and
/// free memory), and the index of the first of them.
fn with_two_gpus() -> (Vec<DeviceReport>, usize) {
    let mut devices = enumerate();
    let first_gpu = devices.len();
    for ordinal in 0..2 {
        devices.push(DeviceReport {
            kind: DeviceKind::Cuda,
            ordinal,
            name: format!("estimated GPU {ordinal}"),
            arch: "sm_90".into(),
            total_bytes: 80 << 30,
            free_bytes: 80 << 30,
            compute_units: 132,
            warp_size: 32,
            usable: true,
            why_unusable: None,
        });
    }
    (devices, first_gpu)
}

/// A layer split over two GPUs, estimated on any machine.
#[test]
fn a_layer_split_is_estimated_share_by_share() {
    let bytes = std::fs::read(model_path(SMOLLM2)).unwrap();
    let gguf = GgufFile::parse(&bytes).unwrap();
    let tensor_bytes = |name: &str| gguf.tensor_info(name).map_or(0, |t| t.n_bytes());
    let (devices, first_gpu) = with_two_gpus();
    let placement =
        Placement::split(&devices, &[first_gpu, first_gpu + 1], Some(&[1.0, 2.0])).unwrap();
    let params = ContextParams {
        n_ctx: 2048,
        n_batch: 512,
        n_threads: 1,
        ..ContextParams::default()
    };
    let shares = estimate_shares(&gguf, &placement, &params).unwrap();
    assert_eq!(shares.len(), 2);
    assert_eq!(
        (shares[0].device, shares[1].device),
        (first_gpu, first_gpu + 1)
    );
    assert_eq!(
        (shares[0].layers.clone(), shares[1].layers.clone()),
        (0..10, 10..30)
    );
    // Every tensor of SmolLM2 is uploaded once, and its tied head a second time with the
    // last share.
    let all: u64 = gguf.tensors().iter().map(|t| t.n_bytes()).sum();
    let embedding = tensor_bytes("token_embd.weight");
    assert_eq!(
        shares[0].memory.weights_bytes + shares[1].memory.weights_bytes,
        all + embedding
    );
    let layer = |i: usize| -> u64 {
        let prefix = format!("blk.{i}.");
        gguf.tensors()
            .iter()
            .filter(|t| t.name().starts_with(&prefix))
            .map(|t| t.n_bytes())
            .sum()
    };
    assert_eq!(
        shares[0].memory.weights_bytes,
        embedding + (0..10).map(layer).sum::<u64>()
    );
    // The layers are alike, so the K/V cache divides as they do; only the last share
    // computes logits.
    assert_eq!(2 * shares[0].memory.kv_bytes, shares[1].memory.kv_bytes);
    assert!(shares[0].memory.host_bytes < shares[1].memory.host_bytes);
    let whole = estimate_on(&gguf, &placement, &params).unwrap();
    assert_eq!(whole.kv_bytes, 3 * shares[0].memory.kv_bytes);
}

/// A tensor split over two GPUs, estimated on any machine: SmolLM2's 3 K/V heads and FFN
/// of 48 slices of 32 divide one to two.
#[test]
fn a_tensor_split_is_estimated_share_by_share() {
    let bytes = std::fs::read(model_path(SMOLLM2)).unwrap();
    let gguf = GgufFile::parse(&bytes).unwrap();
    let tensor_bytes = |name: &str| gguf.tensor_info(name).map_or(0, |t| t.n_bytes());
    let (devices, first_gpu) = with_two_gpus();
    let gpus = [first_gpu, first_gpu + 1];
    let placement =
        Placement::split_by(SplitMode::Tensors, &devices, &gpus, Some(&[1.0, 2.0])).unwrap();
    let params = ContextParams {
        n_ctx: 2048,
        n_batch: 512,
        n_threads: 1,
        ..ContextParams::default()
    };
    let shares = estimate_shares(&gguf, &placement, &params).unwrap();
    assert_eq!(shares.len(), 2);
    assert!(shares.iter().all(|s| s.layers == (0..30)));
    // Each share holds its part of every layer's matrices, the layers' whole norms and
    // the embedding; the last also the output norm and the tied head, a second copy of
    // the embedding.
    let all: u64 = gguf.tensors().iter().map(|t| t.n_bytes()).sum();
    let embedding = tensor_bytes("token_embd.weight");
    let layer_norms: u64 = (gguf.tensors().iter())
        .filter(|t| t.name().starts_with("blk.") && t.name().ends_with("_norm.weight"))
        .map(|t| t.n_bytes())
        .sum();
    assert_eq!(
        shares[0].memory.weights_bytes + shares[1].memory.weights_bytes,
        all + 2 * embedding + layer_norms
    );
    let q_of_layer_0 = tensor_bytes("blk.0.attn_q.weight");
    let share_0_layers = shares[0].memory.weights_bytes - embedding;
    assert!(share_0_layers > 29 * q_of_layer_0 && share_0_layers < all / 2);
    // One K/V head of three on the first share, two on the second.
    assert_eq!(2 * shares[0].memory.kv_bytes, shares[1].memory.kv_bytes);
    assert!(shares[0].memory.host_bytes < shares[1].memory.host_bytes);
}
