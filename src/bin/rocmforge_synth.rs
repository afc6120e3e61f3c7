//! `rocmforge-synth`: writes a llama-architecture GGUF of any shape with random weights of
//! any GGML type (scaled so activations stay unit-sized through a deep stack; see
//! `gguf::synthetic`), for benchmarks (speed does not depend on weight values), GPU-vs-CPU
//! comparisons and fast memory-checking runs. The vocabulary and tokenizer metadata are copied from a real model, so text goes
//! in and out as with that model.
//!
//! ```text
//! rocmforge-synth --vocab-from MODEL.gguf -o OUT.gguf [--n-embd 576] [--n-layer 30]
//!                 [--n-head 9] [--n-head-kv 3] [--n-ff 1536] [--type Q4_1] [--seed 1]
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use rocmforge::gguf::synthetic::{LlamaWeightTypes, SyntheticLlama};
use rocmforge::gguf::{GgufWriter, OwnedGguf};
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
                     [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N] [--type GGML_TYPE] [--seed N]";

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
    let type_name = take("--type").unwrap_or_else(|| "Q4_1".into());
    let dtype = GgmlType::ALL
        .iter()
        .copied()
        .find(|t| t.name() == type_name)
        .ok_or(format!(
            "--type {type_name}: not a GGML type name (Q4_1, Q4_K, F16, ...)"
        ))?;
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
    for entry in source
        .metadata()
        .iter()
        .filter(|e| e.key.starts_with("tokenizer."))
    {
        w.add_metadata(entry.key, entry.value.to_owned_value())
            .map_err(|e| e.to_string())?;
    }
    let head_dim = s.n_embd / s.n_head.max(1);
    SyntheticLlama {
        n_vocab,
        n_embd: s.n_embd,
        n_layer: s.n_layer,
        n_head: s.n_head,
        n_head_kv: s.n_head_kv,
        head_dim,
        n_ff: s.n_ff,
        rope_dims: head_dim,
        rope_base: 10_000.0,
        rms_eps: 1e-5,
        context_length: 8192,
        types: LlamaWeightTypes::uniform(args.dtype, true),
        seed: args.seed,
    }
    .add_to(&mut w)
    .map_err(|e| e.to_string())?;
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
