#!/usr/bin/env bash
# Runs the C tests and examples built in $1 against the model $2, each under $RUNNER
# (empty, or e.g. valgrind). Unless SKIP_SIMPLE is set (for a model other than SmolLM2),
# the `simple` example must print the same first 16 greedy tokens as llama.cpp
# (tests/expected_simple.txt).
set -euo pipefail
build=$1
model=$2
runner=${RUNNER:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for t in test_null_args test_threads test_cancel test_params test_limits test_generate test_stress test_cycles; do
    $runner "$build/$t" "$model"
done
$runner "$build/devices"
$runner "$build/batch" "$model"
$runner "$build/chat" "$model" "What are the three primary colors?" 16 >/dev/null
[ -n "${SKIP_SIMPLE:-}" ] && exit 0

out=$($runner "$build/simple" "$model" "The three primary colors are" 16)
expected=$(cat "$here/tests/expected_simple.txt")
if [ "$out" != "$expected" ]; then
    printf 'simple printed:\n%s\nexpected (llama.cpp):\n%s\n' "$out" "$expected" >&2
    exit 1
fi
echo "simple: matches llama.cpp's first 16 greedy tokens"
