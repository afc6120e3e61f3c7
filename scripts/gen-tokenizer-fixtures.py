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
- tests/fixtures/tokenizer/bert-bge/: WordPiece (`bert`). vocab.gguf is llama.cpp's own
  ggml-vocab-bert-bge.gguf (600 KB, copied as is); tokenize.jsonl holds CRAFTED,
  WORD_CRAFTED, llama.cpp's own test texts (ggml-vocab-bert-bge.gguf.inp) and random
  strings with WordPiece's specials, each in one of the four (add_special, parse_special)
  modes, with llama.cpp's ids and `llama_detokenize` of those ids in all four
  (remove_special, unparse_special) modes; pieces.jsonl holds `llama_token_to_piece` (in
  hex) of every special or byte token and every 50th other token, without and with
  `special`.
- tests/fixtures/tokenizer/gemma4/: the same for Gemma 4 (`gemma4`). Its vocabulary is
  16 MB, so vocab.gguf keeps the tokens below id GEMMA4_FIRST_IDS, every special and byte
  token and every one-character token, and the merges among those (same order and
  metadata otherwise, so ids below GEMMA4_FIRST_IDS are Gemma 4's); llama.cpp tokenizes
  that vocabulary, and the fixtures are its answers.
- tests/fixtures/tokenizer/gemma4-newlines/: the same for a tiny Gemma 4 vocabulary
  (GEMMA4_NEWLINE_TOKENS and GEMMA4_NEWLINE_MERGES, Gemma 4's metadata otherwise) whose
  newline runs are tokens that no merge makes, so that taking such a run whole (what
  llama.cpp does for Gemma 4) differs from merging it; every other character is written
  with byte-fallback tokens.
- tests/fixtures/tokenizer/bert-bge-normalizer/tokenize.jsonl: the WordPiece vocabulary
  with `tokenizer.ggml.normalizer.lowercase` and `.strip_accents` set (or left out) as
  each line's `lowercase` and `strip_accents` say (null: key absent), texts in the four
  modes, llama.cpp's ids.
- tests/fixtures/tokenizer/eos-s/: tiny SentencePiece (`llama`) and BPE (`gpt2`)
  vocabularies with `</s>` (control in the file) and, in some, Gemma 4's
  `<|tool_response>` or PLaMo's `<|plamo:eos|>` (as EOS or not): llama.cpp makes `</s>`
  a normal token when both it and one of those are end-of-generation tokens, whatever
  the tokenizer. tokenize.jsonl holds each vocabulary's ids for a few texts in the four
  modes, and `</s>`'s attributes, end-of-generation flag and pieces.
- tests/fixtures/tokenizer/phi3-rstrip/tokenize.jsonl: a tiny SentencePiece vocabulary
  shaped like Phi-3's under general.name values that llama.cpp does (or does not) read as
  Phi-3, whose special tokens then strip the whitespace after them: ids of a few texts in
  the four modes.
- tests/fixtures/tokenizer/mask-lstrip/tokenize.jsonl: the same for a tiny byte-level BPE
  vocabulary whose `<mask>` (jina-v2 pre-tokenizers) or `[MASK]` (ModernBERT) strips the
  whitespace before it.

Needs llama-cpp-python and gguf-py (the project's .venv has both), the models from
scripts/fetch-models.sh and, for those built from its vocabularies, llama.cpp's models/
directory with its ggml-vocab-*.gguf files (in the llama-cpp-python source distribution:
`pip download llama-cpp-python==0.3.36 --no-binary :all: --no-deps`, then
vendor/llama.cpp/models).
Usage: .venv/bin/python scripts/gen-tokenizer-fixtures.py [LLAMA_CPP_MODELS_DIR]
"""

import ctypes
import json
import os
import random
import shutil
import sys
import tempfile

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata
import llama_cpp
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


# WordPiece and Gemma 4 corners: case and accents (lowercasing, NFD to one code point,
# dropped marks), characters that vanish (controls, NUL, U+FFFD, format characters),
# punctuation and ASCII symbols that stand alone, the CJK blocks WordPiece isolates (and
# U+2B820..U+2B91F, which it does not), Hangul (whose NFD keeps only the first jamo),
# words too long or unknown for the vocabulary, code, and each vocabulary's specials.
WORD_CRAFTED = [
    "Hello World", "HELLO WORLD", "hElLo WoRlD", "unaffable", "UNAFFABLE's",
    "\u00c5ngstr\u00f6m \u212bngstr\u00f6m \u00c4pfel \u00fcber na\u00efve co\u00f6perate",
    "\u0130stanbul \u0131\u0130 \u1e9e\u00df \u03a3\u0399\u03a3\u03a5\u03a6\u039f\u03a3 \u01c5\u01c4\u01c6",
    "a\u0000b\ufffdc\u0007d\u200be\u200df\ufeffg\ue000h\u00adi",
    "e\u0301 a\u0308 \u0301 \u20dd \u0903x",
    "\u4f60\u597d\u4e16\u754c \u3400\u4dbf \U00020000 \U0002b81f\U0002b820\U0002b91f\U0002b920 \uf900 \U0002f800",
    "\u3053\u3093\u306b\u3061\u306f \u30ab\u30bf\u30ab\u30ca \ud55c\uad6d\uc5b4 \uac00\ud7a3",
    "fn main() { let x = a[i] + b->c; // done\n\treturn x ^ y | z & !w; }",
    "def f(x):\n    return {'k': [1, 2.5e-3, -7]}  # comment",
    "$100 + 50% = <x> ~y `z` ^w |v| @me #tag",
    "\u00a1Hola! \u00bfQu\u00e9? \u00abguillemets\u00bb \u201cquotes\u201d \u2014 \u2026 \u00b7",
    "\uff21\uff22\uff23 \uff41\uff42\uff43 \uff11\uff12\uff13 \u2160\u2161 \u2460 \u00bd \u00b2",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "xqzvjk qqqq zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "\U0001f999\U0001f44d\U0001f3fd \u2764\ufe0f \u00a9\u00ae\u2122",
    "[CLS] hello [SEP] world [MASK] [UNK] [PAD] [cls] [unused0]",
    "[CLS][SEP][MASK]x[CLS]",
    "<bos>hi<eos> <|turn>user\nhello<turn|>\n<|tool_response></s><unused7><mask>",
    "</s> ends </s></s>",
    "  leading and trailing  ", "\n\n\nthree\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nlots",
    "tab\tsep\r\nline\u000bvt\u000cff\u0085nel\u2028ls\u3000ideo",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea \u0939\u093f\u0928\u094d\u0926\u0940 \u0e44\u0e17\u0e22",
    "\u0378\U0010fffd\u1c89\u1c8a \U0002ebf0",
    "don't can't it's you're we've I'll he'd , . ? !",
    "1,000,000.50 3.14159 0x1F 1e10 -42",
]

WORD_SPECIALS = ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "<bos>", "<eos>", "<|turn>",
                 "<turn|>", "<|tool_response>", "</s>", "<mask>", "\n\n", "  "]

WORD_POOLS = POOLS + [
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c0\u00c9\u00d1\u00dc\u0130\u212b\u0394\u0416",
    "\u00e0\u00e9\u00ea\u00f6\u00e7\u0107\u0161\u1ea1\u1ec7",
    "\u3400\u4e00\u9fff\uf900\U00020000\U0002b920\U0002b820\uac00",
]

GEMMA4_FIRST_IDS = 12000

GEMMA4_NEWLINE_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "\n", "\n\n", "\n\n\n",
                         "\n\n\n\n", "a", "b", "\u2581", "ab", "\u2581a"]
GEMMA4_NEWLINE_MERGES = ["\n \n", "a b", "\u2581 a"]
NEWLINE_TEXTS = ["\n" * n for n in range(1, 10)] + [
    "a\n\n\nb", "ab ab\n\n\n\n a", "\n\n\n\n\na\n\n\n", " \n \n\n ", "b\n<bos>\n\n\n<eos>\n\n",
]
MODES = [(False, False), (True, False), (False, True), (True, True)]


def random_strings(seed, count, specials=SPECIALS, pools=POOLS):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 40)
        parts = []
        for _ in range(n):
            if rng.random() < 0.04:
                parts.append(rng.choice(specials))
            else:
                parts.append(rng.choice(rng.choice(pools)))
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


def tokenize_rows(llm, texts, **keys):
    """A fixture row for each of `texts` in each of the MODES, led by `keys`."""
    return [{**keys, "text": text, "add_special": add, "parse_special": parse,
             "ids": tokenize(llm, text, add, parse)}
            for text in texts for add, parse in MODES]


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


def detokenize(llm, ids, remove_special, unparse_special):
    """llama.cpp's `llama_detokenize` (Llama.detokenize only joins pieces)."""
    array = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    size = 64 + 16 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(llm._model.vocab, array, len(ids), buf, size,
                                   remove_special, unparse_special)
    assert 0 <= n <= size, n
    return buf.raw[:n].decode("utf-8")


def piece_hex(llm, token, special):
    """`llama_token_to_piece`, in hex: a byte token's piece is part of a character."""
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_token_to_piece(llm._model.vocab, token, buf, 256, 0, special)
    assert 0 <= n <= 256, n
    return buf.raw[:n].hex()


def llama_cpp_test_texts(path):
    """The texts of llama.cpp's own tokenizer test (`<vocab>.gguf.inp`)."""
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n__ggml_vocab_test__\n")[:-1]


def gemma4_subset(src, dst):
    reader = gguf.GGUFReader(src, "r")
    field = lambda key: reader.get_field(key).contents()
    tokens, types = field(gguf.Keys.Tokenizer.LIST), field(gguf.Keys.Tokenizer.TOKEN_TYPE)
    scores, merges = field(gguf.Keys.Tokenizer.SCORES), field(gguf.Keys.Tokenizer.MERGES)
    keep = [i for i, t in enumerate(tokens)
            if i < GEMMA4_FIRST_IDS or types[i] != 1 or len(t) == 1]
    kept = {tokens[i] for i in keep}

    def among_kept(merge):
        split = merge.find(" ", 1)
        left, right = merge[:split], merge[split + 1:]
        return left in kept and right in kept and left + right in kept

    array = gguf.GGUFValueType.ARRAY
    with_metadata(src, dst, {
        gguf.Keys.Tokenizer.LIST: MetadataDetails(
            array, [tokens[i] for i in keep], sub_type=gguf.GGUFValueType.STRING),
        gguf.Keys.Tokenizer.TOKEN_TYPE: MetadataDetails(
            array, [types[i] for i in keep], sub_type=gguf.GGUFValueType.INT32),
        gguf.Keys.Tokenizer.SCORES: MetadataDetails(
            array, [scores[i] for i in keep], sub_type=gguf.GGUFValueType.FLOAT32),
        gguf.Keys.Tokenizer.MERGES: MetadataDetails(
            array, [m for m in merges if among_kept(m)], sub_type=gguf.GGUFValueType.STRING),
    })


def gemma4_newlines(src, dst):
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tokens = GEMMA4_NEWLINE_TOKENS + byte_tokens
    types = [3] * 5 + [1] * (len(GEMMA4_NEWLINE_TOKENS) - 5) + [6] * len(byte_tokens)
    array = gguf.GGUFValueType.ARRAY
    with_metadata(src, dst, {
        gguf.Keys.Tokenizer.LIST: MetadataDetails(
            array, tokens, sub_type=gguf.GGUFValueType.STRING),
        gguf.Keys.Tokenizer.TOKEN_TYPE: MetadataDetails(
            array, types, sub_type=gguf.GGUFValueType.INT32),
        gguf.Keys.Tokenizer.SCORES: MetadataDetails(
            array, [0.0] * len(tokens), sub_type=gguf.GGUFValueType.FLOAT32),
        gguf.Keys.Tokenizer.MERGES: MetadataDetails(
            array, GEMMA4_NEWLINE_MERGES, sub_type=gguf.GGUFValueType.STRING),
    })


def word_vocab_fixtures(name, vocab, texts, seed):
    """tokenize.jsonl and pieces.jsonl for the vocabulary at `vocab` (see the docstring)."""
    llm = load(vocab)
    texts = texts + random_strings(seed, 300, WORD_SPECIALS, WORD_POOLS)
    rows = []
    for i, text in enumerate(texts):
        add, parse = MODES[i % len(MODES)]
        ids = tokenize(llm, text, add, parse)
        rows.append({"text": text, "add_special": add, "parse_special": parse, "ids": ids,
                     "detokenize": [detokenize(llm, ids, r, u) for r, u in MODES]})
    write(os.path.join(OUT, name, "tokenize.jsonl"), rows)
    n = llm.n_vocab()
    special = [t for t in range(n) if llama_cpp.llama_vocab_get_attr(llm._model.vocab, t)
               & ~llama_cpp.LLAMA_TOKEN_ATTR_NORMAL]
    ids = sorted(set(special + list(range(0, n, 50))))
    write(os.path.join(OUT, name, "pieces.jsonl"),
          [{"id": t, "plain": piece_hex(llm, t, False), "special": piece_hex(llm, t, True)}
           for t in ids])
    del llm


# (lowercase, strip_accents) for bert-bge-normalizer; None leaves the key out.
NORMALIZER_OPTIONS = [(False, None), (False, True), (True, False), (None, False), (None, True)]


def bert_normalizer_fixtures(bert, tmp):
    texts = CRAFTED + WORD_CRAFTED + random_strings(8, 100, WORD_SPECIALS, WORD_POOLS)
    rows = []
    for lowercase, strip_accents in NORMALIZER_OPTIONS:
        path = os.path.join(tmp, "bert-normalizer.gguf")
        metadata = {}
        if lowercase is not None:
            metadata["tokenizer.ggml.normalizer.lowercase"] = MetadataDetails(
                gguf.GGUFValueType.BOOL, lowercase)
        if strip_accents is not None:
            metadata["tokenizer.ggml.normalizer.strip_accents"] = MetadataDetails(
                gguf.GGUFValueType.BOOL, strip_accents)
        with_metadata(bert, path, metadata)
        llm = load(path)
        for i, text in enumerate(texts):
            add, parse = MODES[i % len(MODES)]
            rows.append({"lowercase": lowercase, "strip_accents": strip_accents, "text": text,
                         "add_special": add, "parse_special": parse,
                         "ids": tokenize(llm, text, add, parse)})
        del llm
        os.remove(path)
    write(os.path.join(OUT, "bert-bge-normalizer", "tokenize.jsonl"), rows)


# name: (source vocabulary, marker tokens added after `</s>`, whether the last is EOS).
EOS_S_VOCABS = {
    "spm-tool-response": ("ggml-vocab-llama-spm.gguf", ["<|tool_response>"], False),
    "spm-plain": ("ggml-vocab-llama-spm.gguf", [], False),
    "bpe-tool-response": ("ggml-vocab-gpt-2.gguf", ["<|tool_response>"], False),
    "bpe-plamo-eos": ("ggml-vocab-gpt-2.gguf", ["<|plamo:eos|>"], True),
    "bpe-plamo-not-eos": ("ggml-vocab-gpt-2.gguf", ["<|plamo:eos|>"], False),
    "bpe-plain": ("ggml-vocab-gpt-2.gguf", [], False),
}
EOS_S_TEXTS = ["a</s>b", "</s>", " </s> <|tool_response>a</s>", "<|plamo:eos|></s><s>b",
               "<|endoftext|></s></s>"]


def eos_s_vocab(src, dst, markers, marker_is_eos):
    reader = gguf.GGUFReader(src, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    spm = reader.get_field(gguf.Keys.Tokenizer.MODEL).contents() == "llama"
    if spm:
        tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [
            "\u2581", "a", "b", "\u2581a"]
        types = [2, 3, 3] + [6] * 256 + [1] * 4
        scores = [0.0] * 259 + [-1.0, -2.0, -3.0, -0.5]
        ids = {"bos": 1, "eos": 2}
        merges = None
    else:
        # GPT-2's first 256 tokens are its byte symbols.
        tokens = reader.get_field(gguf.Keys.Tokenizer.LIST).contents()[:256] + [
            "\u0120a", "<|endoftext|>", "</s>"]
        types = [1] * 257 + [3, 3]
        scores = None
        ids = {"bos": 257, "eos": 257}
        merges = ["\u0120 a"]
    tokens += markers
    types += [3] * len(markers)
    if scores is not None:
        scores += [0.0] * len(markers)
    if marker_is_eos:
        ids["eos"] = len(tokens) - 1
    array = gguf.GGUFValueType.ARRAY
    metadata = {
        gguf.Keys.Tokenizer.LIST: MetadataDetails(
            array, tokens, sub_type=gguf.GGUFValueType.STRING),
        gguf.Keys.Tokenizer.TOKEN_TYPE: MetadataDetails(
            array, types, sub_type=gguf.GGUFValueType.INT32),
        gguf.Keys.Tokenizer.BOS_ID: MetadataDetails(gguf.GGUFValueType.UINT32, ids["bos"]),
        gguf.Keys.Tokenizer.EOS_ID: MetadataDetails(gguf.GGUFValueType.UINT32, ids["eos"]),
        f"{arch}.vocab_size": MetadataDetails(gguf.GGUFValueType.UINT32, len(tokens)),
    }
    if scores is not None:
        metadata[gguf.Keys.Tokenizer.SCORES] = MetadataDetails(
            array, scores, sub_type=gguf.GGUFValueType.FLOAT32)
    if merges is not None:
        metadata[gguf.Keys.Tokenizer.MERGES] = MetadataDetails(
            array, merges, sub_type=gguf.GGUFValueType.STRING)
    with_metadata(src, dst, metadata)


def eos_s_fixtures(models):
    rows = []
    for name, (src, markers, marker_is_eos) in EOS_S_VOCABS.items():
        path = os.path.join(OUT, "eos-s", f"{name}.gguf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        eos_s_vocab(os.path.join(models, src), path, markers, marker_is_eos)
        llm = load(path)
        vocab = llm._model.vocab
        s = next(t for t in range(llm.n_vocab())
                 if llama_cpp.llama_vocab_get_text(vocab, t) == b"</s>")
        rows += tokenize_rows(llm, EOS_S_TEXTS, vocab=name)
        rows.append({"vocab": name, "s_id": s,
                     "s_attr": llama_cpp.llama_vocab_get_attr(vocab, s),
                     "s_is_eog": bool(llama_cpp.llama_vocab_is_eog(vocab, s)),
                     "s_plain": piece_hex(llm, s, False), "s_special": piece_hex(llm, s, True)})
        del llm
    write(os.path.join(OUT, "eos-s", "tokenize.jsonl"), rows)


# A tiny SentencePiece vocabulary shaped like Phi-3's; tests/tokenizer_vocab_files.rs
# builds the same one (phi3_like) under each of these names.
PHI3_TOKENS = (["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [
    "\u2581", "H", "i", "\u2581H", "\u2581Hi", "<|endoftext|>", "<|user|>", "<|end|>",
    "<|assistant|>", "<|mine|>"])
PHI3_TYPES = [2, 3, 3] + [6] * 256 + [1] * 5 + [3, 3, 3, 3, 4]
PHI3_SCORES = [0.0] * 259 + [-1.0, -2.0, -3.0, -1.5, -0.5] + [0.0] * 5
PHI3_NAMES = ["Phi 3 Mini Phi-3", "Phi3", "Phi 3.5 mini"]
PHI3_TEXTS = ["<|user|>\nHi<|end|>\n<|assistant|>\n", "H </s>  Hi <s> Hi <unk>  Hi",
              "<|endoftext|>  Hi", "<|mine|> \t\n\x0b\x0c\r Hi", "Hi <|mine|>Hi",
              "<|user|>\u00a0Hi", "<|end|>   "]


def phi3_rstrip_fixtures(models, tmp):
    """llama.cpp strips the whitespace after the special tokens of a model whose
    general.name says Phi-3 (tests/fixtures/tokenizer/phi3-rstrip/tokenize.jsonl)."""
    array = gguf.GGUFValueType.ARRAY
    rows = []
    for name in PHI3_NAMES:
        path = os.path.join(tmp, "phi3-like.gguf")
        with_metadata(os.path.join(models, "ggml-vocab-phi-3.gguf"), path, {
            gguf.Keys.Tokenizer.LIST: MetadataDetails(
                array, PHI3_TOKENS, sub_type=gguf.GGUFValueType.STRING),
            gguf.Keys.Tokenizer.TOKEN_TYPE: MetadataDetails(
                array, PHI3_TYPES, sub_type=gguf.GGUFValueType.INT32),
            gguf.Keys.Tokenizer.SCORES: MetadataDetails(
                array, PHI3_SCORES, sub_type=gguf.GGUFValueType.FLOAT32),
            gguf.Keys.Tokenizer.EOS_ID: MetadataDetails(gguf.GGUFValueType.UINT32, 264),
            gguf.Keys.Tokenizer.PAD_ID: MetadataDetails(gguf.GGUFValueType.UINT32, 264),
            gguf.Keys.General.NAME: MetadataDetails(gguf.GGUFValueType.STRING, name),
        })
        llm = load(path)
        rows += tokenize_rows(llm, PHI3_TEXTS, name=name)
        del llm
        os.remove(path)
    write(os.path.join(OUT, "phi3-rstrip", "tokenize.jsonl"), rows)


# A tiny byte-level BPE vocabulary (GPT-2's 256 byte symbols, two user-defined mask
# tokens, a control token and " a") under (tokenizer.ggml.pre, general.name) pairs for which
# llama.cpp strips the whitespace before `<mask>` or `[MASK]`, or not;
# tests/tokenizer_vocab_files.rs builds the same one (mask_vocab).
MASK_VOCABS = [("jina-v2-de", "x"), ("jina-v2-code", "x"), ("gpt-2", "x"),
               ("gpt-2", "modern-bert-base")]
MASK_TEXTS = ["a \t<mask> b", "a [MASK]  b", " <mask>", "<mask>\n<mask>", "a\n[MASK] a"]


def mask_lstrip_fixtures(models, tmp):
    """tests/fixtures/tokenizer/mask-lstrip/tokenize.jsonl."""
    src = os.path.join(models, "ggml-vocab-gpt-2.gguf")
    reader = gguf.GGUFReader(src, "r")
    tokens = reader.get_field(gguf.Keys.Tokenizer.LIST).contents()[:256] + [
        "<mask>", "[MASK]", "<|endoftext|>", "\u0120a"]
    types = [1] * 256 + [4, 4, 3, 1]
    array = gguf.GGUFValueType.ARRAY
    rows = []
    for pre, name in MASK_VOCABS:
        path = os.path.join(tmp, "mask.gguf")
        with_metadata(src, path, {
            gguf.Keys.Tokenizer.LIST: MetadataDetails(
                array, tokens, sub_type=gguf.GGUFValueType.STRING),
            gguf.Keys.Tokenizer.TOKEN_TYPE: MetadataDetails(
                array, types, sub_type=gguf.GGUFValueType.INT32),
            gguf.Keys.Tokenizer.MERGES: MetadataDetails(
                array, ["\u0120 a"], sub_type=gguf.GGUFValueType.STRING),
            gguf.Keys.Tokenizer.PRE: MetadataDetails(gguf.GGUFValueType.STRING, pre),
            gguf.Keys.Tokenizer.BOS_ID: MetadataDetails(gguf.GGUFValueType.UINT32, 258),
            gguf.Keys.Tokenizer.EOS_ID: MetadataDetails(gguf.GGUFValueType.UINT32, 258),
            gguf.Keys.General.NAME: MetadataDetails(gguf.GGUFValueType.STRING, name),
        })
        llm = load(path)
        rows += tokenize_rows(llm, MASK_TEXTS, pre=pre, name=name)
        del llm
        os.remove(path)
    write(os.path.join(OUT, "mask-lstrip", "tokenize.jsonl"), rows)


def main():
    tmp = tempfile.mkdtemp(prefix="rocmforge-tok-")
    if len(sys.argv) > 1:
        models = sys.argv[1]
        bert = os.path.join(OUT, "bert-bge", "vocab.gguf")
        os.makedirs(os.path.dirname(bert), exist_ok=True)
        shutil.copyfile(os.path.join(models, "ggml-vocab-bert-bge.gguf"), bert)
        word_vocab_fixtures("bert-bge", bert, CRAFTED + WORD_CRAFTED + llama_cpp_test_texts(
            os.path.join(models, "ggml-vocab-bert-bge.gguf.inp")), 5)
        gemma4_src = os.path.join(models, "ggml-vocab-gemma-4.gguf")
        for name, build, texts, seed in [
            ("gemma4", gemma4_subset, CRAFTED + WORD_CRAFTED + llama_cpp_test_texts(
                gemma4_src + ".inp"), 6),
            ("gemma4-newlines", gemma4_newlines, NEWLINE_TEXTS + CRAFTED, 7),
        ]:
            path = os.path.join(OUT, name, "vocab.gguf")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            build(gemma4_src, path)
            word_vocab_fixtures(name, path, texts, seed)
        bert_normalizer_fixtures(bert, tmp)
        eos_s_fixtures(models)
        phi3_rstrip_fixtures(models, tmp)
        mask_lstrip_fixtures(models, tmp)
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

    for name, path, seed in [("smollm2", SMOLLM2, 2), ("gemma3", GEMMA3, 3)]:
        llm = load(path)
        rows = []
        for i, text in enumerate(CRAFTED + random_strings(seed, 300)):
            add, parse = MODES[i % len(MODES)]
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
        add, parse = MODES[i % len(MODES)]
        rows.append({"text": text, "add_special": add, "parse_special": parse,
                     "ids": tokenize(llm, text, add, parse)})
    write(os.path.join(OUT, "random", "gemma3-space-prefix.jsonl"), rows)
    os.remove(path)
    os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
