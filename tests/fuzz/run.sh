#!/bin/sh
# Builds the libFuzzer drivers with clang (not through automake) from the
# parser sources and runs each for SECONDS (default 60) on a scratch copy
# of its seed corpus in tests/fuzz/corpus-run/ (git-ignored), so the seed
# corpora in git stay small and reviewed. Exits non-zero if a target
# crashes, leaks, trips a sanitizer or fails to build; the reproducer is
# left as tests/fuzz/corpus-run/crash-TARGET-*.
#
# The config target runs in corpus-run/ with two throw-away certificate
# and key pairs there (a.crt/a.key, b.crt/b.key, made with the openssl
# command when it exists), so tls_cert/tls_key can name real PEM files.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#       TARGET: request, response, config (default: all three)
set -u

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-request response config}
case $secs in
*[!0-9]* | '')
    echo "usage: $0 [SECONDS] [request|response|config]..." >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
run=$here/corpus-run
CC=${FUZZ_CC:-clang}
mkdir -p "$run/bin"

status=0
# Throw-away PEM pairs for the config target (errors only cost coverage).
tls_pairs() {
    command -v openssl >/dev/null 2>&1 || return 0
    for p in a b; do
        [ -s "$run/$p.crt" ] && [ -s "$run/$p.key" ] && continue
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -nodes -subj "/CN=$p.fuzz.invalid" -days 3650 \
            -keyout "$run/$p.key" -out "$run/$p.crt" >/dev/null 2>&1
    done
}

# build OUTPUT SOURCE... [FLAG...]: one driver with the sanitizers.
build() {
    $CC -std=c11 -g -O1 -Wall -Wextra -Werror \
        -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined \
        -I"$top/src" -I"$here" -o "$@"
}

for t in $targets; do
    # Per target: driver and parser sources, extra flags, dictionary.
    case $t in
    request | response)
        name=fuzz_http_$t
        set -- "$here/$name.c" "$top/src/http_parser.c"
        dict=$here/http.dict
        ;;
    config)
        # config.c wants _GNU_SOURCE (asprintf, getline) and has parsers
        # that ignore their context; its TLS check goes through the
        # driver's guard (see fuzz_config.c).
        name=fuzz_config
        set -- "$here/$name.c" "$top/src/config.c" "$top/src/tls.c" \
            "$top/src/net.c" \
            -D_GNU_SOURCE -Wno-unused-parameter \
            -Wl,--wrap=tls_check_pair -linih -lssl -lcrypto
        dict=$here/config.dict
        tls_pairs
        ;;
    *)
        echo "fuzz: unknown target $t (request, response or config)" >&2
        status=1
        continue
        ;;
    esac
    bin=$run/bin/$name
    if ! build "$bin" "$@"; then
        echo "fuzz: build of $t failed" >&2
        status=1
        continue
    fi
    work=$run/$t
    rm -rf "$work"
    mkdir -p "$work"
    cp "$here/corpus-$t"/* "$work/"
    echo "fuzz: $t for ${secs}s"
    # In corpus-run/ (relative TLS paths), stdin closed: nothing a target
    # opens by name can wait on the terminal.
    if ! (cd "$run" && "$bin" -max_total_time="$secs" -max_len=4096 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$dict" -artifact_prefix="$run/crash-$t-" \
        "$work" 2>"$run/$t.log" </dev/null); then
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
