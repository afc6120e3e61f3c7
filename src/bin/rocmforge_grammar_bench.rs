//! `rocmforge-grammar-bench`: what a JSON Schema costs generation speed.
//!
//! ```text
//! rocmforge-grammar-bench -m MODEL.gguf -s SCHEMA.json [-n 256] [-r 5] [-t THREADS] [-d cpu|auto|N]
//! ```
//! Each round answers the same chat request twice from an empty cache with the same
//! seeded sampler (temperature 0.8, llama.cpp's default chain): once free, once under the
//! schema, `-n` tokens at most, alternating which goes first. Only the generation loop
//! (sample, then decode the token) is timed, not the prompt. Prints the median tokens/s of
//! each, and the median of the per-round ratios (constrained / free), which cancels a
//! machine's drift between rounds.

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use rocmforge::backend::DeviceChoice;
use rocmforge::chat::{ChatMessage, chat_tokens};
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::gguf::OwnedGguf;
use rocmforge::grammar::{Grammar, GrammarKind, GrammarVocabulary};
use rocmforge::model::{Model, Placement};
use rocmforge::sampler::{Sampler, SamplerParams};
use rocmforge::tokenizer::Tokenizer;

struct Args {
    model: PathBuf,
    schema: PathBuf,
    max_tokens: usize,
    rounds: usize,
    threads: usize,
    device: DeviceChoice,
}

const USAGE: &str = "usage: rocmforge-grammar-bench -m MODEL.gguf -s SCHEMA.json [-n 256] [-r 5] \
                     [-t THREADS] [-d cpu|auto|DEVICE_INDEX]";

const REQUEST: &str = "Invent a character for a fantasy game and describe it as JSON.";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: PathBuf::new(),
        schema: PathBuf::new(),
        max_tokens: 256,
        rounds: 5,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        device: DeviceChoice::Index(0),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "-m" => args.model = PathBuf::from(&value),
            "-s" => args.schema = PathBuf::from(&value),
            "-n" => args.max_tokens = number()?.max(1),
            "-r" => args.rounds = number()?.max(1),
            "-t" => args.threads = number()?.max(1),
            "-d" => args.device = cli::device_choice(&value)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.model.as_os_str().is_empty() || args.schema.as_os_str().is_empty() {
        return Err("-m MODEL and -s SCHEMA are required".into());
    }
    Ok(args)
}

/// Generated tokens and tokens/s of one answer to `prompt` from an empty cache.
fn generation_speed(
    ctx: &mut Context,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[i32],
    max_tokens: usize,
) -> rocmforge::Result<(usize, f64)> {
    ctx.seq_remove(0, 0, -1)?;
    ctx.decode(&Batch {
        tokens: prompt,
        ..Batch::default()
    })?;
    let start = Instant::now();
    let mut generated = 0;
    while generated < max_tokens {
        let token = ctx.sample(sampler, -1)?;
        generated += 1;
        if tokenizer.is_end_of_generation(token) {
            break;
        }
        ctx.decode(&Batch {
            tokens: &[token as i32],
            ..Batch::default()
        })?;
    }
    Ok((generated, generated as f64 / start.elapsed().as_secs_f64()))
}

fn run(args: &Args) -> rocmforge::Result<()> {
    let schema = std::fs::read_to_string(&args.schema).map_err(|source| rocmforge::Error::Io {
        path: args.schema.display().to_string(),
        source,
    })?;
    let placement = Placement::choose(&rocmforge::backend::enumerate(), args.device)?;
    let device = format!(
        "{} ({})",
        placement.first().device.name,
        placement.first().device.arch
    );
    let model = Arc::new(Model::from_gguf_on(
        OwnedGguf::open(&args.model)?,
        placement,
    )?);
    let tokenizer = Tokenizer::from_gguf(model.gguf())?;
    let template = model.gguf().get::<&str>("tokenizer.chat_template")?;
    let messages = [ChatMessage {
        role: "user",
        content: REQUEST,
    }];
    let prompt: Vec<i32> = chat_tokens(&tokenizer, template, &messages, true, true)?
        .into_iter()
        .map(|id| id as i32)
        .collect();
    let grammar = Grammar::new(GrammarKind::JsonSchema, &schema)?;
    let vocabulary = GrammarVocabulary::new(&tokenizer)?;
    let params = ContextParams {
        n_ctx: prompt.len() + args.max_tokens + 1,
        n_threads: args.threads,
        ..ContextParams::default()
    };
    let mut ctx = Context::new(model, &params)?;
    let (mut free, mut constrained, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = (0, 0);
    // Round 0 warms both paths up and is not reported.
    for round in 0..=args.rounds {
        let mut speeds = [0.0; 2];
        for pass in 0..2 {
            let with_grammar = (round + pass) % 2 == 1;
            let mut sampler = Sampler::new(SamplerParams {
                seed: round as u64,
                ..SamplerParams::default()
            })?;
            if with_grammar {
                sampler = sampler.with_grammar(grammar.clone());
                sampler.bind_vocabulary(&vocabulary)?;
            }
            let (n, speed) =
                generation_speed(&mut ctx, &tokenizer, &mut sampler, &prompt, args.max_tokens)?;
            speeds[usize::from(with_grammar)] = speed;
            if round > 0 {
                if with_grammar {
                    tokens.1 += n;
                } else {
                    tokens.0 += n;
                }
            }
        }
        if round > 0 {
            free.push(speeds[0]);
            constrained.push(speeds[1]);
            ratios.push(speeds[1] / speeds[0]);
        }
    }
    let name = args
        .model
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    println!("device: {device}; model: {name}; {} rounds", args.rounds);
    println!("| sampling | tokens generated | t/s (median) |");
    println!("|---|---:|---:|");
    println!("| free | {} | {:.1} |", tokens.0, cli::median(&free));
    println!(
        "| {} | {} | {:.1} |",
        args.schema.display(),
        tokens.1,
        cli::median(&constrained)
    );
    println!(
        "constrained / free: {:.3} (median of per-round ratios {:?})",
        cli::median(&ratios),
        ratios
            .iter()
            .map(|r| (r * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn main() -> ExitCode {
    cli::main_with("rocmforge-grammar-bench", USAGE, parse_args, run)
}
