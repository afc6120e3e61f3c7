#!/usr/bin/env python3
"""llama.cpp's embeddings (llama-cpp-python, embedding=True) of a few texts on a model,
for tests/embeddings.rs: per text the token ids llama.cpp embedded and its mean, last-token
and first-token (CLS) pooled embeddings, unnormalised.

    .venv/bin/python scripts/gen-embedding-fixtures.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
        tests/fixtures/embeddings/smollm2.json
"""
import json
import sys

import llama_cpp

TEXTS = [
    "The three primary colors are red, yellow and blue.",
    "A goblin guards the bridge and asks every traveller for a riddle.",
    "fn main() { println!(\"hello\"); }",
]
POOLINGS = {
    "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
    "last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
    "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
}


def main(model_path, out_path):
    cases = [{"text": t} for t in TEXTS]
    for name, pooling in POOLINGS.items():
        llm = llama_cpp.Llama(model_path=model_path, embedding=True, pooling_type=pooling,
                              n_ctx=512, n_batch=512, n_threads=2, verbose=False)
        for case in cases:
            case["tokens"] = llm.tokenize(case["text"].encode(), add_bos=True, special=False)
            case[name] = [round(v, 6) for v in llm.embed(case["text"], normalize=False)]
        del llm
    with open(out_path, "w") as f:
        json.dump({"model": model_path.split("/")[-1], "llama_cpp_python": llama_cpp.__version__,
                   "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
