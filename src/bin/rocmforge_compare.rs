//! Teacher-forced logits of one model file on the CPU and on another device, side by
//! side: the relative L2 error of the device's logits at every position, and its worst.
//!
//! usage: rocmforge-compare -m MODEL.gguf [-d DEVICE_INDEX] [-n 256] [-b 64]
//!
//! The tokens are a fixed pseudo-random sequence over the vocabulary; they are decoded in
//! batches of `-b` (prefill-shaped steps) and the last `-b` one at a time (decode steps).

#[path = "common/cli.rs"]
mod cli;

use std::process::ExitCode;
use std::sync::Arc;

use rocmforge::backend::{DeviceChoice, enumerate};
use rocmforge::context::{Batch, Context, ContextParams, WantLogits};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::{Model, Placement};

struct Args {
    model: String,
    device: usize,
    n_positions: usize,
    n_batch: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: String::new(),
        device: 1,
        n_positions: 256,
        n_batch: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "-m" => args.model = value.clone(),
            "-d" => args.device = number()?,
            "-n" => args.n_positions = number()?.max(1),
            "-b" => args.n_batch = number()?.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.model.is_empty() {
        return Err("-m MODEL is required".into());
    }
    Ok(args)
}

/// Every position's logits, teacher-forced on `device`.
fn logits(args: &Args, device: usize, tokens: &[i32]) -> rocmforge::Result<Vec<Vec<f32>>> {
    let placement = Placement::choose(&enumerate(), DeviceChoice::Index(device))?;
    let model = Arc::new(Model::from_gguf_on(
        OwnedGguf::open(args.model.as_ref())?,
        placement,
    )?);
    let params = ContextParams {
        n_ctx: tokens.len(),
        n_batch: args.n_batch,
        ..ContextParams::default()
    };
    let mut ctx = Context::new(model, &params)?;
    let mut rows = Vec::new();
    let prefill_end = tokens.len().saturating_sub(args.n_batch);
    let mut start = 0;
    while start < tokens.len() {
        let end = if start < prefill_end {
            (start + args.n_batch).min(prefill_end)
        } else {
            start + 1
        };
        ctx.decode(&Batch {
            tokens: &tokens[start..end],
            want_logits: WantLogits::All,
            ..Batch::default()
        })?;
        for i in 0..end - start {
            rows.push(ctx.logits(i as i32)?.to_vec());
        }
        start = end;
    }
    Ok(rows)
}

fn run(args: &Args) -> rocmforge::Result<()> {
    let n_vocab = OwnedGguf::open(args.model.as_ref())
        .and_then(|g| rocmforge::model::ModelConfig::from_gguf(g.file()))?
        .n_vocab as u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let tokens: Vec<i32> = (0..args.n_positions)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % n_vocab) as i32
        })
        .collect();
    let cpu = logits(args, 0, &tokens)?;
    let other = logits(args, args.device, &tokens)?;
    let mut worst = (0.0f64, 0usize);
    for (pos, (a, b)) in cpu.iter().zip(&other).enumerate() {
        let diff: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        let relative = (diff / norm).sqrt();
        if relative > worst.0 || relative.is_nan() {
            worst = (relative, pos);
        }
    }
    println!(
        "{}: {} positions, device {} vs CPU: worst relative L2 error of the logits {:.3e} at position {}",
        args.model, args.n_positions, args.device, worst.0, worst.1
    );
    Ok(())
}

fn main() -> ExitCode {
    cli::main_with(
        "rocmforge-compare",
        "usage: rocmforge-compare -m MODEL.gguf [-d DEVICE] [-n 256] [-b 64]",
        parse_args,
        run,
    )
}
