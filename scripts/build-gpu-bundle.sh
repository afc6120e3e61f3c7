#!/usr/bin/env bash
# Build what a GPU machine without a Rust toolchain needs into one git-ignored folder:
# the release library, the release binaries (the benches among them), every GPU test
# (tests/gpu_*.rs and the every-backend tests) as a standalone executable, and a runner
# script, packed into FOLDER.tar.xz.
#
#   scripts/build-gpu-bundle.sh [FOLDER [TEST...]]   # default: dist/gpu, every GPU test
#
# Then copy FOLDER.tar.xz to the GPU machine (with the device tool: carry it), unpack it
# into a folder B (mkdir -p B && tar -xJf FOLDER.tar.xz -C B) and run
#   B/run.sh [--sanitize] [--log-dir DIR]
# which runs the GPU tests that a plain `cargo test` ignores (--include-ignored), or
#   B/gpu-bench.sh [--rows smol] [--only Q4_0] [--out FILE]
# which writes the PEERS.md benchmark models there and times them (scripts/gpu-bench.sh);
# its vocab.gguf is a one-layer model carrying SmolLM2's tokenizer (a few MB, not the model).
#
# ROCMFORGE_BUNDLE_VARIANTS="NAME=REV ..." adds, for each, the rocmforge-bench of git
# revision REV (a branch, a commit) as FOLDER/variants/NAME/rocmforge-bench, which
# `gpu-bench.sh --variants NAME,...` times side by side with the bundle's own.
#
# The kernels are embedded in the binaries, so build where the GPU compilers are
# installed (scripts/install-gpu-compilers.sh); ROCMFORGE_REQUIRE_KERNELS=1 is set here so
# a bundle without kernels is never produced by accident.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
BUNDLE="${1:-dist/gpu}"
# Above this the packed bundle no longer fits the device tool's 64 MiB transfer with room
# to spare.
MAX_BYTES=$((56 * 1024 * 1024))
export ROCMFORGE_REQUIRE_KERNELS="${ROCMFORGE_REQUIRE_KERNELS:-1}"
# The kernels compiled once for this build and for every variant whose kernels are the
# same (build.rs), in the directory scripts/test.sh's builds use too.
export ROCMFORGE_KERNEL_CACHE="${ROCMFORGE_KERNEL_CACHE:-$REPO_ROOT/target/kernel-cache}"

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
# Every tests/gpu_*.rs that needs a GPU and the tests that run the same checks on every
# backend present, or only the tests named after FOLDER.
test_args=()
if [ $# -gt 1 ]; then
    for name in "${@:2}"; do test_args+=(--test "$name"); done
else
    test_args=(--test forward_tiny_models --test model_device)
    for source in tests/gpu_*.rs; do
        name="$(basename "$source" .rs)"
        # It reads the checkout's kernels/ folder and needs no GPU: CI runs it.
        [ "$name" = gpu_kernels_embedded ] || test_args+=(--test "$name")
    done
fi
cargo test --release --no-run "${test_args[@]}" --message-format=json-render-diagnostics \
    | executables test >"$BUNDLE/.tests"
while read -r name path; do
    copy_stripped "$path" "$BUNDLE/tests/$name"
done <"$BUNDLE/.tests"
rm -f "$BUNDLE/.bins" "$BUNDLE/.tests"

echo "== variant benches"
# Each revision is built in a worktree of its own, with a target folder all of them share
# (so a variant rebuilds little more than this crate) and this checkout's GPU compilers.
if [ -z "${ROCMFORGE_NVCC:-}" ]; then
    for nvcc in .venv-cuda/lib/python3.*/site-packages/nvidia/cu13/bin/nvcc; do
        [ -x "$nvcc" ] && export ROCMFORGE_NVCC="$REPO_ROOT/$nvcc"
    done
fi
VARIANT_TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/bundle-variants"
for variant in ${ROCMFORGE_BUNDLE_VARIANTS:-}; do
    name="${variant%%=*}" revision="${variant#*=}"
    if [ -z "$name" ] || [ "$name" = "$variant" ]; then
        echo "ROCMFORGE_BUNDLE_VARIANTS: '$variant' is not NAME=REV" >&2
        exit 1
    fi
    tree="$(mktemp -d)"
    git worktree add --quiet --detach "$tree" "$revision"
    trap 'git worktree remove --force "$tree"' EXIT
    (cd "$tree" && CARGO_TARGET_DIR="$VARIANT_TARGET" cargo build --release --bin rocmforge-bench)
    mkdir -p "$BUNDLE/variants/$name"
    copy_stripped "$VARIANT_TARGET/release/rocmforge-bench" "$BUNDLE/variants/$name/rocmforge-bench"
    git -C "$tree" rev-parse HEAD >"$BUNDLE/variants/$name/COMMIT"
    git worktree remove --force "$tree"
    trap - EXIT
done

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

ls -la "$BUNDLE"/*/
echo "== packing $BUNDLE.tar.xz"
# Every executable embeds the same kernels (most of its size): one thread and a dictionary
# larger than an executable let each copy after the first pack to a reference (a bundle of
# every GPU test: 13 MiB, not 105).
tar -C "$BUNDLE" -cf - . | xz -T1 --lzma2=preset=6,dict=192MiB >"$BUNDLE.tar.xz"
bytes=$(stat -c %s "$BUNDLE.tar.xz")
echo "== $BUNDLE.tar.xz: $((bytes / 1024 / 1024)) MiB ($(du -sm "$BUNDLE" | cut -f1) MiB unpacked)"
if [ "$bytes" -gt "$MAX_BYTES" ]; then
    echo "the packed bundle is larger than $((MAX_BYTES / 1024 / 1024)) MiB: name fewer tests" >&2
    exit 1
fi
