#!/usr/bin/env bash
# apt-install.sh PACKAGE...: install Debian packages for their binaries, without starting their services.
#
# Used by scripts/ensure-services.sh (the test suite's tools) and scripts/demo.sh (Mosquitto). Root or
# sudo is needed; without apt-get, says what to install and fails. nginx, haproxy, mosquitto and the like
# must not start their servers (port 80, 1883, ...) on the machine: a policy-rc.d that refuses every start,
# present only for the install (unless the machine already has one), keeps invoke-rc.d from starting them.
set -euo pipefail

say() { printf 'apt-install: %s\n' "$*"; }

[ "$#" -gt 0 ] || exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    say "missing $*, and no apt-get here: install them with your package manager" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        say "missing $*; not root and no sudo: install them as root" >&2
        exit 1
    fi
    sudo=(sudo)
fi
say "installing $* with apt-get (waiting up to 10 min for another apt to finish)"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
fi
status=0
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" || status=$?
if [ "$own_policy" -eq 1 ]; then
    "${sudo[@]}" rm -f "$policy"
fi
exit "$status"
