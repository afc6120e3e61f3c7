//! Tokenizer throughput. `scripts/bench-tokenizer.sh` runs it beside llama.cpp on the
//! same text:
//!
//! - `rocmforge-tokenize-bench generate FILE [BYTES]`: writes deterministic mixed
//!   English prose, source code and CJK text (1,000,000 bytes by default);
//! - `rocmforge-tokenize-bench run MODEL.gguf FILE [IDS_OUT]`: tokenizes FILE (with BOS as
//!   the model says, no special parsing) several times and prints the best MB/s; writes
//!   the ids, one per line, to IDS_OUT when given.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use rocmforge::gguf::OwnedGguf;
use rocmforge::tokenizer::Tokenizer;

const RUNS: usize = 5;

const ENGLISH: &[&str] = &[
    "The quick brown fox jumps over the lazy dog while the farmer's children watch from the porch. ",
    "In 1969, astronauts walked on the Moon for the first time; millions of people followed it live on television. ",
    "She said, \"I'll be there by 5:30 p.m., unless the trains are delayed again.\" ",
    "Researchers measured a 12.5% increase in efficiency after replacing the old pumps with variable-speed drives. ",
    "It isn't clear whether they'd agree, but we've asked them twice and they're still thinking about it. ",
    "Photosynthesis converts light energy into chemical energy, storing it in the bonds of glucose molecules. ",
    "\n\nChapter 7: A Walk Through the Old Town\n\n",
    "Prices rose from $19.99 to $24.50 (about 22.6%), and customers noticed immediately. ",
];

const CODE: &[&str] = &[
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n",
    "#include <stdio.h>\n\nint main(void) {\n\tfor (int i = 0; i < 16; ++i) {\n\t\tprintf(\"%d\\n\", i << 2);\n\t}\n\treturn 0;\n}\n",
    "const config = { retries: 3, timeoutMs: 2500, endpoints: [\"/api/v1/users\", \"/api/v1/orders\"] };\n",
    "SELECT name, COUNT(*) AS n FROM orders WHERE created_at >= '2024-01-01' GROUP BY name ORDER BY n DESC;\n",
    "    if (x != nullptr && x->next) { x = x->next; } else { return -EINVAL; }\n",
];

const CJK: &[&str] = &[
    "今天天气很好，我们一起去公园散步吧。",
    "人工智能正在改变我们的生活方式和工作方式。",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "こんにちは、世界。カタカナとひらがなを混ぜて書きます。",
    "서울은 대한민국의 수도이며 한강이 도시를 가로지릅니다. ",
    "他说：“明天见！”然后就离开了。\n",
];

/// Mixed text of exactly `bytes` bytes (cut at a character boundary, padded with
/// spaces), from a fixed-seed generator so every run and both tokenizers see the same.
fn generate(bytes: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut text = String::with_capacity(bytes + 256);
    while text.len() < bytes {
        let pool = match next(10) {
            0..=4 => ENGLISH,
            5..=7 => CODE,
            _ => CJK,
        };
        for _ in 0..1 + next(4) {
            text.push_str(pool[next(pool.len())]);
        }
    }
    let mut cut = bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    while text.len() < bytes {
        text.push(' ');
    }
    text
}

fn run(model: &Path, file: &Path, ids_out: Option<&Path>) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let load_start = Instant::now();
    let gguf = OwnedGguf::open(model).map_err(|e| e.to_string())?;
    let tokenizer = Tokenizer::from_gguf(gguf.file()).map_err(|e| e.to_string())?;
    let load_s = load_start.elapsed().as_secs_f64();
    let mut ids = tokenizer
        .tokenize(&text, true, false)
        .map_err(|e| e.to_string())?;
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let start = Instant::now();
        ids = tokenizer
            .tokenize(&text, true, false)
            .map_err(|e| e.to_string())?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mb = text.len() as f64 / 1e6;
    println!(
        "rocmforge: {:.2} MB/s ({} bytes -> {} tokens, best of {RUNS}: {:.1} ms; load {:.0} ms)",
        mb / best,
        text.len(),
        ids.len(),
        best * 1e3,
        load_s * 1e3
    );
    if let Some(path) = ids_out {
        let lines: Vec<String> = ids.iter().map(u32::to_string).collect();
        std::fs::write(path, lines.join("\n")).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate", file, rest @ ..] => {
            let bytes = match rest.first().map(|b| b.parse::<usize>()) {
                Some(Ok(n)) => n,
                Some(Err(e)) => return fail(&format!("bad byte count: {e}")),
                None => 1_000_000,
            };
            std::fs::write(file, generate(bytes)).map_err(|e| format!("{file}: {e}"))
        }
        ["run", model, file] => run(Path::new(model), Path::new(file), None),
        ["run", model, file, ids] => run(Path::new(model), Path::new(file), Some(Path::new(ids))),
        _ => Err(
            "usage: rocmforge-tokenize-bench generate FILE [BYTES] | run MODEL.gguf FILE [IDS_OUT]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("rocmforge-tokenize-bench: {message}");
    ExitCode::FAILURE
}
