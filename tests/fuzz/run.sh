#!/bin/sh
# Builds the libFuzzer drivers with clang (not through automake) from the
# parser sources and runs each for SECONDS (default 60) on a scratch copy
# of its seed corpus in tests/fuzz/corpus-run/ (git-ignored), so the seed
# corpora in git stay small and reviewed. Exits non-zero if a target
# crashes, leaks, trips a sanitizer or fails to build; the reproducer is
# left as tests/fuzz/corpus-run/crash-TARGET-*.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]    TARGET: request, response
set -u

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-request response}
case $secs in
*[!0-9]* | '') echo "usage: $0 [SECONDS] [request|response]..." >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
run=$here/corpus-run
CC=${FUZZ_CC:-clang}
mkdir -p "$run/bin"

status=0
for t in $targets; do
    bin=$run/bin/fuzz_http_$t
    if ! $CC -std=c11 -g -O1 -Wall -Wextra -Werror \
        -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined \
        -I"$top/src" -I"$here" \
        "$here/fuzz_http_$t.c" "$top/src/http_parser.c" -o "$bin"; then
        echo "fuzz: build of $t failed" >&2
        status=1
        continue
    fi
    work=$run/$t
    rm -rf "$work"
    mkdir -p "$work"
    cp "$here/corpus-$t"/* "$work/"
    echo "fuzz: $t for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$here/http.dict" -artifact_prefix="$run/crash-$t-" \
        "$work" 2>"$run/$t.log"; then
        tail -n 40 "$run/$t.log" >&2
        echo "fuzz: $t FAILED (log: $run/$t.log)" >&2
        status=1
        continue
    fi
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$run/$t.log"
    grep -E '^Done [0-9]+ runs' "$run/$t.log"
    echo "fuzz: $t OK ($(ls "$work" | wc -l) corpus entries)"
done
exit $status
