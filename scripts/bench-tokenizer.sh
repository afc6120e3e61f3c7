#!/usr/bin/env bash
# Tokenizer throughput beside llama.cpp: both tokenize the same generated 1 MB of mixed
# English, code and CJK text with each test model, in this one run, and the ratio is
# printed. Needs llama-cpp-python in .venv (or PYTHON=...) and scripts/fetch-models.sh.
# Usage: scripts/bench-tokenizer.sh [BYTES]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
BYTES="${1:-1000000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin rocmforge-tokenize-bench
bench=target/release/rocmforge-tokenize-bench
"$bench" generate "$work/text.txt" "$BYTES"
echo "text: $BYTES bytes of mixed English, code and CJK"

for model in models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma3-270m-Q4_K_M.gguf; do
    echo "== $(basename "$model")"
    ours="$("$bench" run "$model" "$work/text.txt" "$work/ids.txt")"
    echo "$ours"
    # llama.cpp logs to stderr even when asked not to; show it only on failure.
    if ! theirs="$("$PYTHON" scripts/bench_tokenizer_llama.py "$model" "$work/text.txt" \
        "$work/ids.txt" 2>"$work/stderr.txt")"; then
        echo "$theirs"
        cat "$work/stderr.txt" >&2
        exit 1
    fi
    echo "$theirs" | grep -v '^MBPS'
    ours_mbps="$(echo "$ours" | sed -E 's/^rocmforge: ([0-9.]+) MB\/s.*/\1/')"
    theirs_mbps="$(echo "$theirs" | sed -n 's/^MBPS //p')"
    awk -v a="$ours_mbps" -v b="$theirs_mbps" 'BEGIN { printf "ratio rocmforge / llama_tokenize: %.2fx\n", a / b }'
done
