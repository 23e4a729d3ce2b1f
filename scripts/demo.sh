#!/bin/sh
# Quick start: installs dependencies, builds, starts three demo backends and
# ferry on lb.conf.example. Ctrl-C stops everything.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
pids=""
ready=$(mktemp -d)
cleanup() {
    trap - INT TERM EXIT
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill $pids 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$ready"
    echo "demo stopped"
}
trap cleanup INT TERM EXIT
for i in 1 2 3; do
    /usr/bin/python3 tests/lib/backend.py --name "backend-$i" --port "900$i" \
        --ready-file "$ready/$i" &
    pids="$pids $!"
done
# ferry checks the members before it accepts; started too early it would
# find them down and answer 503 until `rise` checks pass. Bounded wait.
for _ in $(seq 1 100); do
    [ -e "$ready/1" ] && [ -e "$ready/2" ] && [ -e "$ready/3" ] && break
    sleep 0.1
done
echo "demo: backends on 127.0.0.1:9001-9003; ferry on 127.0.0.1:8080"
echo "demo: try   curl http://127.0.0.1:8080/   (Ctrl-C stops everything)"
build/ferry -c lb.conf.example &
pids="$pids $!"
wait
