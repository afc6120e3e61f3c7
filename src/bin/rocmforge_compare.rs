//! Teacher-forced logits of one model file on two placements side by side (the CPU and a
//! device, by default): the relative L2 error of the tested placement's logits at every
//! position, and its worst; with `-g N`, also whether both generate the same `N` tokens
//! greedily from the same prompt.
//!
//! usage: rocmforge-compare -m MODEL.gguf [-d DEVICE_INDEX | --split I,J,...
//!                          [--split-mode layer|tensor]] [-r REFERENCE_INDEX] [-n 256]
//!                          [-b 64] [-g 0]
//!
//! The tokens are a fixed pseudo-random sequence over the vocabulary; they are decoded in
//! batches of `-b` (prefill-shaped steps) and the last `-b` one at a time (decode steps).
//! The reference is device `-r` (0, the CPU, unless given); the tested placement device
//! `-d` (1) or a split over `--split`'s devices.

#[path = "common/cli.rs"]
mod cli;

use std::process::ExitCode;
use std::sync::Arc;

use rocmforge::backend::{DeviceChoice, enumerate};
use rocmforge::context::{Batch, Context, ContextParams, WantLogits};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::{Model, Placement, SplitMode};
use rocmforge::sampler::Sampler;

struct Args {
    model: String,
    device: usize,
    /// A split's devices instead of `device`; empty for one device.
    split: Vec<usize>,
    split_mode: SplitMode,
    reference: usize,
    n_positions: usize,
    n_batch: usize,
    n_greedy: usize,
}

const USAGE: &str = "usage: rocmforge-compare -m MODEL.gguf [-d DEVICE | --split I,J,... \
                     [--split-mode layer|tensor]] [-r REFERENCE] [-n 256] [-b 64] [-g 0]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: String::new(),
        device: 1,
        split: Vec::new(),
        split_mode: SplitMode::Layers,
        reference: 0,
        n_positions: 256,
        n_batch: 64,
        n_greedy: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "-m" => args.model = value.clone(),
            "-d" => args.device = number()?,
            "--split" => args.split = cli::split_devices(&value)?,
            "--split-mode" => args.split_mode = cli::split_mode(&value)?,
            "-r" => args.reference = number()?,
            "-n" => args.n_positions = number()?.max(1),
            "-b" => args.n_batch = number()?.max(1),
            "-g" => args.n_greedy = number()?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.model.is_empty() {
        return Err("-m MODEL is required".into());
    }
    Ok(args)
}

/// The model on the reference device, or (`tested`) on the placement under test.
fn load(args: &Args, tested: bool) -> rocmforge::Result<Arc<Model>> {
    let devices = enumerate();
    let placement = match (tested, args.split.is_empty()) {
        (false, _) => Placement::choose(&devices, DeviceChoice::Index(args.reference))?,
        (true, true) => Placement::choose(&devices, DeviceChoice::Index(args.device))?,
        (true, false) => Placement::split_by(args.split_mode, &devices, &args.split, None)?,
    };
    let gguf = OwnedGguf::open(args.model.as_ref())?;
    Ok(Arc::new(Model::from_gguf_on(gguf, placement)?))
}

/// Every position's logits, teacher-forced.
fn logits(args: &Args, model: Arc<Model>, tokens: &[i32]) -> rocmforge::Result<Vec<Vec<f32>>> {
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

/// `n` tokens generated greedily (the library's greedy sampler) after `prompt`.
fn greedy(model: Arc<Model>, prompt: &[i32], n: usize) -> rocmforge::Result<Vec<i32>> {
    let params = ContextParams {
        n_ctx: prompt.len() + n,
        ..ContextParams::default()
    };
    let mut ctx = Context::new(model, &params)?;
    let mut sampler = Sampler::greedy();
    let mut next = prompt.to_vec();
    let mut generated = Vec::with_capacity(n);
    for _ in 0..n {
        ctx.decode(&Batch {
            tokens: &next,
            ..Batch::default()
        })?;
        let token = ctx.sample(&mut sampler, -1)? as i32;
        generated.push(token);
        next = vec![token];
    }
    Ok(generated)
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
    let (reference, tested) = (load(args, false)?, load(args, true)?);
    let expected = logits(args, Arc::clone(&reference), &tokens)?;
    let got = logits(args, Arc::clone(&tested), &tokens)?;
    let mut worst = (0.0f64, 0usize);
    for (pos, (a, b)) in expected.iter().zip(&got).enumerate() {
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
    let what = match args.split.is_empty() {
        true => format!("device {}", args.device),
        false => format!("a {:?} split over {:?}", args.split_mode, args.split),
    };
    println!(
        "{}: {} positions, {what} vs device {}: worst relative L2 error of the logits {:.3e} \
         at position {}",
        args.model, args.n_positions, args.reference, worst.0, worst.1
    );
    if args.n_greedy > 0 {
        let prompt = &tokens[..tokens.len().min(16)];
        let expected = greedy(reference, prompt, args.n_greedy)?;
        let got = greedy(tested, prompt, args.n_greedy)?;
        match expected.iter().zip(&got).position(|(a, b)| a != b) {
            None => println!("greedy: the same {} tokens", args.n_greedy),
            Some(i) => println!(
                "greedy: the tokens differ from token {i} of {} ({} vs {})",
                args.n_greedy, got[i], expected[i]
            ),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    cli::main_with("rocmforge-compare", USAGE, parse_args, run)
}
