#!/usr/bin/env python3
"""Regenerates the llama.cpp ground truth for the tokenizer tests that go beyond the
shared reference data:

- tests/fixtures/tokenizer/pre/<pre>.jsonl: SmolLM2's vocabulary with `tokenizer.ggml.pre`
  set to each pre-tokenizer the crate implements, tokenized by llama.cpp (so every split
  is checked against the reference, not only `smollm`);
- tests/fixtures/tokenizer/random/<model>.jsonl: seeded random strings over many Unicode
  categories, both test models, all four (add_special, parse_special) modes;
- tests/fixtures/tokenizer/random/gemma3-space-prefix.jsonl: Gemma 3 with
  `add_space_prefix = true` (Llama 2 style SentencePiece);
- tests/fixtures/tokenizer/pre/qwen35-marks.jsonl: SmolLM2's vocabulary with `qwen35` and
  the tokens and merges of MARK_TOKENS added, so that whether a combining mark joins the
  letter before it (Qwen 3.5's split) changes the tokens.

Needs llama-cpp-python and gguf-py (the project's .venv has both) and the models from
scripts/fetch-models.sh. Usage: .venv/bin/python scripts/gen-tokenizer-fixtures.py
"""

import json
import os
import random
import sys
import tempfile

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOLLM2 = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
GEMMA3 = os.path.join(ROOT, "models", "gemma3-270m-Q4_K_M.gguf")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

PRE_TOKENIZERS = [
    "default", "gpt-2", "llama-bpe", "smollm", "qwen2", "qwen35", "deepseek-llm", "deepseek-coder",
    "starcoder",
    "falcon", "refact", "command-r", "mpt", "stablelm2", "dbrx",
]

# Strings aimed at the corners of the splits: contractions in both cases, digit runs of
# every length in several scripts, whitespace before and after newlines, punctuation the
# splits treat differently, and characters of every general category.
CRAFTED = [
    "I'M HERE, YOU'LL SEE, WE'VE DONE IT, THEY'D AGREE, IT'S OK, DON'T",
    "i'm 'sup ''s 'S 'll'll '",
    "1 12 123 1234 12345 123456 1234567",
    "\u0661\u0662\u0663\u0664 \u00b2\u00b3 \u2167\u2168 \uff11\uff12\uff13\uff14 \u2460\u2461",
    "a1b22c333d4444",
    "x\r\n\r\ny \n \n z\t\n\t w  \n",
    "   \n\n   end",
    "end   ",
    " ",
    "  ",
    "\n",
    "\u3000\u3000full\u3000width\u00a0nbsp\u2003em\u0085nel",
    "$+<=>^~|`!@#%&*()[]{}\\/?,.:;\"'_-",
    "...!!!???,,,;;;",
    "a+b=c; x<y>z; p|q; ~r; s^t; `u`",
    "\u4f60\u597d\u4e16\u754c\uff0c\u3053\u3093\u306b\u3061\u306f\u3001\ud55c\uad6d\uc5b4",
    "\u00e9\u0301 e\u0301 n\u0303 \u200d \u200b \ufeff \u0378 \ue000 \U0001f44d\U0001f3fd",
    "Stra\u00dfe \u0130stanbul \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2 \u0416\u0443\u043a",
    "tab\t\ttab \t \t",
    "\u2028line\u2029para",
    "caf\u00e9's na\u00efve r\u00e9sum\u00e9 1,000,000.50",
    "<|im_start|>user\nhi<|im_end|>\n<start_of_turn>model\n<bos><eos>",
    "x<|im_start|><|im_start|>y<|endoftext|>",
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "   \t\n\r",
    "'''",
    "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~",
    "\u00e9\u00df\u00f1\u00fc\u0416\u0436\u03a9\u05d0\u0627\u0915\u0e01",
    "\u4f60\u597d\u4e16\u754c\u3042\u30a2\ud55c\uac00",
    "\u00b2\u0661\u2167\uff15\u2460\u0966",
    "\u00a0\u3000\u2003\u0085\u2028\u1680",
    "\u20ac\u2211\u00a9\u2192\u2764\U0001f44d\U0001f916\u00ae",
    "\u0301\u0308\u200d\u200b\ufeff\u00ad",
    "\u0378\ue000\U0010fffd\u0000\u001f\u007f",
]

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>",
            "<end_of_turn>", "<bos>", "<eos>", "<unused7>", "\n\n", "  ", "[multimodal]"]


