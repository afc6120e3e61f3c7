//! What the command-line tools share: running a tool and reporting how it failed, the
//! device and split arguments, the median of measurements.
#![allow(dead_code)] // each tool uses its own subset

use std::fmt::Display;
use std::process::ExitCode;

use rocmforge::backend::DeviceChoice;
use rocmforge::model::SplitMode;

/// Runs `run` on what `parse` reads from the command line: a bad argument prints it with
/// `usage` and exits 2, a failure prints it and exits 1, each message led by `name`.
pub fn main_with<A, E: Display>(
    name: &str,
    usage: &str,
    parse: impl FnOnce() -> Result<A, String>,
    run: impl FnOnce(&A) -> Result<(), E>,
) -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{name}: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A `-d` value: `cpu` (device 0), `auto` (the best usable GPU), or a device index.
pub fn device_choice(value: &str) -> Result<DeviceChoice, String> {
    match value {
        "cpu" => Ok(DeviceChoice::Index(0)),
        "auto" => Ok(DeviceChoice::Auto),
        index => index
            .parse()
            .map(DeviceChoice::Index)
            .map_err(|e| format!("-d {value}: {e} (expected cpu, auto or a device index)")),
    }
}

/// A `--split` value: device indexes, comma-separated (`1,2`).
pub fn split_devices(value: &str) -> Result<Vec<usize>, String> {
    value
        .split(',')
        .map(|i| i.parse().map_err(|e| format!("--split {value}: {e}")))
        .collect()
}

/// A `--split-mode` value: `layer` or `tensor`.
pub fn split_mode(value: &str) -> Result<SplitMode, String> {
    match value {
        "layer" => Ok(SplitMode::Layers),
        "tensor" => Ok(SplitMode::Tensors),
        _ => Err(format!("--split-mode {value}: expected layer or tensor")),
    }
}

/// The median of `samples` (of two middle values, their mean).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}
