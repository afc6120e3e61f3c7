//! `rocmforge-gguf MODEL.gguf`: prints a GGUF file's header, metadata and tensor table,
//! or the reason it cannot be read.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use rocmforge::gguf::{GgufFile, OwnedGguf};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: rocmforge-gguf MODEL.gguf");
        return ExitCode::from(2);
    };
    match OwnedGguf::open(Path::new(path)) {
        Ok(gguf) => match print_file(&mut io::stdout().lock(), path, gguf.file()) {
            // A closed pipe (`| head`) is the reader's choice, not a failure.
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                eprintln!("rocmforge-gguf: {e}");
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        },
        Err(e) => {
            eprintln!("rocmforge-gguf: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_file(out: &mut impl Write, path: &str, file: &GgufFile<'_>) -> io::Result<()> {
    writeln!(
        out,
        "{path}: GGUF version {}, {} bytes",
        file.version(),
        file.file_len()
    )?;
    writeln!(
        out,
        "alignment {}, tensor data at byte {}",
        file.alignment(),
        file.data_offset()
    )?;

    writeln!(out, "\n{} metadata entries:", file.metadata().len())?;
    for (i, entry) in file.metadata().iter().enumerate() {
        let value_type = entry.value.value_type();
        writeln!(
            out,
            "{i:5}: {value_type:<8} {} = {}",
            entry.key, entry.value
        )?;
    }

    writeln!(out, "\n{} tensors:", file.tensors().len())?;
    writeln!(
        out,
        "{:>5}  {:<8} {:<24} {:>14} {:>12}  name",
        "#", "type", "shape", "offset", "bytes"
    )?;
    for (i, t) in file.tensors().iter().enumerate() {
        let shape = format!("{:?}", t.shape());
        writeln!(
            out,
            "{i:5}  {:<8} {shape:<24} {:>14} {:>12}  {}",
            t.dtype().name(),
            file.data_offset() + t.offset(),
            t.n_bytes(),
            t.name()
        )?;
    }
    let counts: Vec<String> = file
        .dtype_counts()
        .iter()
        .map(|(t, n)| format!("{t}: {n}"))
        .collect();
    writeln!(out, "\ntensor types: {}", counts.join(", "))
}
