#!/bin/sh
# Builds ferry into DIR (default build/) with extra configure arguments.
#   scripts/build.sh [DIR [CONFIGURE-ARGS...]]
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
[ $# -gt 0 ] && shift
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ] || [ ../configure -nt Makefile ]; then
    ../configure -q --enable-werror "$@"
fi
make -s -j"$(nproc)"
