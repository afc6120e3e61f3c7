#!/usr/bin/env bash
# Install the GPU kernel compilers that build.rs looks for, so that a machine without a
# GPU (a developer's, CI's) still compiles and embeds every kernel:
#
#   AMD:    Debian's hipcc (ROCm 5.2; targets gfx90a and gfx1030) from apt.
#   NVIDIA: nvcc 13.0 from PyPI wheels into <repo>/.venv-cuda (git-ignored). 13.0 matches
#           the GPU machines' driver: a fatbin from a newer nvcc needs a newer driver.
#
# build.rs finds hipcc on PATH (or ROCMFORGE_HIPCC / HIP_PATH / ROCM_PATH) and nvcc in
# <repo>/.venv-cuda (or ROCMFORGE_NVCC / CUDA_PATH / PATH), so nothing needs exporting.
# Both steps do nothing when their compiler is already installed.
#
#   scripts/install-gpu-compilers.sh          # both
#   scripts/install-gpu-compilers.sh hip      # only hipcc
#   scripts/install-gpu-compilers.sh cuda     # only nvcc
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROCMFORGE_CUDA_VENV:-$REPO_ROOT/.venv-cuda}"
PYTHON="${PYTHON:-python3}"
WHAT="${1:-all}"

CUDA_PACKAGES=(
    "nvidia-cuda-nvcc==13.0.88"
    "nvidia-cuda-crt==13.0.88"
    "nvidia-nvvm==13.0.88"
    "nvidia-cuda-runtime==13.0.96"
    "nvidia-cuda-cccl==13.0.*"
)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_hip() {
    if command -v hipcc >/dev/null 2>&1; then
        echo "hipcc: already installed ($(command -v hipcc))"
        return
    fi
    as_root apt-get update
    # --no-install-recommends keeps out the ROCm documentation and tools we don't use.
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends hipcc libamdhip64-dev
    echo "hipcc: installed ($(command -v hipcc))"
}

find_nvcc() {
    compgen -G "$VENV/lib/python3*/site-packages/nvidia/cu13/bin/nvcc" | head -n 1
}

install_cuda() {
    if [ -n "$(find_nvcc || true)" ]; then
        echo "nvcc: already installed ($(find_nvcc))"
        return
    fi
    # nvcc preprocesses and compiles the host side with the system's C++ compiler, even
    # for -fatbin.
    if ! command -v g++ >/dev/null 2>&1; then
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++
    fi
    # Debian's own python3 needs python3-venv for ensurepip; pyenv's has it built in.
    if ! "$PYTHON" -m venv --clear "$VENV" >/dev/null 2>&1; then
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
        "$PYTHON" -m venv --clear "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --no-input "${CUDA_PACKAGES[@]}"
    local nvcc
    nvcc="$(find_nvcc)"
    if [ -z "$nvcc" ]; then
        echo "nvcc: the wheels installed but no nvidia/cu13/bin/nvcc appeared under $VENV" >&2
        exit 1
    fi
    echo "nvcc: installed ($nvcc)"
}

case "$WHAT" in
    all) install_hip; install_cuda ;;
    hip) install_hip ;;
    cuda) install_cuda ;;
    *) echo "usage: $0 [all|hip|cuda]" >&2; exit 2 ;;
esac
