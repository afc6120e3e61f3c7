#!/usr/bin/env bash
# The project's test command: fetch the test models, check formatting and lints, run
# every Rust test, then the C, C++ and Go hosts against the built library, plain, under
# AddressSanitizer + UBSan, and under valgrind memcheck. CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-models.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
cargo test --release --features panic-test --test ffi_panic

# The hosts link the library built without test features.
cargo build --release --lib
make -C c_examples test
make -C c_examples sanitize
make -C c_examples valgrind
make -C c_examples go
