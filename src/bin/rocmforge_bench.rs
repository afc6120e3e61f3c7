//! `rocmforge-bench`: prefill and decode speed of a model, in the spirit of llama-bench.
//!
//! ```text
//! rocmforge-bench -m MODEL.gguf [-p 512] [-n 128] [-r 3] [-t THREADS] [--kv f16|f32|q8_0]
//!                 [--split I,J,...] [--split-mode layer|tensor] [--json] [--bandwidth]
//! ```
//! As llama-bench's pp and tg tests: each repetition decodes a prompt of `p` tokens in one
//! batch into an empty cache (pp), then empties the cache and decodes `n` tokens one at a
//! time from the start (tg); one unreported warm-up repetition comes first. Prints the
//! median tokens/s and the spread (min–max) as a table, or one JSON object with `--json`.
//!
//! `--bandwidth` (CPU runs) also measures how fast this machine streams memory: `THREADS`
//! threads summing a 256 MiB buffer, far larger than any last-level cache, the median of
//! five passes. Decode reads every weight once a token, so tg times the weight bytes over
//! that rate is the fraction of the machine's bandwidth decode uses.
//!
//! `--split I,J,...` runs the model split by layers over those GPUs of the device list,
//! in that order, in proportion to their free memory (an index may repeat: two shares on
//! one GPU, which measures what the hand-over between shares costs). `--split-mode tensor`
//! splits each layer's heads and FFN over them instead.

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use rocmforge::backend::{DeviceChoice, KvType};
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::{Model, Placement, SplitMode};

struct Args {
    model: PathBuf,
    n_prompt: usize,
    n_gen: usize,
    repetitions: usize,
    threads: usize,
    /// The device list entry to run on: 0 is the CPU, `Auto` the best GPU.
    device: DeviceChoice,
    /// The GPUs of a layer split, instead of `device`; empty for one device.
    split: Vec<usize>,
    split_mode: SplitMode,
    kv_type: KvType,
    json: bool,
    bandwidth: bool,
}

const USAGE: &str = "usage: rocmforge-bench -m MODEL.gguf [-p 512] [-n 128] [-r 3] [-t THREADS] \
                     [-d cpu|auto|DEVICE_INDEX] [--split I,J,...] [--split-mode layer|tensor] \
                     [--kv f16|f32|q8_0] [--json] [--bandwidth]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: PathBuf::new(),
        n_prompt: 512,
        n_gen: 128,
        repetitions: 3,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        device: DeviceChoice::Index(0),
        split: Vec::new(),
        split_mode: SplitMode::Layers,
        kv_type: KvType::F16,
        json: false,
        bandwidth: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            args.json = true;
            continue;
        }
        if flag == "--bandwidth" {
            args.bandwidth = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "-m" => args.model = PathBuf::from(&value),
            "-p" => args.n_prompt = number()?,
            "-n" => args.n_gen = number()?,
            "-r" => args.repetitions = number()?.max(1),
            "-t" => args.threads = number()?.max(1),
            "--kv" => {
                args.kv_type = match value.as_str() {
                    "f16" => KvType::F16,
                    "f32" => KvType::F32,
                    "q8_0" => KvType::Q8_0,
                    _ => return Err(format!("--kv {value}: expected f16, f32 or q8_0")),
                }
            }
            "-d" => args.device = cli::device_choice(&value)?,
            "--split" => args.split = cli::split_devices(&value)?,
            "--split-mode" => args.split_mode = cli::split_mode(&value)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.model.as_os_str().is_empty() {
        return Err("-m MODEL is required".into());
    }
    if args.bandwidth && args.device != DeviceChoice::Index(0) {
        return Err("--bandwidth measures host memory: for CPU runs (-d cpu)".into());
    }
    Ok(args)
}

/// Tokens/s of each repetition's prefill and decode.
fn measure(args: &Args, ctx: &mut Context) -> rocmforge::Result<(Vec<f64>, Vec<f64>)> {
    let prompt: Vec<i32> = (0..args.n_prompt as i32).map(|i| 1000 + i).collect();
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for rep in 0..=args.repetitions {
        ctx.seq_remove(0, 0, -1)?;
        let start = Instant::now();
        if !prompt.is_empty() {
            ctx.decode(&Batch {
                tokens: &prompt,
                ..Batch::default()
            })?;
        }
        let prefilled = Instant::now();
        ctx.seq_remove(0, 0, -1)?;
        let generating = Instant::now();
        for i in 0..args.n_gen as i32 {
            ctx.decode(&Batch {
                tokens: &[2000 + i],
                ..Batch::default()
            })?;
        }
        let done = Instant::now();
        if rep > 0 {
            prefill.push(args.n_prompt as f64 / (prefilled - start).as_secs_f64());
            decode.push(args.n_gen as f64 / (done - generating).as_secs_f64());
        }
    }
    Ok((prefill, decode))
}

