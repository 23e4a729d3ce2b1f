#!/bin/sh
# The whole test suite: installs dependencies, checks the layering of src/
# (scripts/check-layers.py) and the layout (clang-format), builds ferry
# four times (plain, ASan+UBSan, ThreadSanitizer, and with clang to check
# it builds warning-free), fuzzes the parsers for a bounded time
# (FUZZ_SECONDS, default 60 per target), and runs the unit tests and the
# integration tests against the ASan+UBSan, TSan and plain builds. The TSan
# build's integration tests run every ferry with two worker threads
# (FERRY_TEST_WORKERS=2), and any ThreadSanitizer report fails them
# (tests/tsan.supp may silence third-party libraries only); the plain
# build's integration tests run twice, with one worker and with two.
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

# Commands below run as $RUN COMMAND (RUN is empty but for TSan).
RUN=

unit_tests() {
    dir=$1
    echo "== unit tests ($dir)"
    if ! $RUN make -s -C "$dir" check; then
        cat "$dir"/tests/unit/*.log 2>/dev/null | tail -n 80
        exit 1
    fi
}

# integration_tests DIR [VAR=VALUE...]: the integration suite against
# DIR/ferry with those variables set (tests/integration/conftest.py
# describes FERRY_TEST_WORKERS and FERRY_TEST_TIMEOUT_FACTOR).
integration_tests() {
    dir=$1
    shift
    echo "== integration tests ($dir${*:+, $*})"
    $RUN env "$@" FERRY_BIN="$PWD/$dir/ferry" \
        $PY -m pytest -q -p no:cacheprovider tests/integration
}

echo "== build (gcc)"
scripts/build.sh build
echo "== build (clang, warnings are errors)"
CC=clang scripts/build.sh build-clang
echo "== build (gcc, ASan + UBSan)"
scripts/build.sh build-asan --enable-asan --enable-ubsan
echo "== build (gcc, ThreadSanitizer)"
scripts/build.sh build-tsan --enable-tsan

echo "== fuzz: parsers under ASan+UBSan, ${FUZZ_SECONDS:-60} s per target"
tests/fuzz/run.sh "${FUZZ_SECONDS:-60}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
unit_tests build-asan
integration_tests build-asan
unset ASAN_OPTIONS UBSAN_OPTIONS

# ThreadSanitizer: the first report ends the process (halt_on_error) and
# the harness fails the test whose ferry logged it. TSan maps its shadow
# memory where kernels with at most 28 bits of mmap randomness never put
# anything else; on a kernel with more, ASLR is off for this stage.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
    RUN="setarch $(uname -m) -R"
fi
unit_tests build-tsan
integration_tests build-tsan FERRY_TEST_WORKERS=2 FERRY_TEST_TIMEOUT_FACTOR=2
RUN=
unset TSAN_OPTIONS

unit_tests build
integration_tests build
integration_tests build FERRY_TEST_WORKERS=2
