#!/usr/bin/env bash
# The project's test command: fetch the test models, check formatting and lints, run
# every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-models.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
