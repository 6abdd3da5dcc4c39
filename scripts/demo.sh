#!/usr/bin/env bash
# `make demo`: the whole system on one machine (see demo/ and the README). Installs Mosquitto with apt when
# it is missing (without starting its service: the demo runs its own on a free port), then runs the demo.
# Arguments go to `facegate demo` (--duration SECONDS, 0: until Ctrl-C; --state FOLDER; --clean).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    bash scripts/apt-install.sh mosquitto || echo "demo: no Mosquitto, and apt could not install it" >&2
fi
exec .venv/bin/facegate demo "$@"
