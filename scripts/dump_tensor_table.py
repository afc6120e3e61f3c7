#!/usr/bin/env python3
"""Write a JSON fixture describing a GGUF file as gguf-py reads it.

Developer tool, not run in CI. Needs gguf-py:

    python3 -m venv .venv && .venv/bin/pip install gguf==0.19.0
    .venv/bin/python scripts/dump_tensor_table.py models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        tests/fixtures/models/smollm2-135m-instruct-q4_1.json

Output schema (compact JSON, one metadata entry / tensor per line):

    {"file": basename, "sha256": hex, "size": bytes,
     "version": u32, "n_tensors": u64, "n_kv": u64,
     "alignment": effective alignment (general.alignment or 32),
     "data_offset": absolute byte offset of the tensor data section
                    (end of the tensor-info table rounded up to `alignment`),
     "metadata": [{"key", "type",
                   ["array_type", "array_len", "chunk_fnv1a64", "samples"],
                   ["value" | "len", "fnv1a64"]}],
     "tensors": [{"name", "type_id", "type", "shape", "offset", "n_bytes"}]}

Semantics (verified against gguf-py 0.19.0 and cross-checked below by an
independent struct-based parse of the raw header bytes):

* metadata is in file order; the pseudo-fields gguf-py adds for the header
  (GGUF.version, GGUF.tensor_count, GGUF.kv_count) become the top-level
  "version", "n_tensors", "n_kv" and are not listed in "metadata".
* "type" is the GGUF value type name (UINT8 ... FLOAT64, BOOL, STRING, ARRAY).
  Arrays carry "array_type" (element type name, read from the file even for
  empty arrays) and "array_len" but no "value". Scalars carry "value"; strings
  longer than 200 characters carry "len" (length in UTF-8 bytes, as stored in
  the file) and "fnv1a64" (the hash below of those bytes) instead of "value".
  FLOAT32 values are the exact float32 values widened to double (e.g. 1e-05f ->
  9.999999747378752e-06).
* Array contents, every element, as gguf-py reads them: "chunk_fnv1a64" holds
  one hash per run of 8192 elements (the last run may be shorter; an empty
  array has none) of their canonical serialisation, and "samples" 16 evenly
  spaced [index, value] pairs (fewer for short arrays) in plain JSON, plus for
  integer and bool arrays the first index of each distinct value (up to 8).
  Canonical serialisation of one element, the same as the GGUF encoding: a
  string is its UTF-8 byte length as u64 little-endian, then the bytes; a
  number is its value in its GGUF type, little-endian (floats by their bits);
  a bool is one byte, 0 or 1. The hash is 64-bit FNV-1a, written as 16 lower-
  case hex digits: each step XORs in one byte and multiplies by an odd number,
  both bijections of the state, so any one-byte substitution changes it.
* tensor "shape" is in GGML order, ne[0] (the contiguous, fastest-varying
  dimension) first, exactly as the dims are stored in the file. gguf-py's
  ReaderTensor.shape is already this order (it is the raw dims array); only
  ReaderTensor.data is reshaped with the dims reversed (numpy order).
* tensor "offset" is the offset stored in the file, relative to the start of
  the data section. gguf-py's ReaderTensor.data_offset is ABSOLUTE
  (reader.data_offset + stored offset); this script writes the stored value.
* "n_bytes" = n_elements * type_size / block_size (GGML_QUANT_SIZES).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import struct
import sys

try:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
    from gguf.constants import GGML_QUANT_SIZES
except ImportError as exc:  # pragma: no cover
    sys.exit(
        f"error: {exc}\n"
        "install gguf-py first: python3 -m venv .venv && .venv/bin/pip install gguf==0.19.0"
    )

LONG_STRING = 200
HASH_CHUNK = 8192
N_SAMPLES = 16
MAX_DISTINCT_SAMPLES = 8
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
HEADER_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def py_scalar(x):
    """numpy scalar -> plain python value."""
    if isinstance(x, np.generic):
        return x.item()
    return x


def fnv1a64(data: bytes) -> str:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def array_elements(field, item_type: GGUFValueType) -> list:
    """Each element as (canonical bytes, plain JSON value), from gguf-py's parts."""
    if item_type == GGUFValueType.ARRAY:
        raise AssertionError(f"{field.name}: nested arrays are not described")
    out = []
    for idx in field.data:
        part = field.parts[idx]
        if item_type == GGUFValueType.STRING:
            raw = bytes(part)
            out.append((struct.pack("<Q", len(raw)) + raw, raw.decode("utf-8")))
        elif item_type == GGUFValueType.BOOL:
            value = bool(part[0])
            out.append((bytes([value]), value))
        else:
            if len(part) != 1:
                raise AssertionError(f"{field.name}: array element part of {len(part)} values")
            raw = part.astype(part.dtype.newbyteorder("<")).tobytes()
            value = py_scalar(part[0])
            value = float(value) if item_type in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64) else int(value)
            out.append((raw, value))
    return out


