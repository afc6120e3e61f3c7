#!/usr/bin/env bash
# Prints the soname of the shared library $1 (librocmforge.so.1); fails when it has none,
# so a caller never makes a link from an empty name.
set -euo pipefail
soname=$(readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
if [ -z "$soname" ]; then
    echo "soname.sh: $1 has no soname" >&2
    exit 1
fi
echo "$soname"
