#!/bin/sh
# The whole test suite: installs dependencies, checks the layering of src/
# (scripts/check-layers.py) and the layout (clang-format), builds ferry
# twice (plain, and with ASan+UBSan), checks that clang builds it
# warning-free, fuzzes the parsers for a bounded time (FUZZ_SECONDS, default
# 60 per target), and runs the unit tests and the integration tests against
# both builds.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
PY=/usr/bin/python3

# Layering first: it takes a second and names the include or connect()
# that breaks it, before minutes of building. The self-test shows each
# rule still fires, so a broken check cannot pass silently.
echo "== layers"
$PY scripts/check-layers.py --self-test
$PY scripts/check-layers.py
echo "== format (make format-check: the tree is as make format leaves it)"
clang-format --dry-run --Werror src/*.[ch] tests/unit/*.c

run_suite() {
    dir=$1
    echo "== unit tests ($dir)"
    if ! make -s -C "$dir" check; then
        cat "$dir"/tests/unit/*.log 2>/dev/null | tail -n 80
        exit 1
    fi
    echo "== integration tests ($dir)"
    FERRY_BIN="$PWD/$dir/ferry" $PY -m pytest -q -p no:cacheprovider \
        tests/integration
}

echo "== build (gcc)"
scripts/build.sh build
echo "== build (clang, warnings are errors)"
CC=clang scripts/build.sh build-clang
echo "== build (gcc, ASan + UBSan)"
scripts/build.sh build-asan --enable-asan --enable-ubsan

echo "== fuzz: parsers under ASan+UBSan, ${FUZZ_SECONDS:-60} s per target"
tests/fuzz/run.sh "${FUZZ_SECONDS:-60}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan
unset ASAN_OPTIONS UBSAN_OPTIONS
run_suite build
