//! `rocmforge-synth`: writes a llama-architecture GGUF of any shape with random weights,
//! for benchmarks (speed does not depend on weight values) and for fast memory-checking
//! runs. The vocabulary and tokenizer metadata are copied from a real model, so text goes
//! in and out as with that model.
//!
//! ```text
//! rocmforge-synth --vocab-from MODEL.gguf -o OUT.gguf [--n-embd 576] [--n-layer 30]
//!                 [--n-head 9] [--n-head-kv 3] [--n-ff 1536] [--type Q4_1] [--seed 1]
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use half::f16;
use rocmforge::gguf::{GgufWriter, OwnedGguf, OwnedValue};
use rocmforge::tensor::GgmlType;

struct Shape {
    n_embd: u64,
    n_layer: u64,
    n_head: u64,
    n_head_kv: u64,
    n_ff: u64,
}

struct Args {
    vocab_from: PathBuf,
    out: PathBuf,
    shape: Shape,
    dtype: GgmlType,
    seed: u64,
}

const USAGE: &str = "usage: rocmforge-synth --vocab-from MODEL.gguf -o OUT.gguf [--n-embd N] \
                     [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N] [--type F32|F16|Q8_0|Q4_0|Q4_1] [--seed N]";

fn parse_args() -> Result<Args, String> {
    let mut values: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        values.insert(flag, value);
    }
    let mut take = |flag: &str| values.remove(flag);
    let number = |flag: &str, value: Option<String>, default: u64| -> Result<u64, String> {
        value.map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("{flag} {v}: {e}"))
        })
    };
    let shape = Shape {
        n_embd: number("--n-embd", take("--n-embd"), 576)?,
        n_layer: number("--n-layer", take("--n-layer"), 30)?,
        n_head: number("--n-head", take("--n-head"), 9)?,
        n_head_kv: number("--n-head-kv", take("--n-head-kv"), 3)?,
        n_ff: number("--n-ff", take("--n-ff"), 1536)?,
    };
    let dtype = match take("--type").as_deref().unwrap_or("Q4_1") {
        "F32" => GgmlType::F32,
        "F16" => GgmlType::F16,
        "Q8_0" => GgmlType::Q8_0,
        "Q4_0" => GgmlType::Q4_0,
        "Q4_1" => GgmlType::Q4_1,
        other => return Err(format!("--type {other}: use F32, F16, Q8_0, Q4_0 or Q4_1")),
    };
    let args = Args {
        vocab_from: take("--vocab-from")
            .ok_or("--vocab-from is required")?
            .into(),
        out: take("-o").ok_or("-o is required")?.into(),
        seed: number("--seed", take("--seed"), 1)?,
        shape,
        dtype,
    };
    if let Some(flag) = values.keys().next() {
        return Err(format!("unknown option {flag}"));
    }
    Ok(args)
}

/// SplitMix64: small, seeded, good enough for weights nobody reads.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `n` random values of `dtype` whose scales keep activations of a deep stack finite:
/// each block's quants are random bytes, its f16 scale small.
fn random_tensor(dtype: GgmlType, n: u64, rng: &mut Rng) -> Vec<u8> {
    let scale = 0.02f32;
    let mut bytes = Vec::new();
    match dtype {
        GgmlType::F32 => (0..n).for_each(|_| bytes.extend((rng.unit() * scale).to_le_bytes())),
        GgmlType::F16 => {
            (0..n).for_each(|_| bytes.extend(f16::from_f32(rng.unit() * scale).to_le_bytes()))
        }
        _ => {
            let block_bytes = dtype.block_bytes() as usize;
            let d = f16::from_f32(scale / 8.0).to_le_bytes();
            let m = f16::from_f32(-scale).to_le_bytes();
            for _ in 0..n / dtype.block_size() {
                let mut block: Vec<u8> = (0..block_bytes).map(|_| rng.next() as u8).collect();
                block[..2].copy_from_slice(&d);
                if dtype == GgmlType::Q4_1 {
                    block[2..4].copy_from_slice(&m);
                }
                bytes.extend(block);
            }
        }
    }
    bytes
}

