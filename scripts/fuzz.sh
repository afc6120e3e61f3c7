#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets, cargo-fuzz + libFuzzer, AddressSanitizer,
# debug assertions) for a fixed time each, one after another, starting from the committed
# seeds (fuzz/seeds/<target>), the committed inputs of past finds (fuzz/found/<target>)
# and the corpus earlier runs left (fuzz/corpus/<target>, not committed). Prints each target's executions, coverage and corpus size, and fails
# listing the reproducer of any crash, leak, timeout or out-of-memory (fuzz/artifacts/).
#
#   scripts/fuzz.sh                   every target for 1800 s (30 CPU-minutes) each
#   scripts/fuzz.sh --ci              every target for 30 s each, after checking the fuzz
#                                     crate's formatting and lints: CI's bounded run
#   scripts/fuzz.sh -t 300 decode     one target for 300 s
#
# Replay a crash: cargo +nightly fuzz run -a <target> fuzz/artifacts/<target>/<file>
# (RUSTC_BOOTSTRAP=1 cargo fuzz ... where only a stable toolchain is installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=1800
ci=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ci) seconds=30; ci=1 ;;
        -t | --time) seconds="$2"; shift ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
    exit 1
fi
# The sanitizer flags are unstable: a nightly toolchain, or a stable one told to accept
# them (RUSTC_BOOTSTRAP=1), which is the same compiler without the gate. Listed, not
# invoked: asking rustup for a missing toolchain may set it downloading.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
    echo "fuzz.sh: $(rustc +nightly --version)"
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    echo "fuzz.sh: no nightly toolchain; $(rustc --version) with RUSTC_BOOTSTRAP=1"
fi

# The targets run on the CPU: no GPU kernels to compile.
export ROCMFORGE_HIPCC=none ROCMFORGE_NVCC=none
unset ROCMFORGE_REQUIRE_KERNELS

# CI holds the fuzz crate to the project's formatting and lints too.
if [ "$ci" -eq 1 ]; then
    cargo fmt --manifest-path fuzz/Cargo.toml --check
    cargo clippy --quiet --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
fi

if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi
build=(--release --debug-assertions --sanitizer address)
"${fuzz[@]}" build "${build[@]}"

mkdir -p fuzz/logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="fuzz/logs/$target.log"
    options=(
        -max_total_time="$seconds"
        # One input may take this long before it counts as a hang.
        -timeout=25
        -rss_limit_mb=4096
        -print_final_stats=1
        -artifact_prefix="fuzz/artifacts/$target/"
    )
    if [ -f "fuzz/dict/$target.dict" ]; then
        options+=(-dict="fuzz/dict/$target.dict")
    fi
    echo "fuzz.sh: $target for ${seconds} s"
    status=0
    corpora=("fuzz/corpus/$target" "fuzz/seeds/$target")
    if [ -d "fuzz/found/$target" ]; then
        corpora+=("fuzz/found/$target")
    fi
    "${fuzz[@]}" run "${build[@]}" "$target" "${corpora[@]}" \
        -- "${options[@]}" >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | tail -1 || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | tail -1 || true)
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    echo "fuzz.sh: $target: ${runs:-?} executions in ${seconds} s, ${cov:-cov: ?} edges," \
        "${ft:-ft: ?} features, corpus $corpus files (log: $log)"
    if [ "$status" -ne 0 ]; then
        grep -E -A2 '^panic: |panicked at|ERROR: (Address|Leak)Sanitizer|ERROR: libFuzzer' "$log" \
            | head -20 || true
        grep -E 'SUMMARY|Test unit written' "$log" | head -5 || true
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (reproducers under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds} s each, 0 crashes"
