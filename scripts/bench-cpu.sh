#!/usr/bin/env bash
# CPU prefill and decode speed of rocmforge beside llama.cpp (llama-cpp-python) on the
# same model, prompt length and thread count. The two engines take turns for ROUNDS
# rounds, so a noisy neighbour slows both alike; the medians over rounds are compared.
# rocmforge-bench --bandwidth also streams host memory each round, so decode is reported as
# a share of the machine's bandwidth too.
#
#   scripts/bench-cpu.sh [MODEL] [PROMPT_TOKENS] [GEN_TOKENS] [ROUNDS] [THREADS]
#
# Needs llama-cpp-python in .venv: python3 -m venv .venv && .venv/bin/pip install llama-cpp-python==0.3.36
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
p=${2:-128}
n=${3:-64}
rounds=${4:-5}
t=${5:-2}

cargo build --release --quiet --bin rocmforge-bench
results=()
for _ in $(seq "$rounds"); do
    results+=("$(target/release/rocmforge-bench -m "$model" -p "$p" -n "$n" -r 3 -t "$t" --json --bandwidth)")
    results+=("$(.venv/bin/python scripts/bench_llama_cpp.py "$model" "$p" "$n" 3 "$t")")
done
printf '%s\n' "${results[@]}" | python3 -c '
import json, statistics, sys
model, p, n, t, rounds = sys.argv[1:6]
runs = [json.loads(line) for line in sys.stdin]
print(f"model {model}, {t} threads, prompt {p} tokens then {n} decodes; {rounds} alternating rounds")
# A round runs both engines back to back, so its ratio cancels the machine changing speed
# between rounds (some machines switch between a fast and a slow state), which the ratio
# of the two medians does not.
print("| test | rocmforge t/s | llama.cpp t/s | ratio of medians | median round ratio | per-round ratios |")
print("|---|---:|---:|---:|---:|---|")
for key, name in (("prefill_tps", f"pp{p}"), ("decode_tps", f"tg{n}")):
    ours = [r[key] for r in runs if r["engine"] == "rocmforge"]
    theirs = [r[key] for r in runs if r["engine"] == "llama.cpp"]
    ratios = [a / b for a, b in zip(ours, theirs)]
    per_round = " ".join(f"{r:.2f}" for r in ratios)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x | {statistics.median(ratios):.2f}x | {per_round} |")
# Decode streams the weights once a token: its share of what this machine can stream.
ours_runs = [r for r in runs if r["engine"] == "rocmforge"]
rate = statistics.median(r["stream_bytes_per_s"] for r in ours_runs)
weights = ours_runs[0]["model_bytes"]
ours_share, theirs_share = (
    statistics.median(r["decode_tps"] for r in runs if r["engine"] == e) * weights / rate
    for e in ("rocmforge", "llama.cpp"))
print(f"memory: {rate / 1e9:.1f} GB/s streamed by {t} threads (median of rounds); decode reads "
      f"the {weights / 1e6:.1f} MB of weights at {ours_share:.0%} of it (llama.cpp: "
      f"{theirs_share:.0%})")
' "$model" "$p" "$n" "$t" "$rounds"
