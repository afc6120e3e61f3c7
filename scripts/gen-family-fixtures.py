#!/usr/bin/env python3
"""Regenerates tests/fixtures/families/: llama.cpp's logits for synthetic models of the
families beyond llama, so tests/family_logits.rs can hold the forward pass of each to
llama.cpp on the same file.

For each family, rocmforge-synth writes a small model (SmolLM2's 49,152-token vocabulary,
F32 weights, seed 7) and llama.cpp (llama-cpp-python) evaluates 64 fixed tokens with every
position's logits kept. Stored per family: <family>.json (the synthesis arguments, the
tokens, the vocabulary stride) and <family>.logits.f16 (little-endian f16, [64 positions,
every STRIDE-th token's logit]: a 1/16 sample of the vocabulary keeps the files small and
still measures the relative L2 error of a whole row to a few percent of itself).

Needs llama-cpp-python in .venv and the models from scripts/fetch-models.sh.
Usage: .venv/bin/python scripts/gen-family-fixtures.py [FAMILY...]   (no names: every family)
"""

import json
import os
import random
import struct
import subprocess
import sys
import tempfile

from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOLLM2 = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "families")


def shape(n_head_kv=2):
    return ["--n-embd", "256", "--n-layer", "4", "--n-head", "4", "--n-head-kv", str(n_head_kv),
            "--n-ff", "512"]


# Each family's KV heads and rocmforge-synth flags beyond the shape. Gemma's window of 16
# positions makes its local layers mask most of the 64 tokens. Mistral is a llama file with
# Mistral's metadata: 4 query heads to a KV head (7B: 32 to 8), RoPE base 1e6 (v0.2 and
# later) and a declared window (7B v0.1's config: 4096; llama.cpp's converter leaves it
# out). llama.cpp ignores the window in a llama file; 16 would mask most of the 64 tokens,
# so an engine that applied it would show.
FAMILIES = {
    "qwen2": (2, []),
    "qwen3": (2, []),
    "gemma3": (2, ["--sliding-window", "16"]),
    "phi3": (2, []),
    "mistral": (1, ["--sliding-window", "16", "--rope-base", "1000000"]),
}
SEED = 7
N_TOKENS = 64
STRIDE = 16
N_VOCAB = 49152


def main():
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "rocmforge-synth"], cwd=ROOT, check=True
    )
    rng = random.Random(SEED)
    tokens = [rng.randrange(N_VOCAB) for _ in range(N_TOKENS)]
    os.makedirs(OUT, exist_ok=True)
    names = sys.argv[1:] or list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        sys.exit(f"unknown families {unknown}; known: {list(FAMILIES)}")
    for family in names:
        n_head_kv, extra = FAMILIES[family]
        args = shape(n_head_kv) + ["--type", "F32", "--pure", "--seed", str(SEED)]
        args += ["--arch", family] + extra
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{family}.gguf")
            subprocess.run(
                [os.path.join(ROOT, "target", "release", "rocmforge-synth"), "--vocab-from", SMOLLM2,
                 "-o", path] + args,
                check=True,
            )
            llm = Llama(path, n_ctx=128, n_batch=128, n_threads=2, logits_all=True, verbose=False)
            llm.eval(tokens)
            rows = [llm.scores[i][::STRIDE] for i in range(N_TOKENS)]
            del llm
        with open(os.path.join(OUT, f"{family}.logits.f16"), "wb") as f:
            for row in rows:
                f.write(struct.pack(f"<{len(row)}e", *[float(v) for v in row]))
        with open(os.path.join(OUT, f"{family}.json"), "w") as f:
            json.dump({"synth_args": args, "tokens": tokens, "stride": STRIDE, "n_vocab": N_VOCAB}, f)
            f.write("\n")
        print(f"{family}: {N_TOKENS} positions x {len(rows[0])} logits")


if __name__ == "__main__":
    main()
