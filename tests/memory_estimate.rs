//! `rf_model_estimate` against what the context then reports: for SmolLM2 on the CPU at
//! three context sizes (and batch sizes), and a Q8_0 cache at the largest, the estimated host bytes are within 5% of
//! `rf_context_memory`'s after a decode, the device bytes equal (none), and the weights
//! are the file's tensor bytes. The model itself is loaded only to measure.

mod common;

use std::ptr;

use common::ffi::{decode_last_logits, last_error, load_model};
use common::{SMOLLM2, model_path};
use rocmforge::ffi::{
    RF_DEVICE_CPU, RF_KV_F16, RF_KV_Q8_0, rf_context_default_params, rf_context_free,
    rf_context_memory, rf_context_new, rf_memory_estimate, rf_memory_report,
    rf_model_default_params, rf_model_estimate, rf_model_free, rf_status,
};

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
        let gguf = rocmforge::gguf::GgufFile::parse(&bytes).unwrap();
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
    let real = model_path(SMOLLM2);
    let real = real.to_str().expect("a UTF-8 path");
    let mut vocab_only = rf_model_default_params();
    vocab_only.vocab_only = true;
    // SAFETY: as above.
    let status = unsafe {
        rf_model_estimate(
            real.as_ptr().cast(),
            real.len(),
            &vocab_only,
            ptr::null(),
            &mut out,
        )
    };
    assert_eq!(
        status,
        rf_status::RF_ERR_INVALID_ARGUMENT,
        "{}",
        last_error()
    );
}
