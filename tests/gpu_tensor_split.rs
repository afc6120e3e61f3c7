//! A model split by tensors over several GPUs computes what it computes on one, up to the
//! order of its sums: each GPU holds whole K/V heads with their query heads and a slice of
//! the FFN, and the GPUs add up their parts of the attention output and down products
//! through each other's memory (`kernels/peer_sum.hip`). The GPUs here are shares of one
//! GPU named twice, which exercises all of a tensor split but the link between two
//! physical GPUs: each share's device handle, weights, K/V cache, stream and decode graph,
//! and the sums between them, whose kernels run at once and wait for each other.

mod common;
mod gpu_common;

use std::sync::Arc;

use common::tiny_model::engine::{Engine, LibraryEngine};
use common::tiny_model::vocabulary;
use rocmforge::backend::DeviceKind;
use rocmforge::backend::gpu::ops::{GpuOps, PeerExchange};
use rocmforge::backend::gpu::{Device, DeviceBuffer, Stream};
use rocmforge::context::ContextParams;
use rocmforge::gguf::synthetic::{LlamaFileType, SyntheticFamily, SyntheticLlama};
use rocmforge::gguf::{GgufWriter, OwnedGguf};
use rocmforge::memory_estimate::estimate_shares;
use rocmforge::model::{Model, Placement, SplitMode};
use rocmforge::tensor::GgmlType;

/// The device list index of the first usable GPU.
fn gpu_index() -> usize {
    gpu_common::gpu();
    rocmforge::backend::enumerate()
        .iter()
        .position(|d| d.kind != DeviceKind::Cpu && d.usable)
        .expect("gpu() found a usable GPU")
}

/// A model of `shape` (`[n_embd, n_layer, n_head, n_head_kv, n_ff]`) with `file_type`'s
/// weights, of `family`, as GGUF bytes.
fn gguf(shape: [u64; 5], file_type: LlamaFileType, family: SyntheticFamily) -> Vec<u8> {
    let mut spec = SyntheticLlama::of_shape(vocabulary::N_TOKENS, shape, 5);
    spec.types = file_type.weight_types(spec.row_lengths(), false);
    spec.family = family;
    let mut writer = GgufWriter::new();
    for (key, value) in vocabulary::metadata() {
        writer.add_metadata(key, value).expect("tokenizer metadata");
    }
    spec.add_to(&mut writer).expect("a well-formed llama");
    writer.to_bytes()
}

fn model_on(gguf: Vec<u8>, devices: &[usize], mode: SplitMode) -> Result<Arc<Model>, String> {
    let placement = Placement::split_by(mode, &rocmforge::backend::enumerate(), devices, None)
        .map_err(|e| e.to_string())?;
    let file = OwnedGguf::from_buffer(gguf).expect("the model parses");
    Model::from_gguf_on(file, placement)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The logits of 88 teacher-forced positions: a 48-token prefill (the vendor BLAS path),
/// an 8-token one (the integer kernels), then 32 single-token steps (a captured decode
/// graph, replayed).
fn teacher_forced(model: Arc<Model>) -> Vec<Vec<f64>> {
    let mut engine = LibraryEngine::new(model);
    let mut random = gpu_common::Random::new(23);
    let mut token = || (random.next_u64() % vocabulary::N_TOKENS) as i32;
    let mut batch = |n: usize| -> Vec<(i32, i32)> { (0..n).map(|_| (0, token())).collect() };
    let mut logits = engine.decode(&batch(48));
    logits.extend(engine.decode(&batch(8)));
    for _ in 0..32 {
        logits.extend(engine.decode(&batch(1)));
    }
    logits
}

fn relative_l2(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm).sqrt()
}

/// The largest relative L2 distance of the logits of `positions` from the single GPU's.
fn farthest(split: &[Vec<f64>], single: &[Vec<f64>], positions: std::ops::Range<usize>) -> f64 {
    assert_eq!(split.len(), single.len());
    positions
        .map(|p| relative_l2(&split[p], &single[p]))
        .fold(0.0, f64::max)
}