/// Bytes of the buffer the bandwidth probe streams: far past any last-level cache.
const PROBE_BYTES: usize = 256 << 20;

/// Host memory's streaming read rate in bytes/s with `threads` threads: the median of five
/// timed passes over [`PROBE_BYTES`] (after one that faults the pages in).
fn stream_read_rate(threads: usize) -> Result<f64, String> {
    let words = PROBE_BYTES / size_of::<u64>();
    let mut buffer: Vec<u64> = Vec::new();
    buffer
        .try_reserve_exact(words)
        .map_err(|_| format!("no memory for the {PROBE_BYTES}-byte bandwidth probe"))?;
    buffer.resize(words, 1);
    let chunk = words.div_ceil(threads);
    let mut rates = Vec::new();
    for pass in 0..6 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for part in buffer.chunks(chunk) {
                scope.spawn(|| {
                    let sum = part.iter().fold(0u64, |a, &w| a.wrapping_add(w));
                    std::hint::black_box(sum);
                });
            }
        });
        if pass > 0 {
            rates.push(PROBE_BYTES as f64 / start.elapsed().as_secs_f64());
        }
    }
    Ok(cli::median(&rates))
}

fn spread(samples: &[f64]) -> (f64, f64) {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn run(args: &Args) -> rocmforge::Result<()> {
    let devices = rocmforge::backend::enumerate();
    let placement = match args.split.is_empty() {
        true => Placement::choose(&devices, args.device)?,
        false => Placement::split_by(args.split_mode, &devices, &args.split, None)?,
    };
    let device = placement
        .devices()
        .iter()
        .map(|d| format!("{} ({})", d.device.name, d.device.arch))
        .collect::<Vec<_>>()
        .join(" + ");
    let model = Arc::new(Model::from_gguf_on(
        OwnedGguf::open(&args.model)?,
        placement,
    )?);
    let model_bytes: u64 = model.gguf().tensors().iter().map(|t| t.n_bytes()).sum();
    let params = ContextParams {
        n_ctx: args.n_prompt + args.n_gen + 1,
        n_batch: args.n_prompt.max(1),
        n_threads: args.threads,
        kv_type: args.kv_type,
        ..ContextParams::default()
    };
    let mut ctx = Context::new(model, &params)?;
    let (prefill, decode) = measure(args, &mut ctx)?;
    let bandwidth = if args.bandwidth {
        let rate = stream_read_rate(args.threads).map_err(rocmforge::Error::InvalidArgument)?;
        Some((rate, cli::median(&decode) * model_bytes as f64 / rate))
    } else {
        None
    };
    let name = args
        .model
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    if args.json {
        println!(
            "{{\"engine\":\"rocmforge\",\"device\":{device:?},\"model\":{name:?},\"kv_type\":{:?},\
             \"model_bytes\":{model_bytes},\"threads\":{},\
             \"n_prompt\":{},\"n_gen\":{},\"prefill_tps\":{},\"prefill_samples\":{:?},\
             \"decode_tps\":{},\"decode_samples\":{:?}{}}}",
            args.kv_type.name(),
            args.threads,
            args.n_prompt,
            args.n_gen,
            cli::median(&prefill),
            prefill,
            cli::median(&decode),
            decode,
            bandwidth.map_or_else(String::new, |(rate, fraction)| format!(
                ",\"stream_bytes_per_s\":{rate},\"decode_bandwidth_fraction\":{fraction}"
            ))
        );
    } else {
        println!(
            "device: {device}; model: {name}, {model_bytes} bytes of weights; {} KV cache",
            args.kv_type.name()
        );
        println!("| model | threads | test | t/s (median) | min – max |");
        println!("|---|---:|---|---:|---:|");
        for (test, samples) in [
            (format!("pp{}", args.n_prompt), &prefill),
            (format!("tg{}", args.n_gen), &decode),
        ] {
            let (lo, hi) = spread(samples);
            println!(
                "| {name} | {} | {test} | {:.1} | {lo:.1} – {hi:.1} |",
                args.threads,
                cli::median(samples)
            );
        }
        if let Some((rate, fraction)) = bandwidth {
            println!(
                "memory: {:.1} GB/s streamed by {} threads; decode reads the weights at {:.0}% of it",
                rate / 1e9,
                args.threads,
                fraction * 100.0
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    cli::main_with("rocmforge-bench", USAGE, parse_args, run)
}
