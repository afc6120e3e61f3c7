#!/usr/bin/env bash
# Runs the C tests and examples built in $1 against the model $2, each under $RUNNER
# (empty, or e.g. valgrind); test_state also reads $3, a model of another shape. Unless SKIP_SIMPLE is set (for a model other than SmolLM2),
# the `simple` example must print the same first 16 greedy tokens as llama.cpp
# (tests/expected_simple.txt), and with $GEMMA3 naming Gemma 3 270M, that model's too
# (tests/expected_simple_gemma3.txt).
set -euo pipefail
build=$1
model=$2
other_model=$3
runner=${RUNNER:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for t in test_null_args test_threads test_cancel test_params test_limits test_generate test_stress test_cycles; do
    $runner "$build/$t" "$model"
done
$runner "$build/test_state" "$model" "$other_model"
$runner "$build/devices"
$runner "$build/batch" "$model"
$runner "$build/chat" "$model" "What are the three primary colors?" 16 >/dev/null

# npc: the first run encodes and saves the persona, the second restores it; every answer
# is JSON with the action schema's fields and enums.
npc_dir=$(mktemp -d)
trap 'rm -rf "$npc_dir"' EXIT
$runner "$build/npc" "$model" "$npc_dir/persona.state" >"$npc_dir/first.txt"
$runner "$build/npc" "$model" "$npc_dir/persona.state" "Can you fix my shield?" \
    >"$npc_dir/second.txt" 2>"$npc_dir/second.log"
grep -q "persona restored" "$npc_dir/second.log"
python3 - "$npc_dir/first.txt" "$npc_dir/second.txt" <<'EOF'
import json, sys
answers = [line[len("npc: "):] for path in sys.argv[1:] for line in open(path)
           if line.startswith("npc: ")]
assert len(answers) == 3, answers
for text in answers:
    action = json.loads(text)
    assert set(action) == {"say", "mood", "action", "offers"}, text
    assert action["mood"] in ("friendly", "wary", "angry", "afraid"), text
    assert action["action"]["target"] in ("player", "guard", "nobody"), text
    assert all(0 <= offer["price"] <= 999 for offer in action["offers"]), text
print("npc: 3 answers parse and keep to the action schema; the persona state was restored")
EOF
[ -n "${SKIP_SIMPLE:-}" ] && exit 0

# `simple` on model $1 must print tests/$2, llama.cpp's first 16 greedy tokens.
check_simple() {
    local out expected
    out=$($runner "$build/simple" "$1" "The three primary colors are" 16)
    expected=$(cat "$here/tests/$2")
    if [ "$out" != "$expected" ]; then
        printf 'simple on %s printed:\n%s\nexpected (llama.cpp):\n%s\n' "$1" "$out" "$expected" >&2
        exit 1
    fi
    echo "simple: matches llama.cpp's first 16 greedy tokens on $(basename "$1")"
}
check_simple "$model" expected_simple.txt
if [ -n "${GEMMA3:-}" ]; then
    check_simple "$GEMMA3" expected_simple_gemma3.txt
fi
