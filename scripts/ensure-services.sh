#!/usr/bin/env bash
# Make sure the test suite can get real backing services (see docs/testing-services.md).
#
# Idempotent. When the fixtures will run services from local binaries (no Docker engine, or
# FACEGATE_TEST_DOCKER=0), installs whatever is missing of mosquitto, redis-server and the PostgreSQL
# server (initdb, pg_ctl) with apt-get. It starts nothing: the fixtures reuse services already listening
# on the standard ports, or start private ones on free ports. Prints one line per service saying which.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV:-.venv}"
case "$VENV_DIR" in /*) ;; *) VENV_DIR="$ROOT/$VENV_DIR" ;; esac

say() { printf 'ensure-services: %s\n' "$*"; }

pg_bin_dir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }
have_redis() { command -v redis-server >/dev/null 2>&1; }
have_postgres() { pg_bin_dir >/dev/null; }
have_ffmpeg() { command -v ffmpeg >/dev/null 2>&1; }
have_promtool() { command -v promtool >/dev/null 2>&1; }
# Checked, never run: `nginx -t`, `haproxy -c` (deploy/ configurations), `nft -c` (the Ansible roles' rules).
have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }
have_haproxy() { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; }
have_nft() { command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; }
have_amtool() { command -v amtool >/dev/null 2>&1; }
have_systemd_analyze() { command -v systemd-analyze >/dev/null 2>&1; }
have_ps() { command -v ps >/dev/null 2>&1; }

docker_mode() {
    case "${FACEGATE_TEST_DOCKER:-auto}" in
        0 | false | no | off) return 1 ;;
        1 | true | yes | on) return 0 ;;
    esac
    command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1
}

# prometheus, alertmanager, nginx and haproxy are installed for their checkers only (promtool, amtool,
# nginx -t, haproxy -c):
# apt-install.sh keeps them from starting; where systemd runs, they are also disabled at boot.
disable_servers() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" systemctl disable --now "$@" >/dev/null 2>&1 || true
        say "$*: installed for their checkers; their servers are disabled"
    fi
}

install_missing() {
    local packages=()
    have_mosquitto || packages+=(mosquitto)
    have_redis || packages+=(redis-server)
    have_postgres || packages+=(postgresql)
    have_ffmpeg || packages+=(ffmpeg)
    have_promtool || packages+=(prometheus)  # for promtool (tests/system/deploy/test_alert_rules.py)
    have_nginx || packages+=(nginx)          # for `nginx -t` only
    have_haproxy || packages+=(haproxy)      # for `haproxy -c` only
    have_nft || packages+=(nftables)         # for `nft -c` only
    have_amtool || packages+=(prometheus-alertmanager)  # for `amtool check-config` only
    have_systemd_analyze || packages+=(systemd)  # `systemd-analyze verify` (tests/test_ansible_*)
    have_ps || packages+=(procps)                # the molecule scenario's verify step
    if [ "${#packages[@]}" -eq 0 ]; then
        return 0
    fi
    bash "$ROOT/scripts/apt-install.sh" "${packages[@]}"
    local servers=()
    for package in prometheus prometheus-alertmanager nginx haproxy; do
        case " ${packages[*]} " in *" $package "*) servers+=("$package.service") ;; esac
    done
    [ "${#servers[@]}" -eq 0 ] || disable_servers "${servers[@]}"
}

reuse_allowed() { [ "${FACEGATE_TEST_REUSE_LOCAL:-1}" != "0" ]; }

port_open() { timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" >/dev/null 2>&1; }

shared_postgres() {
    port_open 5432 || return 1
    command -v psql >/dev/null 2>&1 || return 0  # cannot check more closely; the fixture will
    PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atqc 'SELECT 1' -w >/dev/null 2>&1
}

shared_redis() {
    port_open 6379 || return 1
    command -v redis-cli >/dev/null 2>&1 || return 0
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
}

shared_mosquitto() { port_open 1883; }

report_local() {
    local pg_dir
    pg_dir="$(pg_bin_dir)"
    if reuse_allowed && shared_postgres; then
        say "postgres: shared server on 127.0.0.1:5432 (database test), one fresh database per test"
    else
        say "postgres: private instances from $pg_dir on free ports"
    fi
    if reuse_allowed && shared_redis; then
        say "redis: shared server on 127.0.0.1:6379, one empty database number per test"
    else
        say "redis: private instances of $(command -v redis-server) on free ports"
    fi
    if reuse_allowed && shared_mosquitto; then
        say "mosquitto: shared broker on 127.0.0.1:1883, one topic prefix per test"
    else
        say "mosquitto: private instances of $(command -v mosquitto || echo /usr/sbin/mosquitto) on free ports"
    fi
    local s3="${FACEGATE_TEST_S3:-auto}"
    if [ "$s3" != "minio" ] && [ -x "$VENV_DIR/bin/moto_server" ]; then
        say "s3: private moto_server ($VENV_DIR/bin/moto_server) on a free port"
    elif [ "$s3" != "moto" ] && command -v minio >/dev/null 2>&1; then
        say "s3: private minio server ($(command -v minio)) on a free port"
    else
        say "s3: no moto_server in $VENV_DIR/bin and no minio on PATH: install the test extra (moto[server])" >&2
        exit 1
    fi
}

if docker_mode; then
    for service in postgres redis mosquitto s3; do
        say "$service: testcontainers (Docker engine reachable; FACEGATE_TEST_DOCKER=0 for local binaries)"
    done
    exit 0
fi

install_missing
report_local
