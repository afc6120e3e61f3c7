#!/usr/bin/env bash
# Writes the fuzz targets' committed seed corpora, fuzz/seeds/<target>/, from the
# scenarios in fuzz/examples/gen_seeds (tiny models and vocabularies built with the
# library's own GGUF writer). Deterministic: run it after changing an input format or a
# scenario, and commit what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The seeds need no GPU kernels.
export ROCMFORGE_HIPCC=none ROCMFORGE_NVCC=none
unset ROCMFORGE_REQUIRE_KERNELS

rm -rf fuzz/seeds
cargo run --quiet --release --manifest-path fuzz/Cargo.toml --example gen_seeds -- fuzz/seeds
for dir in fuzz/seeds/*/; do
    echo "$(basename "$dir"): $(find "$dir" -type f | wc -l) seeds, $(cat "$dir"* | wc -c) bytes"
done