# Letters followed by combining marks as byte-level BPE spells them (U+0301 is bytes CC 81:
# "Ìģ"; U+0308 is CC 88: "ÌĪ"), each a token made by the merge beside it.
MARK_TOKENS = [("Ìģ", "Ì ģ"), ("ÌĪ", "Ì Ī"), ("eÌģ", "e Ìģ"), ("aÌģ", "a Ìģ"), ("oÌĪ", "o ÌĪ")]
MARK_TEXTS = [
    "e\u0301", "cafe\u0301 au lait", "\u0301e", " \u0301a", "o\u0308 x", "!\u0301?",
    "a\u0301\u0301", "na\u0308ive co\u0308\u0301", "1\u0301 2\u0308", "\u0301\u0308", "x \u0301",
    "O\u0308\u0301stro\u0308m", "'s\u0301", "\n\u0301\n",
]


def random_strings(seed, count):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 40)
        parts = []
        for _ in range(n):
            if rng.random() < 0.04:
                parts.append(rng.choice(SPECIALS))
            else:
                parts.append(rng.choice(rng.choice(POOLS)))
        out.append("".join(parts))
    return out


def with_metadata(src, dst, new_metadata):
    reader = gguf.GGUFReader(src, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    copy_with_new_metadata(reader, writer, new_metadata, [])


def load(path):
    return Llama(model_path=path, vocab_only=True, verbose=False)


def tokenize(llm, text, add_special, parse_special):
    return llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)


def write(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=True) + "\n")
    print(f"wrote {len(rows)} lines to {os.path.relpath(path, ROOT)}")


def reference_texts():
    path = os.path.join(OUT, "smollm2-135m-instruct-q4_1", "tokenize.jsonl")
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    return list(dict.fromkeys(texts))


def main():
    tmp = tempfile.mkdtemp(prefix="rocmforge-tok-")
    texts = reference_texts() + CRAFTED + random_strings(1, 120)
    for pre in PRE_TOKENIZERS:
        path = os.path.join(tmp, f"smollm2-{pre}.gguf")
        with_metadata(SMOLLM2, path, {
            gguf.Keys.Tokenizer.PRE: MetadataDetails(gguf.GGUFValueType.STRING, pre),
        })
        llm = load(path)
        rows = [{"text": t, "ids": tokenize(llm, t, False, False)} for t in texts]
        write(os.path.join(OUT, "pre", f"{pre}.jsonl"), rows)
        del llm
        os.remove(path)

    path = os.path.join(tmp, "smollm2-qwen35-marks.gguf")
    reader = gguf.GGUFReader(SMOLLM2, "r")
    tokens = reader.get_field(gguf.Keys.Tokenizer.LIST).contents()
    merges = reader.get_field(gguf.Keys.Tokenizer.MERGES).contents()
    types = reader.get_field(gguf.Keys.Tokenizer.TOKEN_TYPE).contents()
    array = gguf.GGUFValueType.ARRAY
    with_metadata(SMOLLM2, path, {
        gguf.Keys.Tokenizer.PRE: MetadataDetails(gguf.GGUFValueType.STRING, "qwen35"),
        gguf.Keys.Tokenizer.LIST: MetadataDetails(
            array, tokens + [t for t, _ in MARK_TOKENS], sub_type=gguf.GGUFValueType.STRING),
        gguf.Keys.Tokenizer.MERGES: MetadataDetails(
            array, merges + [m for _, m in MARK_TOKENS], sub_type=gguf.GGUFValueType.STRING),
        gguf.Keys.Tokenizer.TOKEN_TYPE: MetadataDetails(
            array, types + [1] * len(MARK_TOKENS), sub_type=gguf.GGUFValueType.INT32),
    })
    llm = load(path)
    rows = [{"text": t, "ids": tokenize(llm, t, False, False)} for t in MARK_TEXTS + CRAFTED]
    write(os.path.join(OUT, "pre", "qwen35-marks.jsonl"), rows)
    del llm
    os.remove(path)

    modes = [(False, False), (True, False), (False, True), (True, True)]
    for name, path, seed in [("smollm2", SMOLLM2, 2), ("gemma3", GEMMA3, 3)]:
        llm = load(path)
        rows = []
        for i, text in enumerate(CRAFTED + random_strings(seed, 300)):
            add, parse = modes[i % len(modes)]
            rows.append({"text": text, "add_special": add, "parse_special": parse,
                         "ids": tokenize(llm, text, add, parse)})
        write(os.path.join(OUT, "random", f"{name}.jsonl"), rows)
        del llm

    path = os.path.join(tmp, "gemma3-space-prefix.gguf")
    with_metadata(GEMMA3, path, {
        gguf.Keys.Tokenizer.ADD_PREFIX: MetadataDetails(gguf.GGUFValueType.BOOL, True),
    })
    llm = load(path)
    rows = []
    for i, text in enumerate(CRAFTED + random_strings(4, 100)):
        add, parse = modes[i % len(modes)]
        rows.append({"text": text, "add_special": add, "parse_special": parse,
                     "ids": tokenize(llm, text, add, parse)})
    write(os.path.join(OUT, "random", "gemma3-space-prefix.jsonl"), rows)
    os.remove(path)
    os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
