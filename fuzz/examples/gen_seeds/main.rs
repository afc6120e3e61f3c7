//! Writes the seed corpus of every fuzz target under the folder given (scripts/
//! gen-fuzz-seeds.sh passes fuzz/seeds): `<folder>/<target>/<name>`, a few kilobytes
//! each, the same bytes on every run. Each seed is a case that means something for its
//! target, for the fuzzer to mutate from.

mod chat;
mod decode;
mod gguf;
mod state;
mod tokenize;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Seeds of one target: (name, bytes).
type Seeds = Vec<(String, Vec<u8>)>;

fn write(root: &Path, target: &str, seeds: Seeds) -> std::io::Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen_seeds <seeds folder>");
        return ExitCode::FAILURE;
    };
    let models = match gguf::models() {
        Ok(models) => models,
        Err(e) => {
            eprintln!("building the seed models: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut files = models.clone();
    match gguf::edge_files(&models) {
        Ok(edge) => files.extend(edge),
        Err(e) => {
            eprintln!("building the GGUF edge cases: {e}");
            return ExitCode::FAILURE;
        }
    }
    let states = match state::seeds() {
        Ok(states) => states,
        Err(e) => {
            eprintln!("building the state seeds: {e}");
            return ExitCode::FAILURE;
        }
    };
    let targets = [
        ("gguf_parse", files),
        ("model_load", models),
        ("tokenize", tokenize::seeds()),
        ("decode", decode::seeds()),
        ("chat_template", chat::seeds()),
        ("state_load", states),
    ];
    for (target, seeds) in targets {
        if let Err(e) = write(&root, target, seeds) {
            eprintln!("writing the {target} seeds under {}: {e}", root.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
