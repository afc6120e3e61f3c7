#!/usr/bin/env bash
# Build what a GPU machine without a Rust toolchain needs into one git-ignored folder:
# the release library, the release binaries (the benches among them), every GPU test
# (tests/gpu_*.rs and the every-backend tests) as a standalone executable, and a runner
# script.
#
#   scripts/build-gpu-bundle.sh [FOLDER [TEST...]]   # default: dist/gpu, every GPU test
#
# Then copy FOLDER to the GPU machine (with the device tool: carry it) and run
#   FOLDER/run.sh [--sanitize] [--log-dir DIR]
# which runs the GPU tests that a plain `cargo test` ignores (--include-ignored), or
#   FOLDER/gpu-bench.sh [--rows smol] [--only Q4_0] [--out FILE]
# which writes the PEERS.md benchmark models there and times them (scripts/gpu-bench.sh);
# its vocab.gguf is a one-layer model carrying SmolLM2's tokenizer (a few MB, not the model).
# The kernels are embedded in the binaries, so build where the GPU compilers are
# installed (scripts/install-gpu-compilers.sh); ROCMFORGE_REQUIRE_KERNELS=1 is set here so
# a bundle without kernels is never produced by accident.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
BUNDLE="${1:-dist/gpu}"
# Above this the bundle no longer fits the device tool's 64 MiB transfer with room to spare.
MAX_BYTES=$((56 * 1024 * 1024))
export ROCMFORGE_REQUIRE_KERNELS="${ROCMFORGE_REQUIRE_KERNELS:-1}"

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/lib" "$BUNDLE/bin" "$BUNDLE/tests"

# "NAME PATH" of each executable of target kind $1 (bin, test) that cargo reports building.
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if (message.get("reason") == "compiler-artifact" and message.get("executable")
            and sys.argv[1] in message["target"]["kind"]):
        print(message["target"]["name"] + " " + message["executable"])
' "$1"
}

# Debug info is most of each file's size; the symbol table stays, so backtraces and
# sanitizer reports still name functions.
copy_stripped() {
    cp "$1" "$2"
    strip --strip-debug "$2"
}

echo "== release library and binaries"
cargo build --release --lib --bins --message-format=json-render-diagnostics \
    | executables bin >"$BUNDLE/.bins"
copy_stripped "${CARGO_TARGET_DIR:-target}/release/librocmforge.so" "$BUNDLE/lib/librocmforge.so"
while read -r name path; do
    copy_stripped "$path" "$BUNDLE/bin/$name"
done <"$BUNDLE/.bins"

echo "== GPU test executables"
# Every tests/gpu_*.rs and the tests that run the same checks on every backend present,
# or only the tests named after FOLDER (a bundle of all of them outgrows one transfer).
test_args=()
if [ $# -gt 1 ]; then
    for name in "${@:2}"; do test_args+=(--test "$name"); done
else
    test_args=(--test forward_tiny_models --test model_device)
    for source in tests/gpu_*.rs; do
        test_args+=(--test "$(basename "$source" .rs)")
    done
fi
cargo test --release --no-run "${test_args[@]}" --message-format=json-render-diagnostics \
    | executables test >"$BUNDLE/.tests"
while read -r name path; do
    copy_stripped "$path" "$BUNDLE/tests/$name"
done <"$BUNDLE/.tests"
rm -f "$BUNDLE/.bins" "$BUNDLE/.tests"

cp scripts/gpu-bundle/run.sh "$BUNDLE/run.sh"
cp scripts/gpu-bench.sh "$BUNDLE/gpu-bench.sh"
chmod +x "$BUNDLE/run.sh" "$BUNDLE/gpu-bench.sh"

echo "== vocabulary carrier for gpu-bench.sh"
VOCAB_SOURCE=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$VOCAB_SOURCE" ] || scripts/fetch-models.sh smollm2
"$BUNDLE/bin/rocmforge-synth" --vocab-from "$VOCAB_SOURCE" -o "$BUNDLE/vocab.gguf" \
    --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 2 --n-ff 128 --type Q4_0 --pure --tied
git rev-parse HEAD >"$BUNDLE/COMMIT" 2>/dev/null || true
git status --short >>"$BUNDLE/COMMIT" 2>/dev/null || true

bytes=$(du -sb "$BUNDLE" | cut -f1)
echo "== $BUNDLE: $((bytes / 1024 / 1024)) MiB"
ls -la "$BUNDLE"/*/
if [ "$bytes" -gt "$MAX_BYTES" ]; then
    echo "the bundle is larger than $((MAX_BYTES / 1024 / 1024)) MiB: name fewer tests" >&2
    exit 1
fi
