//! A model whose weights disagree with its hyperparameters, or whose context length is 0,
//! is refused at load with `RF_ERR_INVALID_MODEL` and a message naming the tensor (or key)
//! and both numbers, as llama.cpp's loader does. A host sizes its logit reads by
//! `rf_model_info`'s `n_vocab` (the vocabulary's token count), so an embedding or output
//! matrix with another row count must never load.

use std::ffi::CStr;
use std::ptr;

use rocmforge::ffi::{
    rf_batch, rf_context_default_params, rf_context_free, rf_context_new, rf_decode, rf_get_logits,
    rf_last_error, rf_model, rf_model_default_params, rf_model_description, rf_model_free,
    rf_model_info, rf_model_load_from_memory, rf_status,
};
use rocmforge::gguf::{GgufWriter, OwnedValue};
use rocmforge::tensor::GgmlType;

/// A tiny llama: 30 tokens, n_embd 8, 2 query heads sharing 1 KV head of dimension 4,
/// n_ff 16, one layer.
const N_VOCAB: u64 = 30;
const N_EMBD: u64 = 8;
const N_HEAD: u64 = 2;
const N_HEAD_KV: u64 = 1;
const HEAD_DIM: u64 = 4;
const N_FF: u64 = 16;

/// The GGUF shape (`[columns, rows]`) of every weight of the tiny llama, by name.
fn llama_shapes() -> Vec<(String, Vec<u64>)> {
    let (q_dim, kv_dim) = (N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM);
    let mut shapes = vec![("token_embd.weight".to_owned(), vec![N_EMBD, N_VOCAB])];
    let layer = [
        ("attn_norm", vec![N_EMBD]),
        ("attn_q", vec![N_EMBD, q_dim]),
        ("attn_k", vec![N_EMBD, kv_dim]),
        ("attn_v", vec![N_EMBD, kv_dim]),
        ("attn_output", vec![q_dim, N_EMBD]),
        ("ffn_norm", vec![N_EMBD]),
        ("ffn_gate", vec![N_EMBD, N_FF]),
        ("ffn_up", vec![N_EMBD, N_FF]),
        ("ffn_down", vec![N_FF, N_EMBD]),
    ];
    shapes.extend(
        layer
            .into_iter()
            .map(|(name, shape)| (format!("blk.0.{name}.weight"), shape)),
    );
    shapes.push(("output_norm.weight".to_owned(), vec![N_EMBD]));
    shapes
}

/// A byte-level BPE vocabulary of `N_VOCAB` tokens: 26 letters, the space, two merges
/// and an end token.
fn vocabulary() -> Vec<(&'static str, OwnedValue)> {
    let mut tokens: Vec<String> = ('a'..='z').map(String::from).collect();
    tokens.extend(["Ġ", "ab", "abc", "<|end|>"].map(String::from));
    assert_eq!(tokens.len() as u64, N_VOCAB);
    vec![
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        (
            "tokenizer.ggml.merges",
            OwnedValue::string_array(["a b", "ab c"]),
        ),
        (
            "tokenizer.ggml.eos_token_id",
            OwnedValue::U32(N_VOCAB as u32 - 1),
        ),
    ]
}

fn hyperparameters(context_length: u32) -> Vec<(&'static str, OwnedValue)> {
    vec![
        ("general.architecture", OwnedValue::String("llama".into())),
        ("llama.embedding_length", OwnedValue::U32(N_EMBD as u32)),
        ("llama.block_count", OwnedValue::U32(1)),
        ("llama.attention.head_count", OwnedValue::U32(N_HEAD as u32)),
        (
            "llama.attention.head_count_kv",
            OwnedValue::U32(N_HEAD_KV as u32),
        ),
        ("llama.feed_forward_length", OwnedValue::U32(N_FF as u32)),
        ("llama.context_length", OwnedValue::U32(context_length)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            OwnedValue::F32(1e-5),
        ),
    ]
}

/// The GGUF bytes of a model with these metadata and `(name, shape)` F32 tensors, every
/// value 0.01 (finite, so only shapes can make it invalid).
fn gguf(metadata: &[(&'static str, OwnedValue)], tensors: &[(String, Vec<u64>)]) -> Vec<u8> {
    let mut writer = GgufWriter::new();
    for (key, value) in metadata {
        writer
            .add_metadata(*key, value.clone())
            .expect("well-formed metadata");
    }
    for (name, shape) in tensors {
        let n: u64 = shape.iter().product();
        let data: Vec<u8> = (0..n).flat_map(|_| 0.01f32.to_le_bytes()).collect();
        writer
            .add_tensor(name.clone(), GgmlType::F32, shape, data)
            .expect("well-formed tensor");
    }
    writer.to_bytes()
}

/// The tiny llama with tensor `name` given `shape` (added when the model has no such
/// tensor).
fn with_shape(name: &str, shape: &[u64]) -> Vec<u8> {
    let mut tensors = llama_shapes();
    match tensors.iter_mut().find(|(n, _)| n == name) {
        Some((_, s)) => *s = shape.to_vec(),
        None => tensors.push((name.to_owned(), shape.to_vec())),
    }
    gguf(&[hyperparameters(4096), vocabulary()].concat(), &tensors)
}

/// Loads `bytes` through the C ABI: the model, or the status and `rf_last_error`.
fn load(bytes: &[u8]) -> Result<*mut rf_model, (rf_status, String)> {
    let params = rf_model_default_params();
    let mut model = ptr::null_mut();
    // SAFETY: `bytes` outlives the model (each caller frees it before dropping them), and
    // the other pointers are to live locals.
    let status = unsafe {
        rf_model_load_from_memory(bytes.as_ptr().cast(), bytes.len(), &params, &mut model)
    };
    if status == rf_status::RF_OK {
        return Ok(model);
    }
    // SAFETY: rf_last_error never returns NULL and the text stays valid until the next
    // failing call on this thread.
    let message = unsafe { CStr::from_ptr(rf_last_error()) };
    Err((status, message.to_string_lossy().into_owned()))
}

/// The message of a load that must fail with `RF_ERR_INVALID_MODEL`.
fn invalid_model(bytes: &[u8]) -> String {
    match load(bytes) {
        Err((rf_status::RF_ERR_INVALID_MODEL, message)) => message,
        Err((status, message)) => {
            panic!("expected RF_ERR_INVALID_MODEL, got {status:?}: {message}")
        }
        Ok(model) => {
            // SAFETY: a model just loaded, freed once.
            unsafe { rf_model_free(model) };
            panic!("a model whose weights disagree with its hyperparameters loaded")
        }
    }
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "'{part}' is not in: {message}");
    }
}

