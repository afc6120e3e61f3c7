//! `rocmforge-synth`: writes a llama-architecture GGUF of any shape with random weights
//! (scaled so activations stay unit-sized through a deep stack; see `gguf::synthetic`),
//! for benchmarks (speed does not depend on weight values), GPU-vs-CPU comparisons and fast
//! memory-checking runs. The vocabulary and tokenizer metadata are copied from a real
//! model, so text goes in and out as with that model.
//!
//! ```text
//! rocmforge-synth --vocab-from MODEL.gguf -o OUT.gguf [--n-embd 576] [--n-layer 30]
//!                 [--n-head 9] [--n-head-kv 3] [--n-ff 1536] [--type Q4_K_M] [--pure]
//!                 [--tied] [--seed 1] [--arch llama|qwen2|qwen3|gemma3|phi3|mistral]
//!                 [--sliding-window 512] [--rope-base 10000]
//! ```
//!
//! `--type` takes a llama.cpp file type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
//! Q4_K_M): the file then holds the types `llama-quantize` would give each tensor (Q6_K
//! output head, Q4_K_M's wider V and down layers, its fallbacks where 256-value blocks do
//! not fit) and says its `general.file_type`, so llama.cpp and this library can be timed
//! on the same file. `--pure` gives every matrix the file type's own type, as
//! `llama-quantize --pure` does. Any other GGML type name (Q4_K, Q6_K, IQ4_NL, ...) gives
//! every matrix that type. `--tied` leaves out `output.weight` (the embedding is reused).
//! `--arch` writes another family's file: `qwen2` adds Q/K/V biases, `qwen3` per-head Q/K
//! norms, `gemma3` those and the post-sublayer norms, a sliding window (`--sliding-window`,
//! 512 by default) and a tied output head; `phi3` stores Q/K/V as one matrix and gate/up as
//! one; `mistral` is a `llama` file that declares a sliding window (`--sliding-window`, 4096
//! by default, Mistral 7B v0.1's), which llama.cpp ignores there. `--rope-base` sets
//! `rope.freq_base` (Mistral 7B v0.2 and later: 1000000).
//! The file appears under its name only once it is complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use rocmforge::gguf::synthetic::{
    LlamaFileType, LlamaWeightTypes, SyntheticFamily, SyntheticLlama,
};
use rocmforge::gguf::{GgufWriter, OwnedGguf, OwnedValue};
use rocmforge::tensor::GgmlType;

/// ggml's `GGML_QNT_VERSION`, which `llama-quantize` writes beside the file type.
const GGML_QUANTIZATION_VERSION: u32 = 2;

struct Shape {
    n_embd: u64,
    n_layer: u64,
    n_head: u64,
    n_head_kv: u64,
    n_ff: u64,
}

/// What `--type` named.
#[derive(Clone, Copy)]
enum Weights {
    /// llama.cpp's mix for this file type, or with `pure` its own type everywhere.
    FileType {
        file_type: LlamaFileType,
        pure: bool,
    },
    /// Every matrix of this type; no file type is claimed.
    Uniform(GgmlType),
}

struct Args {
    vocab_from: PathBuf,
    out: PathBuf,
    shape: Shape,
    weights: Weights,
    tied: bool,
    seed: u64,
    family: SyntheticFamily,
    rope_base: f32,
}

const USAGE: &str = "usage: rocmforge-synth --vocab-from MODEL.gguf -o OUT.gguf [--n-embd N] \
                     [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N] \
                     [--type FILE_TYPE|GGML_TYPE] [--pure] [--tied] [--seed N] \
                     [--arch llama|qwen2|qwen3|gemma3|phi3|mistral] [--sliding-window N] \
                     [--rope-base F]";

const SWITCHES: [&str; 2] = ["--pure", "--tied"];

