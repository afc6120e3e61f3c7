#!/usr/bin/env bash
# Builds librocmforge (release) and installs it as a C library:
#
#   PREFIX/lib/librocmforge.so.A.M.P          the shared library, soname librocmforge.so.A
#   PREFIX/lib/librocmforge.so.A -> .so.A.M.P  what the dynamic loader looks for
#   PREFIX/lib/librocmforge.so   -> .so.A      what the linker's -lrocmforge finds
#   PREFIX/lib/librocmforge.a                 the static library
#   PREFIX/include/rocmforge.h, rocmforge.hpp
#   PREFIX/lib/pkgconfig/rocmforge.pc
#   PREFIX/lib/cmake/rocmforge/rocmforgeConfig.cmake, rocmforgeConfigVersion.cmake
#
# A is the C ABI version (RF_ABI_VERSION, rf_abi_version()); M.P are the minor and patch of
# the release (Cargo.toml's version), so release 0.1.0 of ABI 1 is librocmforge.so.1.1.0.
#
#   scripts/install.sh [--prefix DIR] [--libdir DIR] [--includedir DIR] [--destdir DIR]
#                      [--no-build]
#
# --prefix defaults to /usr/local, --libdir to PREFIX/lib, --includedir to PREFIX/include.
# --destdir (or DESTDIR) stages the files under DIR for a package; the installed files name
# PREFIX, never the staging directory. --no-build installs target/release as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

prefix=/usr/local
libdir=
includedir=
destdir=${DESTDIR:-}
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --libdir) libdir=$2; shift 2 ;;
        --includedir) includedir=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "install.sh: unknown argument '$1' (see the comment at the top)" >&2; exit 2 ;;
    esac
done
for dir in "$prefix" "${libdir:-/}" "${includedir:-/}"; do
    case "$dir" in
        /*) ;;
        *) echo "install.sh: '$dir' must be an absolute path" >&2; exit 2 ;;
    esac
done
prefix=${prefix%/}
libdir=${libdir:-$prefix/lib}
includedir=${includedir:-$prefix/include}

if [ "$build" = 1 ]; then
    (cd "$ROOT" && cargo build --release --lib)
fi
built="$ROOT/target/release"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
description=$(sed -n 's/^description = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
IFS=. read -r major minor patch <<<"${version%%[-+]*}"
soname=$("$ROOT/scripts/soname.sh" "$built/librocmforge.so")
abi=${soname#librocmforge.so.}
header_abi=$(sed -n 's/^#define RF_ABI_VERSION \([0-9]*\)$/\1/p' "$ROOT/include/rocmforge.h")
if [ "$abi" != "$header_abi" ]; then
    echo "install.sh: the library's soname is $soname but include/rocmforge.h says" \
        "RF_ABI_VERSION $header_abi; rebuild the library" >&2
    exit 1
fi
library_version="$abi.$minor.$patch"

# The system libraries a program linking librocmforge.a needs: those of Rust's standard
# library for this target, as rustc reports them for a static library.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
native=$(rustc --crate-name probe --crate-type staticlib --print native-static-libs \
    -o "$probe/libprobe.a" - </dev/null 2>&1 | sed -n 's/.*native-static-libs: //p')
if [ -z "$native" ]; then
    echo "install.sh: rustc did not report the native libraries of a static library" >&2
    exit 1
fi
cmake_native=$(sed 's/-l//g; s/ /;/g' <<<"$native")

# PREFIX-relative forms, so the CMake package can be moved with its tree.
relative_to_prefix() {
    case "$1" in
        "$prefix") echo '${_rocmforge_prefix}' ;;
        "$prefix"/*) echo '${_rocmforge_prefix}'"${1#"$prefix"}" ;;
        *) echo "$1" ;;
    esac
}
cmake_dir="$libdir/cmake/rocmforge"
config_to_prefix=$(realpath -m -s --relative-to="$cmake_dir" "$prefix")
# In the pkg-config file, directories under PREFIX are written with ${prefix}.
pc_dir() {
    case "$1" in
        "$prefix"/*) echo '${prefix}'"${1#"$prefix"}" ;;
        *) echo "$1" ;;
    esac
}

# Fills a template's @NAME@ fields.
fill() {
    local script=() field value
    while read -r field value; do
        # Escaped for sed's replacement text: backslash, & and the | delimiter.
        value=$(sed 's/[\\&|]/\\&/g' <<<"$value")
        script+=(-e "s|@$field@|$value|g")
    done <<FIELDS
PREFIX $prefix
LIBDIR $(pc_dir "$libdir")
INCLUDEDIR $(pc_dir "$includedir")
DESCRIPTION $description
VERSION $version
VERSION_MAJOR $major
VERSION_MINOR $minor
ABI_VERSION $abi
LIBRARY_VERSION $library_version
LIBS_PRIVATE $native
CONFIG_TO_PREFIX $config_to_prefix
CMAKE_LIBDIR $(relative_to_prefix "$libdir")
CMAKE_INCLUDEDIR $(relative_to_prefix "$includedir")
CMAKE_LIBS_PRIVATE $cmake_native
FIELDS
    sed "${script[@]}" "$1"
}

stage_lib="$destdir$libdir"
stage_include="$destdir$includedir"
install -d "$stage_lib/pkgconfig" "$stage_lib/cmake/rocmforge" "$stage_include"
install -m 0755 "$built/librocmforge.so" "$stage_lib/librocmforge.so.$library_version"
ln -sfn "librocmforge.so.$library_version" "$stage_lib/$soname"
ln -sfn "$soname" "$stage_lib/librocmforge.so"
install -m 0644 "$built/librocmforge.a" "$stage_lib/librocmforge.a"
install -m 0644 "$ROOT/include/rocmforge.h" "$ROOT/include/rocmforge.hpp" "$stage_include/"
fill "$ROOT/pkgconfig/rocmforge.pc.in" >"$stage_lib/pkgconfig/rocmforge.pc"
fill "$ROOT/cmake/rocmforgeConfig.cmake.in" >"$stage_lib/cmake/rocmforge/rocmforgeConfig.cmake"
fill "$ROOT/cmake/rocmforgeConfigVersion.cmake.in" \
    >"$stage_lib/cmake/rocmforge/rocmforgeConfigVersion.cmake"
chmod 0644 "$stage_lib/pkgconfig/rocmforge.pc" "$stage_lib/cmake/rocmforge/"*.cmake

echo "installed librocmforge $version (ABI $abi, $soname) into $destdir$prefix"