/// `rf_model_info`'s `n_vocab`, and the length of the logits one decoded token gives.
fn vocabulary_and_logits_length(model: *mut rf_model) -> (u32, usize) {
    let mut info = rf_model_description {
        struct_size: size_of::<rf_model_description>() as u32,
        architecture: ptr::null(),
        name: ptr::null(),
        n_params: 0,
        size_bytes: 0,
        n_vocab: 0,
        n_ctx_train: 0,
        n_embd: 0,
        n_layer: 0,
        n_head: 0,
        n_head_kv: 0,
        device: 0,
        device_bytes: 0,
        n_shares: 0,
    };
    // SAFETY: a live model and a writable description of the size it declares.
    assert_eq!(unsafe { rf_model_info(model, &mut info) }, rf_status::RF_OK);
    let params = rf_context_default_params();
    let mut ctx = ptr::null_mut();
    // SAFETY: a live model, default parameters and an out-pointer to a local.
    assert_eq!(
        unsafe { rf_context_new(model, &params, &mut ctx) },
        rf_status::RF_OK
    );
    let token = 0i32;
    let batch = rf_batch {
        n_tokens: 1,
        tokens: &token,
        positions: ptr::null(),
        seq_ids: ptr::null(),
        want_logits: ptr::null(),
    };
    let (mut logits, mut n_logits) = (ptr::null(), 0usize);
    // SAFETY: a live context, a batch of one token, and out-pointers to locals; the
    // context is freed once.
    unsafe {
        assert_eq!(rf_decode(ctx, &batch), rf_status::RF_OK);
        assert_eq!(
            rf_get_logits(ctx, -1, &mut logits, &mut n_logits),
            rf_status::RF_OK
        );
        rf_context_free(ctx);
    }
    (info.n_vocab, n_logits)
}

#[test]
fn the_well_formed_tiny_llama_has_one_logit_per_vocabulary_token() {
    let bytes = gguf(
        &[hyperparameters(4096), vocabulary()].concat(),
        &llama_shapes(),
    );
    let model = load(&bytes).unwrap_or_else(|(status, message)| {
        panic!("the tiny llama did not load: {status:?}: {message}")
    });
    let (n_vocab, n_logits) = vocabulary_and_logits_length(model);
    // SAFETY: loaded above, freed once, before `bytes` goes.
    unsafe { rf_model_free(model) };
    assert_eq!((u64::from(n_vocab), n_logits as u64), (N_VOCAB, N_VOCAB));
}

#[test]
fn an_embedding_with_one_row_fewer_than_the_vocabulary_is_an_invalid_model() {
    let message = invalid_model(&with_shape("token_embd.weight", &[N_EMBD, N_VOCAB - 1]));
    assert_names(&message, &["token_embd.weight", "[8, 29]", "[8, 30]"]);
}

#[test]
fn an_embedding_with_one_row_more_than_the_vocabulary_is_an_invalid_model() {
    let message = invalid_model(&with_shape("token_embd.weight", &[N_EMBD, N_VOCAB + 1]));
    assert_names(&message, &["token_embd.weight", "[8, 31]", "[8, 30]"]);
}

#[test]
fn an_untied_output_with_one_row_more_than_the_vocabulary_is_an_invalid_model() {
    let message = invalid_model(&with_shape("output.weight", &[N_EMBD, N_VOCAB + 1]));
    assert_names(&message, &["output.weight", "[8, 31]", "[8, 30]"]);
}

#[test]
fn a_query_projection_of_the_wrong_width_is_an_invalid_model() {
    let message = invalid_model(&with_shape("blk.0.attn_q.weight", &[N_EMBD, HEAD_DIM]));
    assert_names(&message, &["blk.0.attn_q.weight", "[8, 4]", "[8, 8]"]);
}

#[test]
fn a_context_length_of_zero_is_an_invalid_model() {
    let bytes = gguf(
        &[hyperparameters(0), vocabulary()].concat(),
        &llama_shapes(),
    );
    let message = invalid_model(&bytes);
    assert_names(&message, &["llama.context_length is 0"]);
}
