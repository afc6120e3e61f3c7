#!/usr/bin/env bash
# The project's test command: fetch the test models, check formatting and lints, run
# every Rust test, then the C, C++ and Go hosts against the built library, plain, under
# AddressSanitizer + UBSan, and under valgrind memcheck. CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The GPU kernels compiled once for every build below (build.rs), not once a build.
export ROCMFORGE_KERNEL_CACHE="${ROCMFORGE_KERNEL_CACHE:-$PWD/target/kernel-cache}"

# The tests that need a GPU are #[ignore]d, so this machine counts them as ignored, never
# as passed; they run on a GPU machine from scripts/build-gpu-bundle.sh's bundle. Says how
# many were left out here.
gpu_skipped() {
    local targets=(--test forward_tiny_models) source
    for source in tests/gpu_*.rs; do
        targets+=(--test "$(basename "$source" .rs)")
    done
    local listed
    listed=$(cargo test --release --quiet "${targets[@]}" -- --list --ignored --format terse)
    echo "GPU tests skipped (ignored here; run them with scripts/build-gpu-bundle.sh):" \
        "$(grep -c ': test$' <<<"$listed" || true)"
}

scripts/fetch-models.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
gpu_skipped

# The hosts link the library built without test features: before the tests that need
# them, which rebuild it.
cargo build --release --lib
make -C c_examples test
make -C c_examples sanitize
make -C c_examples valgrind
make -C c_examples go
# Installed as a packager and a user would: pkg-config, CMake and Go hosts against the copy.
scripts/test-install.sh

# The test-only features, in one build: neither acts unless its test asks.
cargo test --release --features panic-test,fault-injection --test ffi_panic \
    --test ffi_worker_panic --test ffi_reentrant_panic --test host_allocation_failures
scripts/fuzz.sh --ci
