#!/bin/sh
# create-user.sh NAME UID HOME [DIR...]: the unprivileged user the images run as.
#
# Creates group and user NAME with the numeric id UID (same for both), home HOME, no login shell and
# no password; then HOME and each DIR, owned by the user, mode 0750. The final stage of both images
# runs it; tests/system/images/test_docker_images.py runs it against a temporary folder.
#
# Environment:
#   FACEGATE_ROOT  a folder holding etc/passwd, etc/group, etc/shadow, etc/gshadow to change instead
#                  of the system's (useradd --prefix); the folders are made under it too
set -eu

usage="usage: create-user.sh NAME UID HOME [DIR...]"
name=${1:?$usage}
uid=${2:?$usage}
home=${3:?$usage}
shift 3
root=${FACEGATE_ROOT:-}

case "$uid" in
    '' | *[!0-9]*)
        echo "create-user.sh: UID must be a number, not '$uid'" >&2
        exit 2
        ;;
esac
if [ "$uid" -eq 0 ]; then
    echo "create-user.sh: UID 0 is root: choose an unprivileged id (the images use 10001)" >&2
    exit 2
fi

set -- "$home" "$@"
if [ -n "$root" ]; then
    groupadd --prefix "$root" --gid "$uid" "$name"
    useradd --prefix "$root" --no-log-init --no-create-home --uid "$uid" --gid "$uid" \
        --home-dir "$home" --shell /usr/sbin/nologin "$name"
else
    groupadd --gid "$uid" "$name"
    useradd --no-log-init --no-create-home --uid "$uid" --gid "$uid" \
        --home-dir "$home" --shell /usr/sbin/nologin "$name"
fi
for dir in "$@"; do
    install -d -o "$uid" -g "$uid" -m 0750 "$root$dir"
done