def array_contents(field, item_type: GGUFValueType, n: int) -> dict:
    elements = array_elements(field, item_type)
    if len(elements) != n:
        raise AssertionError(f"{field.name}: gguf-py gave {len(elements)} elements, header says {n}")
    chunks = [
        fnv1a64(b"".join(raw for raw, _ in elements[i:i + HASH_CHUNK]))
        for i in range(0, n, HASH_CHUNK)
    ]
    picks = {k * (n - 1) // (N_SAMPLES - 1) for k in range(N_SAMPLES)} if n else set()
    if item_type not in (GGUFValueType.STRING, GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        # Rare values (a token type used by a few control tokens) are worth showing.
        first_of_value: dict = {}
        for i, (_, value) in enumerate(elements):
            first_of_value.setdefault(value, i)
        picks.update(sorted(first_of_value.values())[:MAX_DISTINCT_SAMPLES])
    picks = sorted(picks)
    return {"chunk_fnv1a64": chunks, "samples": [[i, elements[i][1]] for i in picks]}


def metadata_entry(field) -> dict:
    vtype = field.types[0]
    entry: dict = {"key": field.name, "type": vtype.name}
    if vtype == GGUFValueType.ARRAY:
        # parts = [key_len, key_bytes, value_type, array_item_type, array_len, items...]
        # Read the item type from the file: field.types has no sub-type for empty arrays.
        item_type = GGUFValueType(int(field.parts[3][0]))
        entry["array_type"] = item_type.name
        entry["array_len"] = int(field.parts[4][0])
        entry.update(array_contents(field, item_type, entry["array_len"]))
    elif vtype == GGUFValueType.STRING:
        raw = bytes(field.parts[-1])
        text = raw.decode("utf-8")
        if len(text) > LONG_STRING:
            entry["len"] = len(raw)
            entry["fnv1a64"] = fnv1a64(raw)
        else:
            entry["value"] = text
    else:
        value = py_scalar(field.parts[-1][0])
        if vtype == GGUFValueType.BOOL:
            value = bool(value)
        elif vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            value = float(value)
        else:
            value = int(value)
        entry["value"] = value
    return entry


def tensor_entry(reader: GGUFReader, t) -> dict:
    # field.parts = [name_len, name, n_dims, dims, type, offset]
    stored_offset = int(t.field.parts[5][0])
    if int(t.data_offset) != int(reader.data_offset) + stored_offset:
        raise AssertionError(f"{t.name}: ReaderTensor.data_offset is not data section + stored offset")
    if [int(d) for d in t.shape] != [int(d) for d in t.field.parts[3]]:
        raise AssertionError(f"{t.name}: ReaderTensor.shape differs from the stored dims")
    ttype = GGMLQuantizationType(int(t.tensor_type))
    return {
        "name": t.name,
        "type_id": int(ttype),
        "type": ttype.name,
        "shape": [int(d) for d in t.shape],
        "offset": stored_offset,
        "n_bytes": int(t.n_bytes),
    }


# --- independent raw parse, used only as a cross-check ------------------------

_SCALAR_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Raw:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string(self) -> bytes:
        n = self.take("Q")
        s = self.buf[self.pos:self.pos + n]
        self.pos += n
        return s

    def value(self, vtype: int):
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, n = self.take("I"), self.take("Q")
            if itype in _SCALAR_FMT:  # fast path: skip the block
                self.pos += n * struct.calcsize("<" + _SCALAR_FMT[itype])
                return None
            for _ in range(n):
                self.value(itype)
            return None
        return self.take(_SCALAR_FMT[vtype])


def raw_parse(path: str) -> dict:
    """Minimal little-endian GGUF v2/v3 header parse straight from the bytes."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return _raw_parse(_Raw(mm))


def _raw_parse(r: _Raw) -> dict:
    if r.take("I") != 0x46554747:  # b"GGUF"
        raise ValueError("bad magic")
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    alignment = 32
    keys = []
    for _ in range(n_kv):
        key = r.string().decode("utf-8")
        vtype = r.take("I")
        v = r.value(vtype)
        keys.append((key, vtype))
        if key == "general.alignment":
            alignment = v
    tensors = []
    for _ in range(n_tensors):
        name = r.string().decode("utf-8")
        n_dims = r.take("I")
        dims = [r.take("Q") for _ in range(n_dims)]
        ttype, offset = r.take("I"), r.take("Q")
        tensors.append((name, dims, ttype, offset))
    data_offset = (r.pos + alignment - 1) // alignment * alignment
    return {"version": version, "n_tensors": n_tensors, "n_kv": n_kv, "alignment": alignment,
            "data_offset": data_offset, "keys": keys, "tensors": tensors}


def cross_check(path: str, out: dict) -> None:
    raw = raw_parse(path)
    for k in ("version", "n_tensors", "n_kv", "alignment", "data_offset"):
        if raw[k] != out[k]:
            raise AssertionError(f"{k}: raw parse {raw[k]} != gguf-py {out[k]}")
    got_keys = [(m["key"], GGUFValueType[m["type"]].value) for m in out["metadata"]]
    if raw["keys"] != got_keys:
        raise AssertionError("metadata keys/types differ between raw parse and gguf-py")
    got_tensors = [(t["name"], t["shape"], t["type_id"], t["offset"]) for t in out["tensors"]]
    if raw["tensors"] != got_tensors:
        raise AssertionError("tensor infos (name, dims ne[0] first, type, stored offset) differ")
    size = out["size"]
    for t in out["tensors"]:
        start = out["data_offset"] + t["offset"]
        if t["offset"] % out["alignment"] != 0:
            raise AssertionError(f"{t['name']}: offset {t['offset']} not aligned")
        if start + t["n_bytes"] > size:
            raise AssertionError(f"{t['name']}: data runs past end of file")
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(t["type_id"])]
        if t["shape"][0] % block != 0:
            raise AssertionError(f"{t['name']}: ne[0] {t['shape'][0]} not a multiple of block {block}")


# --- output -------------------------------------------------------------------

def dumps_compact(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def render(out: dict) -> str:
    lines = ["{"]
    scalars = [k for k in out if k not in ("metadata", "tensors")]
    for k in scalars:
        lines.append(f"{dumps_compact(k)}:{dumps_compact(out[k])},")
    for i, section in enumerate(("metadata", "tensors")):
        items = out[section]
        lines.append(f"{dumps_compact(section)}:[")
        lines.extend(dumps_compact(it) + ("," if j + 1 < len(items) else "") for j, it in enumerate(items))
        lines.append("]" + ("," if i == 0 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def describe(path: str) -> dict:
    reader = GGUFReader(path, "r")
    f = reader.fields
    out = {
        "file": os.path.basename(path),
        "sha256": sha256_file(path),
        "size": os.path.getsize(path),
        "version": int(f["GGUF.version"].parts[0][0]),
        "n_tensors": int(f["GGUF.tensor_count"].parts[0][0]),
        "n_kv": int(f["GGUF.kv_count"].parts[0][0]),
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": [metadata_entry(fld) for name, fld in f.items() if name not in HEADER_FIELDS],
        "tensors": [tensor_entry(reader, t) for t in reader.tensors],
    }
    if len(out["metadata"]) != out["n_kv"] or len(out["tensors"]) != out["n_tensors"]:
        raise AssertionError("metadata/tensor counts do not match the header")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", help="path to the .gguf file")
    ap.add_argument("output", nargs="?", help="JSON file to write (default: stdout)")
    ap.add_argument("--no-cross-check", action="store_true",
                    help="skip the independent raw-bytes parse that validates gguf-py's view")
    args = ap.parse_args()

    out = describe(args.gguf)
    if not args.no_cross_check:
        cross_check(args.gguf, out)
    text = render(out)
    json.loads(text)  # sanity: the hand-assembled layout is valid JSON
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        types = sorted({t["type"] for t in out["tensors"]})
        print(f"{args.output}: {out['n_kv']} kv, {out['n_tensors']} tensors ({', '.join(types)}), "
              f"data_offset {out['data_offset']}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