/// The prefill positions of `teacher_forced`, then its single-token steps.
const PREFILL: std::ops::Range<usize> = 0..56;
const DECODE: std::ops::Range<usize> = 56..88;

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn every_family_split_by_tensors_gives_the_single_gpu_logits() {
    let gpu = gpu_index();
    let gemma = SyntheticFamily::Gemma3 { sliding_window: 16 };
    let llama = SyntheticFamily::Llama;
    let models = [
        (
            "llama F16",
            [256, 2, 4, 2, 512],
            LlamaFileType::MostlyF16,
            llama,
        ),
        (
            "llama Q4_0",
            [256, 3, 8, 4, 768],
            LlamaFileType::MostlyQ4_0,
            llama,
        ),
        // K-quant blocks of 256: each device's columns of the output and down matrices are
        // whole super-blocks (4 query heads of 64 a K/V head, an FFN of 11 x 256).
        (
            "llama Q4_K_M",
            [1024, 2, 16, 4, 2816],
            LlamaFileType::MostlyQ4KM,
            llama,
        ),
        (
            "llama Q8_0, 3 K/V heads",
            [576, 2, 9, 3, 1536],
            LlamaFileType::MostlyQ8_0,
            llama,
        ),
        (
            "qwen2 Q8_0",
            [256, 2, 8, 4, 512],
            LlamaFileType::MostlyQ8_0,
            SyntheticFamily::Qwen2,
        ),
        (
            "qwen3 F16",
            [256, 2, 8, 2, 512],
            LlamaFileType::MostlyF16,
            SyntheticFamily::Qwen3,
        ),
        (
            "gemma3 F16",
            [256, 2, 4, 2, 512],
            LlamaFileType::MostlyF16,
            gemma,
        ),
        (
            "gemma3 Q8_0",
            [256, 2, 4, 2, 512],
            LlamaFileType::MostlyQ8_0,
            gemma,
        ),
    ];
    let mut failures = Vec::new();
    for (name, shape, file_type, family) in models {
        let single = model_on(gguf(shape, file_type, family), &[gpu], SplitMode::Layers);
        let single = teacher_forced(single.expect("the model loads on one GPU"));
        let split = model_on(
            gguf(shape, file_type, family),
            &[gpu, gpu],
            SplitMode::Tensors,
        );
        let split = teacher_forced(split.expect("the model loads split by tensors"));
        let (prefill, decode) = (
            farthest(&split, &single, PREFILL),
            farthest(&split, &single, DECODE),
        );
        println!(
            "{name}: the split's logits within {prefill:.2e} (prefill), {decode:.2e} (decode) of one GPU's"
        );
        // The devices add up each product's parts where one GPU adds its whole row: the
        // same values to f32 rounding in decode, and to f16 rounding in prefill (the
        // vendor BLAS rounds each part of a product to f16, one GPU the whole). Float
        // weights keep that (measured on an H200: 3.9e-4 prefill, 2.9e-5 decode). The
        // others quantize each product's input to 8 bits, where one value that lands the
        // other side of a rounding step moves these random models' logits by up to a few
        // 1e-2 (see common/tiny_model/tolerance.rs), as between the GPU and the CPU
        // (measured: 1.2e-2). A share's part left out of a sum moves them by 0.1 to 1.
        let (prefill_bound, decode_bound) = match file_type {
            LlamaFileType::MostlyF16 => (1e-3, 1e-4),
            _ => (5e-2, 5e-2),
        };
        if prefill > prefill_bound || decode > decode_bound {
            failures.push(format!("{name}: {prefill:.2e} / {decode:.2e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The devices of `split`'s shares, in order.
fn share_devices(split: &Model) -> Vec<Device> {
    (split.shares().iter())
        .map(|s| s.device.expect("a GPU share").clone())
        .collect()
}

/// The estimate of `split` from its file alone gives each share the weights it holds.
fn assert_estimate_is_what_each_share_holds(split: &Model) {
    let estimate = estimate_shares(split.gguf(), split.placement(), &ContextParams::default())
        .expect("an estimate");
    for (share, estimated) in split.shares().iter().zip(&estimate) {
        assert_eq!(share.weights_bytes, estimated.memory.weights_bytes);
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn each_share_holds_its_part_of_the_layers_and_all_is_freed() {
    let gpu = gpu_index();
    // Layers far larger than the embedding, so the shares' layers dominate what they hold.
    let shape = [1024, 4, 16, 8, 4096];
    let model = || gguf(shape, LlamaFileType::MostlyQ8_0, SyntheticFamily::Llama);
    let single = model_on(model(), &[gpu], SplitMode::Layers).expect("the model loads");
    let whole = single.device().expect("on a GPU").memory_stats().live_bytes;
    drop(single);
    let split = model_on(model(), &[gpu, gpu], SplitMode::Tensors).expect("the model loads");
    let devices = share_devices(&split);
    assert_eq!(devices.len(), 2);
    for (share, device) in devices.iter().enumerate() {
        let held = device.memory_stats().live_bytes;
        let fraction = held as f64 / whole as f64;
        println!("tensor share {share}: {held} of the model's {whole} bytes ({fraction:.2})");
        assert!(
            (0.4..=0.65).contains(&fraction),
            "share {share}: {fraction:.2}"
        );
    }
    assert_estimate_is_what_each_share_holds(&split);
    let mut engine = LibraryEngine::new(Arc::clone(&split));
    let logits = engine.decode(&[(0, 1), (0, 2), (0, 3)]);
    assert!(logits.iter().flatten().all(|v| v.is_finite()));
    drop(engine);
    drop(split);
    devices.iter().for_each(gpu_common::assert_all_freed);
}

/// A Q4_K_M model whose Q6_K rows are padded to 16 bytes on the device (split rows of
/// 210-byte blocks): each share's 768 columns of the Q6_K down matrices (630 bytes of blocks
/// a row), the V rows and the output head (1,024 values, 840 bytes). The estimate from the
/// file alone is what each share holds, to the byte.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn the_estimate_counts_the_padding_of_each_shares_rows() {
    let gpu = gpu_index();
    let model = gguf(
        [1024, 4, 16, 8, 1536],
        LlamaFileType::MostlyQ4KM,
        SyntheticFamily::Llama,
    );
    let split = model_on(model, &[gpu, gpu], SplitMode::Tensors).expect("the model loads");
    let padded_downs = (split.gguf().tensors().iter())
        .filter(|t| t.name().ends_with("ffn_down.weight") && t.dtype() == GgmlType::Q6K)
        .count();
    assert!(padded_downs > 0, "the model has Q6_K down matrices");
    assert_estimate_is_what_each_share_holds(&split);
    let devices = share_devices(&split);
    drop(split);
    devices.iter().for_each(gpu_common::assert_all_freed);
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_shape_that_does_not_divide_is_refused_with_the_reason() {
    let gpu = gpu_index();
    // The activations' groups of 32 do not divide an FFN of 520.
    let odd_ffn = gguf(
        [256, 2, 4, 2, 520],
        LlamaFileType::MostlyF16,
        SyntheticFamily::Llama,
    );
    let err = model_on(odd_ffn, &[gpu, gpu], SplitMode::Tensors)
        .err()
        .expect("refused");
    assert!(err.contains("not whole slices of 32"), "{err}");
    let one_kv_head = gguf(
        [256, 2, 4, 1, 512],
        LlamaFileType::MostlyQ8_0,
        SyntheticFamily::Llama,
    );
    let err = model_on(one_kv_head, &[gpu, gpu], SplitMode::Tensors)
        .err()
        .expect("refused");
    assert!(err.contains("at least 1 K/V heads"), "{err}");
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_share_that_fails_to_load_frees_what_the_others_were_given() {
    let gpu = gpu_index();
    let probe = gpu_common::gpu();
    let model = || {
        gguf(
            [1024, 4, 16, 8, 4096],
            LlamaFileType::MostlyQ8_0,
            SyntheticFamily::Llama,
        )
    };
    let weights = {
        let single = model_on(model(), &[gpu], SplitMode::Layers).expect("the model loads");
        single.device().expect("on a GPU").memory_stats().live_bytes
    };
    // The first share (a quarter of the heads and FFN) fits under the limit; the second
    // (the rest) does not, so the load fails after the first share was uploaded.
    let devices = rocmforge::backend::enumerate();
    let placement =
        Placement::split_by(SplitMode::Tensors, &devices, &[gpu, gpu], Some(&[1.0, 4.0]))
            .expect("two shares of one GPU")
            .with_memory_limit(Some(weights / 2));
    gpu_common::assert_failed_load_frees_the_gpu(&probe, || {
        Model::from_gguf_on(
            OwnedGguf::from_buffer(model()).expect("the model parses"),
            placement,
        )
    });
}

/// Two ranks of a sum on handles of one GPU, with values on each.
struct TwoRanks {
    ops: [GpuOps; 2],
    streams: [Stream; 2],
    exchanges: Vec<PeerExchange>,
}

impl TwoRanks {
    fn new(capacity: usize) -> TwoRanks {
        let devices = [gpu_common::gpu(), gpu_common::gpu()];
        let ops = devices
            .each_ref()
            .map(|d| GpuOps::load(d).expect("the kernels load"));
        let streams = devices
            .each_ref()
            .map(|d| Stream::new(d).expect("a stream"));
        let exchanges = PeerExchange::group(&[&streams[0], &streams[1]], capacity)
            .expect("the exchanges of two ranks");
        TwoRanks {
            ops,
            streams,
            exchanges,
        }
    }

    /// Queues `out[r] += partial[0] + partial[1]` on rank `r` for each of `ranks`.
    fn sum(
        &mut self,
        ranks: &[usize],
        out: &mut [DeviceBuffer<f32>],
        partial: &[DeviceBuffer<f32>],
    ) {
        for &r in ranks {
            let n = partial[r].len();
            (self.ops[r])
                .peer_sum_into(
                    &self.streams[r],
                    &mut self.exchanges[r],
                    &mut out[r],
                    &partial[r],
                    n,
                )
                .expect("the sum queues");
        }
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_peer_sum_adds_every_ranks_part_and_an_abort_frees_a_rank_left_waiting() {
    // More values than the kernel's threads, so each thread takes several: four at a
    // time, and (a count not a multiple of four) one at a time.
    for n in [40_000, 40_001] {
        peer_sums_of(n);
    }
}

fn peer_sums_of(n: usize) {
    let mut ranks = TwoRanks::new(n);
    let mut random = gpu_common::Random::new(3);
    let mut values = || (0..n).map(|_| random.next_f32()).collect::<Vec<f32>>();
    let (x, p0, p1) = (values(), values(), values());
    let upload = |stream: &Stream, v: &[f32]| stream.device().upload(stream, v).expect("an upload");
    let partial = [
        upload(&ranks.streams[0], &p0),
        upload(&ranks.streams[1], &p1),
    ];
    let fresh = |ranks: &TwoRanks| ranks.streams.each_ref().map(|stream| upload(stream, &x));
    let mut out = fresh(&ranks);
    let expected: Vec<f32> = (0..n).map(|i| x[i] + (p0[i] + p1[i])).collect();
    let check = |ranks: &TwoRanks, out: &[DeviceBuffer<f32>], what: String| {
        for (r, (out, stream)) in out.iter().zip(&ranks.streams).enumerate() {
            let got = out.to_host_vec(stream).expect("a copy back");
            let wrong = (0..n).filter(|&i| got[i].to_bits() != expected[i].to_bits());
            assert_eq!(wrong.count(), 0, "{what}: rank {r}");
        }
    };

    // Three sums in a row: both exchange slots, then the first again.
    for round in 0..3 {
        out = fresh(&ranks);
        ranks.sum(&[1, 0], &mut out, &partial);
        check(&ranks, &out, format!("sum {round}"));
    }

    // Rank 0 alone: its kernel waits for rank 1, which never comes, until aborted.
    ranks.sum(&[0], &mut out, &partial);
    ranks.exchanges[0].abort();
    ranks.streams[0]
        .synchronize()
        .expect("rank 0 stops waiting");
    let TwoRanks {
        ops,
        streams,
        exchanges,
    } = &mut ranks;
    for ((ops, stream), exchange) in ops.iter().zip(&*streams).zip(exchanges) {
        ops.peer_sum_clear(stream, exchange).expect("clear");
        stream.synchronize().expect("cleared");
    }
    // Cleared, both ranks count their sums together again.
    out = fresh(&ranks);
    ranks.sum(&[0, 1], &mut out, &partial);
    check(&ranks, &out, "after an abort".into());
}
