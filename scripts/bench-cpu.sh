#!/usr/bin/env bash
# CPU prefill and decode speed of rocmforge beside llama.cpp (llama-cpp-python) on the
# same model, prompt length and thread count, measured in one run.
#
#   scripts/bench-cpu.sh [MODEL] [PROMPT_TOKENS] [GEN_TOKENS] [REPS] [THREADS]
#
# Needs llama-cpp-python in .venv: python3 -m venv .venv && .venv/bin/pip install llama-cpp-python==0.3.36
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
p=${2:-128}
n=${3:-64}
r=${4:-3}
t=${5:-2}

cargo build --release --quiet --bin rocmforge-bench
ours=$(target/release/rocmforge-bench -m "$model" -p "$p" -n "$n" -r "$r" -t "$t" --json)
theirs=$(.venv/bin/python scripts/bench_llama_cpp.py "$model" "$p" "$n" "$r" "$t")
python3 - "$ours" "$theirs" "$model" "$p" "$n" "$t" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
model, p, n, t = sys.argv[3:7]
print(f"model {model}, {t} threads, prompt {p} tokens, then {n} decodes (medians)")
print("| test | rocmforge t/s | llama.cpp t/s | ratio |")
print("|---|---:|---:|---:|")
for key, name in (("prefill_tps", f"pp{p}"), ("decode_tps", f"tg{n}")):
    print(f"| {name} | {ours[key]:.1f} | {theirs[key]:.1f} | {ours[key] / theirs[key]:.2f}x |")
PY
