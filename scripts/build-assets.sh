#!/usr/bin/env bash
# build-assets.sh: the console's and the API docs' third-party assets, from the npm registry.
#
# Installs the versions pinned in web/package-lock.json (`npm ci`) and copies the files central serves
# into central/console/static/vendor/ (git-ignored). Run by `make assets`, which `make test`, `make demo`
# and Dockerfile.central's node stage run. Installs Debian's npm with apt when it is missing. Idempotent:
# does nothing when the vendor folder is newer than the lockfile.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/web"
OUT="${FACEGATE_ASSETS_OUT:-$ROOT/central/console/static/vendor}"
STAMP="$OUT/.built"

say() { printf 'build-assets: %s\n' "$*"; }

if [ -f "$STAMP" ] && [ "$STAMP" -nt "$WEB/package-lock.json" ] && [ "$STAMP" -nt "$0" ] \
    && [ "$STAMP" -nt "$ROOT/scripts/pico-icons.js" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    bash "$ROOT/scripts/apt-install.sh" npm
fi
say "installing the pinned packages of web/package-lock.json"
(cd "$WEB" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
mods="$WEB/node_modules"
rm -rf "$OUT"
mkdir -p "$OUT"
cp "$mods/htmx.org/dist/htmx.min.js" "$OUT/htmx.min.js"
cp "$mods/htmx-ext-ws/dist/ws.min.js" "$OUT/htmx-ext-ws.min.js"
node "$ROOT/scripts/pico-icons.js" "$mods/@picocss/pico/css/pico.min.css" "$OUT"
for file in swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css favicon-32x32.png; do
    cp "$mods/swagger-ui-dist/$file" "$OUT/$file"
done
cp "$mods/axe-core/axe.min.js" "$OUT/axe.min.js"
for license in htmx.org/LICENSE htmx-ext-ws/LICENSE @picocss/pico/LICENSE.md swagger-ui-dist/LICENSE \
    axe-core/LICENSE; do
    name="${license%/LICENSE*}"
    cp "$mods/$license" "$OUT/LICENSE.${name//\//-}.txt"
done
touch "$STAMP"
say "copied into ${OUT#"$ROOT"/}"
