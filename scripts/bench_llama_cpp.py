#!/usr/bin/env python3
"""llama.cpp's prefill and decode speed through llama-cpp-python, measured like
rocmforge-bench: a prompt of P tokens in one batch, then N single-token decodes,
repeated R times. Prints one JSON object (tokens/s medians and all samples).

usage: bench_llama_cpp.py MODEL.gguf P N R THREADS
"""
import json
import statistics
import sys
import time

from llama_cpp import Llama


def main():
    model, p, n, r, threads = sys.argv[1], *map(int, sys.argv[2:6])
    llm = Llama(model_path=model, n_ctx=p + n + 8, n_batch=max(p, 1), n_threads=threads,
                n_threads_batch=threads, verbose=False)
    # Same synthetic prompt as rocmforge-bench: token ids 1000, 1001, ...
    prompt = [1000 + i for i in range(p)]
    prefill, decode = [], []
    for _ in range(r + 1):  # the first round warms caches and is dropped
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        for i in range(n):
            llm.eval([2000 + i])
        t2 = time.perf_counter()
        prefill.append(p / (t1 - t0))
        decode.append(n / (t2 - t1))
    prefill, decode = prefill[1:], decode[1:]
    print(json.dumps({
        "engine": "llama.cpp",
        "prefill_tps": statistics.median(prefill), "prefill_samples": prefill,
        "decode_tps": statistics.median(decode), "decode_samples": decode,
    }))


if __name__ == "__main__":
    main()
