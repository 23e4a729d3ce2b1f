#!/bin/sh
# Installs what ferry needs to build and test, from Debian 12 packages.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config
libev-dev libc-ares-dev libssl-dev libinih-dev libxxhash-dev libcmocka-dev
python3 python3-pytest curl procps iproute2 openssl dnsmasq-base clang
libclang-rt-14-dev clang-format
prometheus chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
