#!/usr/bin/env bash
# Runs the GPU tests of a bundle made by scripts/build-gpu-bundle.sh, on a machine with a
# GPU and no Rust toolchain. The tests that need a GPU are #[ignore]d in a plain `cargo test`
# (a machine without one counts them as ignored, never as passed); here every test runs
# with --include-ignored, and one that finds no usable GPU fails. The tests named two_gpus_*
# need two GPUs: on a machine with fewer they are skipped, and the summary says so.
#
#   ./run.sh                         each test executable once
#   ./run.sh --sanitize              then under compute-sanitizer: memcheck (with leak
#                                    check) on every test; racecheck, synccheck and
#                                    initcheck on the kernel tests
#   ./run.sh --log-dir DIR           logs there (default: ./logs), one file per pass
#
# The last line is the overall "N passed, N failed" count; the exit status is non-zero
# when anything failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_DIR="$HERE/logs"
SANITIZE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --sanitize) SANITIZE=1 ;;
        --log-dir) LOG_DIR="$2"; shift ;;
        *) echo "usage: $0 [--sanitize] [--log-dir DIR]" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$LOG_DIR"
export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
SUMMARY="$LOG_DIR/summary.txt"
: >"$SUMMARY"
PASSED=0
FAILED=0

note() { echo "$*" | tee -a "$SUMMARY"; }

# run NAME LOG COMMAND...: one test executable (or sanitizer around it), counted.
run() {
    local name="$1" log="$2"
    shift 2
    local output="$LOG_DIR/.last"
    local start=$SECONDS
    "$@" >"$output" 2>&1
    local status=$?
    { echo "===== $name: $*"; cat "$output"; } >>"$log"
    local tests
    tests=$(grep -E '^test result:' "$output" | tail -n 1)
    if [ $status -eq 0 ]; then
        PASSED=$((PASSED + 1))
        note "PASS $name ($((SECONDS - start)) s) $tests"
    else
        FAILED=$((FAILED + 1))
        note "FAIL $name (exit $status, $((SECONDS - start)) s) $tests"
    fi
}

note "host: $(uname -n), $(date -u +%FT%TZ)"
command -v nvidia-smi >/dev/null && note "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
[ -f "$HERE/COMMIT" ] && note "bundle: $(head -n 1 "$HERE/COMMIT")"

GPUS=$({ nvidia-smi -L || rocm-smi --showid; } 2>/dev/null | grep -c '^GPU')
SKIP=()
if [ "$GPUS" -lt 2 ]; then
    SKIP=(--skip two_gpus_)
    note "SKIP the two_gpus_* tests: $GPUS GPU(s) listed on this machine"
fi

for test in "$HERE"/tests/*; do
    run "$(basename "$test")" "$LOG_DIR/tests.log" "$test" --include-ignored --test-threads=1 \
        --nocapture "${SKIP[@]}"
done

if [ $SANITIZE -eq 1 ]; then
    if ! command -v compute-sanitizer >/dev/null; then
        note "FAIL compute-sanitizer not found"
        FAILED=$((FAILED + 1))
    else
        note "$(compute-sanitizer --version | tail -n 1)"
        # A bound per run, so one hang cannot eat the whole session on the machine.
        SANITIZER=(timeout 300 compute-sanitizer --error-exitcode 99 --print-limit 50)
        for test in "$HERE"/tests/*; do
            name="$(basename "$test")"
            case "$name" in
                # Reads the embedded code objects only: no device call for the sanitizer
                # to watch (which it reports as an error).
                gpu_kernels_embedded) continue ;;
                # Faults a kernel on purpose: exactly what memcheck reports.
                gpu_device_lost) continue ;;
            esac
            # `provoked_*` tests fail vendor calls on purpose: they run with API errors
            # unreported, everything else with them reported, but for the collectives:
            # NCCL probes the devices with calls that fail by design (no kernel image of
            # its other architectures, peer access already enabled). Memory errors are
            # reported everywhere.
            api=()
            [ "$name" = gpu_collectives ] && api=(--report-api-errors no)
            run "memcheck $name" "$LOG_DIR/memcheck.log" \
                "${SANITIZER[@]}" --tool memcheck --leak-check full "${api[@]}" \
                "$test" --include-ignored --test-threads=1 --skip provoked_ "${SKIP[@]}"
            if "$test" --list 2>/dev/null | grep -q '^provoked_'; then
                run "memcheck $name (provoked_*)" "$LOG_DIR/memcheck.log" \
                    "${SANITIZER[@]}" --tool memcheck --leak-check full --report-api-errors no \
                    "$test" --include-ignored --test-threads=1 provoked_
            fi
        done
        for tool in racecheck synccheck initcheck; do
            run "$tool gpu_kernels" "$LOG_DIR/$tool.log" \
                "${SANITIZER[@]}" --tool "$tool" "$HERE/tests/gpu_kernels" \
                --include-ignored --test-threads=1 --skip provoked_
        done
        grep -h "ERROR SUMMARY\|LEAK SUMMARY\|RACECHECK SUMMARY" "$LOG_DIR"/*check.log \
            | sort | uniq -c | tee -a "$SUMMARY"
    fi
fi

rm -f "$LOG_DIR/.last"
note "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]
