#!/usr/bin/env python3
"""llama.cpp's side of scripts/bench-tokenizer.sh: tokenizes FILE with MODEL (vocab only,
BOS as the model says, no special parsing) and prints the best MB/s of several runs, two
ways: `Llama.tokenize`, and one `llama_tokenize` call into a buffer large enough for the
result. `Llama.tokenize` starts with a buffer of n_ctx_train tokens and, when the text
needs more, tokenizes a second time, so for long texts it measures two passes; the
direct call is llama.cpp's tokenizer alone, the figure the ratio uses. Then checks the ids
against rocmforge's (IDS: one id per line)."""

import sys
import time

import llama_cpp
from llama_cpp import Llama

RUNS = 5


def best_of(fn):
    best = float("inf")
    result = None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    model, path, ids_path = sys.argv[1:4]
    with open(path, "rb") as f:
        data = f.read()
    llm = Llama(model_path=model, vocab_only=True, verbose=False)
    vocab = llm._model.vocab

    api_s, ids = best_of(lambda: llm.tokenize(data, add_bos=True, special=False))

    capacity = len(data) + 16
    buf = (llama_cpp.llama_token * capacity)()

    def direct():
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, capacity, True, False)
        if n < 0:
            raise RuntimeError(f"llama_tokenize needs {-n} tokens")
        return n

    direct_s, n = best_of(direct)
    if list(buf[:n]) != ids:
        print("llama_tokenize and Llama.tokenize disagree", file=sys.stderr)
        return 1

    mb = len(data) / 1e6
    print(f"llama.cpp llama_tokenize: {mb / direct_s:.2f} MB/s ({len(data)} bytes -> "
          f"{len(ids)} tokens, best of {RUNS}: {direct_s * 1e3:.1f} ms)")
    print(f"llama.cpp Llama.tokenize: {mb / api_s:.2f} MB/s (best of {RUNS}: "
          f"{api_s * 1e3:.1f} ms, two passes for long texts)")
    with open(ids_path) as f:
        ours = [int(line) for line in f if line.strip()]
    print(f"token ids identical: {'yes' if ours == ids else 'NO'}")
    print(f"MBPS {mb / direct_s}")
    return 0 if ours == ids else 1


if __name__ == "__main__":
    sys.exit(main())
