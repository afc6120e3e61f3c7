#!/usr/bin/env bash
# Installs the library as a packager and as a user would, then builds hosts against the
# installed copy alone (never the checkout's target/ or include/):
#
#   1. A staged install (--prefix /usr --destdir): the files, the soname
#      librocmforge.so.<RF_ABI_VERSION> and its link chain, no staging path written into
#      the pkg-config or CMake files, no GPU runtime among the library's needed libraries.
#   2. An install into a temporary prefix, used as a user of that prefix would (an RPATH
#      to its lib, never LD_LIBRARY_PATH):
#      - a C host built with `pkg-config --cflags --libs rocmforge`;
#      - c_examples/CMakeLists.txt (find_package(rocmforge)): simple against the shared
#        and the static library, chat and test_hpp with exceptions and with -fno-exceptions;
#      - a Go module outside the repository that imports the package through a replace,
#        and the package's own tests run from that module.
#      Every `simple`-style host must print llama.cpp's first 16 greedy tokens.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODEL=${MODEL:-$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPT="The three primary colors are"
EXPECTED=$(cat c_examples/tests/expected_simple.txt)
GO_MODULE=$(sed -n 's/^module //p' c_examples/go/go.mod)
ABI=$(sed -n 's/^#define RF_ABI_VERSION \([0-9]*\)$/\1/p' include/rocmforge.h)
unset LD_LIBRARY_PATH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "test-install: $*" >&2
    exit 1
}

# $1 printed $2, which must be llama.cpp's continuation of the prompt.
expect_llama() {
    [ "$2" = "$EXPECTED" ] || fail "$1 printed:"$'\n'"$2"$'\n'"expected (llama.cpp):"$'\n'"$EXPECTED"
    echo "$1: matches llama.cpp's first 16 greedy tokens"
}

# Program $1 loads librocmforge.so.ABI from directory $2.
expect_linked_from() {
    local loads
    loads=$(ldd "$1")
    grep -q "librocmforge\.so\.$ABI => $2/librocmforge\.so\.$ABI " <<<"$loads" ||
        fail "$1 does not load librocmforge.so.$ABI from $2:"$'\n'"$loads"
}

# Runs $2... and keeps its output in $work/$1.log, shown only when it fails.
quietly() {
    local log="$work/$1.log"
    shift
    "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "failed: $*"; }
}

# ------------------------------------------------------------ 1. a packager's install
stage=$work/stage
scripts/install.sh --prefix /usr --destdir "$stage"
lib=$stage/usr/lib
real=$(readlink "$lib/librocmforge.so.$ABI") || fail "no link librocmforge.so.$ABI"
[[ $real =~ ^librocmforge\.so\.$ABI\.[0-9]+\.[0-9]+$ ]] ||
    fail "librocmforge.so.$ABI points to '$real', not librocmforge.so.$ABI.MINOR.PATCH"
[ "$(readlink "$lib/librocmforge.so")" = "librocmforge.so.$ABI" ] ||
    fail "librocmforge.so does not point to librocmforge.so.$ABI"
[ -f "$lib/$real" ] && [ ! -L "$lib/$real" ] || fail "$real is not the library file"
soname=$(scripts/soname.sh "$lib/$real")
[ "$soname" = "librocmforge.so.$ABI" ] ||
    fail "the soname is $soname, but the header's RF_ABI_VERSION is $ABI"
for file in include/rocmforge.h include/rocmforge.hpp lib/librocmforge.a \
    lib/pkgconfig/rocmforge.pc lib/cmake/rocmforge/rocmforgeConfig.cmake \
    lib/cmake/rocmforge/rocmforgeConfigVersion.cmake; do
    [ -f "$stage/usr/$file" ] || fail "not installed: /usr/$file"
done
if grep -rlF "$stage" "$lib/pkgconfig" "$lib/cmake"; then
    fail "the files above name the staging directory"
fi
[ "$(PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --variable=prefix rocmforge)" = /usr ] ||
    fail "rocmforge.pc's prefix is not /usr"
needed=$(readelf -d "$lib/$real" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | tr '\n' ' ')
loads=$(ldd "$lib/$real")
if grep -Ei 'amdhip|hiprtc|hsa-runtime|libcuda|cudart|nvrtc' <<<"$loads"; then
    fail "the library links a GPU runtime (it must load them at run time)"
fi
echo "staged install: $real, soname $soname, links; needs only: $needed"

# ---------------------------------------------------------- 2. a user's prefix install
prefix=$work/prefix
scripts/install.sh --prefix "$prefix" --no-build >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
libdir=$(pkg-config --variable=libdir rocmforge)

# shellcheck disable=SC2046 # pkg-config's output is a list of flags
cc -std=c11 -Wall -Wextra -Werror -pedantic c_examples/simple.c -o "$work/simple" \
    $(pkg-config --cflags --libs rocmforge) -Wl,-rpath,"$libdir"
expect_linked_from "$work/simple" "$libdir"
expect_llama "C host (pkg-config)" "$("$work/simple" "$MODEL" "$PROMPT" 16)"

cmake_build=$work/cmake
quietly cmake-configure cmake -S c_examples -B "$cmake_build" -DCMAKE_PREFIX_PATH="$prefix"
quietly cmake-build cmake --build "$cmake_build" --parallel 2
expect_linked_from "$cmake_build/simple" "$libdir"
expect_llama "CMake simple (rocmforge::rocmforge)" "$("$cmake_build/simple" "$MODEL" "$PROMPT" 16)"
loads=$(ldd "$cmake_build/simple_static")
if grep librocmforge <<<"$loads"; then
    fail "simple_static loads librocmforge.so"
fi
expect_llama "CMake simple_static (rocmforge::rocmforge_static)" \
    "$("$cmake_build/simple_static" "$MODEL" "$PROMPT" 16)"
[ "$("$cmake_build/test_hpp" "$MODEL")" = "test_hpp (exceptions): ok" ] || fail "test_hpp"
[ "$("$cmake_build/test_hpp_noexcept" "$MODEL")" = "test_hpp (-fno-exceptions): ok" ] ||
    fail "test_hpp_noexcept"
for chat in chat chat_noexcept; do
    "$cmake_build/$chat" "$MODEL" "What are the three primary colors?" 16 >/dev/null
done
echo "CMake: test_hpp and chat pass with exceptions and with -fno-exceptions"

gohost=$work/gohost
mkdir "$gohost"
cp scripts/install-test/gohost/main.go "$gohost/"
cat >"$gohost/go.mod" <<EOF
module example.com/gohost

go 1.19

require $GO_MODULE v0.0.0

replace $GO_MODULE => $ROOT/c_examples/go
EOF
(
    cd "$gohost"
    export GOPROXY=off CGO_LDFLAGS="-Wl,-rpath,$libdir"
    # Its compiler and linker flags come from pkg-config alone, none from the checkout.
    flags=$(go list -f '{{.CgoPkgConfig}} {{.CgoCFLAGS}} {{.CgoLDFLAGS}}' "$GO_MODULE")
    [ "$flags" = "[rocmforge] [] []" ] ||
        fail "the Go package's cgo flags are '$flags', not pkg-config's alone"
    go build -o gohost .
    go vet "$GO_MODULE"
    go test -count=1 "$GO_MODULE"
)
expect_linked_from "$gohost/gohost" "$libdir"
expect_llama "Go module outside the repository" "$("$gohost/gohost" "$MODEL" "$PROMPT" 16)"