fn parse_args() -> Result<Args, String> {
    let mut values: HashMap<String, String> = HashMap::new();
    let mut switches: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if SWITCHES.contains(&flag.as_str()) {
            switches.push(flag);
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        values.insert(flag, value);
    }
    let switch = |name: &str| switches.iter().any(|s| s == name);
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
    let type_name = take("--type").unwrap_or_else(|| "Q4_1".into());
    let weights = weights_named(&type_name, switch("--pure"))?;
    let window = |value: Option<String>, default: u64| -> Result<u32, String> {
        u32::try_from(number("--sliding-window", value, default)?)
            .map_err(|_| "--sliding-window does not fit 32 bits".to_string())
    };
    let args = Args {
        vocab_from: take("--vocab-from")
            .ok_or("--vocab-from is required")?
            .into(),
        out: take("-o").ok_or("-o is required")?.into(),
        seed: number("--seed", take("--seed"), 1)?,
        shape,
        weights,
        tied: switch("--tied"),
        family: match take("--arch").as_deref() {
            None | Some("llama") => SyntheticFamily::Llama,
            Some("qwen2") => SyntheticFamily::Qwen2,
            Some("qwen3") => SyntheticFamily::Qwen3,
            Some("phi3") => SyntheticFamily::Phi3,
            Some("gemma3") => SyntheticFamily::Gemma3 {
                sliding_window: window(take("--sliding-window"), 512)?,
            },
            Some("mistral") => SyntheticFamily::Mistral {
                sliding_window: window(take("--sliding-window"), 4096)?,
            },
            Some(other) => {
                return Err(format!(
                    "--arch {other}: expected llama, qwen2, qwen3, gemma3, phi3 or mistral"
                ));
            }
        },
        rope_base: match take("--rope-base") {
            None => 10_000.0,
            Some(v) => v.parse().map_err(|e| format!("--rope-base {v}: {e}"))?,
        },
    };
    if let Some(flag) = values.keys().next() {
        return Err(format!("unknown option {flag}"));
    }
    Ok(args)
}

fn weights_named(name: &str, pure: bool) -> Result<Weights, String> {
    if let Some(file_type) = LlamaFileType::from_name(name) {
        return Ok(Weights::FileType { file_type, pure });
    }
    if pure {
        return Err(format!("--pure needs a llama.cpp file type, not {name}"));
    }
    GgmlType::ALL
        .iter()
        .copied()
        .find(|t| t.name() == name)
        .map(Weights::Uniform)
        .ok_or(format!(
            "--type {name}: neither a llama.cpp file type (Q4_K_M, Q8_0, F16, ...) nor a \
             GGML type name (Q4_K, Q6_K, ...)"
        ))
}

fn write(args: &Args) -> Result<u64, String> {
    let source = OwnedGguf::open(&args.vocab_from).map_err(|e| e.to_string())?;
    let source = source.file();
    let s = &args.shape;
    let n_vocab = source
        .get::<&rocmforge::gguf::ArrayView>("tokenizer.ggml.tokens")
        .map_err(|e| e.to_string())?
        .ok_or("the source model has no tokenizer.ggml.tokens")?
        .len() as u64;
    let mut w = GgufWriter::new();
    for entry in source
        .metadata()
        .iter()
        .filter(|e| e.key.starts_with("tokenizer."))
    {
        w.add_metadata(entry.key, entry.value.to_owned_value())
            .map_err(|e| e.to_string())?;
    }
    let shape = [s.n_embd, s.n_layer, s.n_head, s.n_head_kv, s.n_ff];
    let mut model = SyntheticLlama::of_shape(n_vocab, shape, args.seed);
    model.family = args.family;
    model.rope_base = args.rope_base;
    let tied = args.tied || args.family.ties_output();
    model.types = match args.weights {
        Weights::FileType { file_type, pure } => {
            for (key, value) in [
                ("general.file_type", file_type.id()),
                ("general.quantization_version", GGML_QUANTIZATION_VERSION),
            ] {
                w.add_metadata(key, OwnedValue::U32(value))
                    .map_err(|e| e.to_string())?;
            }
            if pure {
                LlamaWeightTypes::uniform(file_type.default_type(), tied)
            } else {
                file_type.weight_types(model.row_lengths(), tied)
            }
        }
        Weights::Uniform(dtype) => LlamaWeightTypes::uniform(dtype, tied),
    };
    let weight_bytes = model
        .layout()
        .iter()
        .map(|t| t.n_bytes())
        .sum::<rocmforge::Result<u64>>()
        .map_err(|e| e.to_string())?;
    model.add_to(&mut w).map_err(|e| e.to_string())?;
    write_complete(&args.out, &w).map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(weight_bytes)
}

/// Writes `w` beside `out` and renames it into place, so an interrupted run leaves no
/// partial file under the name that tells a benchmark script the model is there.
fn write_complete(out: &Path, w: &GgufWriter) -> std::io::Result<()> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial)?;
    w.write_to(&mut file)?;
    std::fs::rename(&partial, out)
}

fn main() -> ExitCode {
    let start = Instant::now();
    let parsed = parse_args();
    match parsed.and_then(|args| write(&args).map(|bytes| (args, bytes))) {
        Ok((args, bytes)) => {
            println!(
                "{}: {bytes} bytes of weights, written in {:.1} s",
                args.out.display(),
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rocmforge-synth: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