fn write(args: &Args) -> Result<(), String> {
    let source = OwnedGguf::open(&args.vocab_from).map_err(|e| e.to_string())?;
    let source = source.file();
    let s = &args.shape;
    let n_vocab = source
        .get::<&rocmforge::gguf::ArrayView>("tokenizer.ggml.tokens")
        .map_err(|e| e.to_string())?
        .ok_or("the source model has no tokenizer.ggml.tokens")?
        .len() as u64;
    let mut w = GgufWriter::new();
    let meta = |w: &mut GgufWriter, key: &str, value: OwnedValue| {
        w.add_metadata(key, value).map_err(|e| e.to_string())
    };
    meta(
        &mut w,
        "general.architecture",
        OwnedValue::String("llama".into()),
    )?;
    meta(
        &mut w,
        "general.name",
        OwnedValue::String("rocmforge synthetic".into()),
    )?;
    for (key, value) in [
        ("llama.embedding_length", s.n_embd),
        ("llama.block_count", s.n_layer),
        ("llama.attention.head_count", s.n_head),
        ("llama.attention.head_count_kv", s.n_head_kv),
        ("llama.feed_forward_length", s.n_ff),
        ("llama.context_length", 8192),
        ("llama.rope.dimension_count", s.n_embd / s.n_head),
    ] {
        meta(&mut w, key, OwnedValue::U32(value as u32))?;
    }
    meta(&mut w, "llama.rope.freq_base", OwnedValue::F32(10_000.0))?;
    meta(
        &mut w,
        "llama.attention.layer_norm_rms_epsilon",
        OwnedValue::F32(1e-5),
    )?;
    for entry in source
        .metadata()
        .iter()
        .filter(|e| e.key.starts_with("tokenizer."))
    {
        meta(&mut w, entry.key, entry.value.to_owned_value())?;
    }

    let mut rng = Rng(args.seed);
    let head_dim = s.n_embd / s.n_head;
    let mut tensor = |w: &mut GgufWriter, name: String, dtype: GgmlType, shape: &[u64]| {
        let data = random_tensor(dtype, shape.iter().product(), &mut rng);
        w.add_tensor(name, dtype, shape, data)
            .map_err(|e| e.to_string())
    };
    let norm = |w: &mut GgufWriter, name: String| {
        let ones: Vec<u8> = (0..s.n_embd).flat_map(|_| 1.0f32.to_le_bytes()).collect();
        w.add_tensor(name, GgmlType::F32, &[s.n_embd], ones)
            .map_err(|e| e.to_string())
    };
    tensor(
        &mut w,
        "token_embd.weight".into(),
        args.dtype,
        &[s.n_embd, n_vocab],
    )?;
    for i in 0..s.n_layer {
        let kv = s.n_head_kv * head_dim;
        norm(&mut w, format!("blk.{i}.attn_norm.weight"))?;
        tensor(
            &mut w,
            format!("blk.{i}.attn_q.weight"),
            args.dtype,
            &[s.n_embd, s.n_embd],
        )?;
        tensor(
            &mut w,
            format!("blk.{i}.attn_k.weight"),
            args.dtype,
            &[s.n_embd, kv],
        )?;
        tensor(
            &mut w,
            format!("blk.{i}.attn_v.weight"),
            args.dtype,
            &[s.n_embd, kv],
        )?;
        tensor(
            &mut w,
            format!("blk.{i}.attn_output.weight"),
            args.dtype,
            &[s.n_embd, s.n_embd],
        )?;
        norm(&mut w, format!("blk.{i}.ffn_norm.weight"))?;
        tensor(
            &mut w,
            format!("blk.{i}.ffn_gate.weight"),
            args.dtype,
            &[s.n_embd, s.n_ff],
        )?;
        tensor(
            &mut w,
            format!("blk.{i}.ffn_up.weight"),
            args.dtype,
            &[s.n_embd, s.n_ff],
        )?;
        tensor(
            &mut w,
            format!("blk.{i}.ffn_down.weight"),
            args.dtype,
            &[s.n_ff, s.n_embd],
        )?;
    }
    norm(&mut w, "output_norm.weight".into())?;
    let file =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    w.write_to(&mut std::io::BufWriter::new(file))
        .map_err(|e| format!("{}: {e}", args.out.display()))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| write(&args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rocmforge-synth: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
