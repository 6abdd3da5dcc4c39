#!/bin/sh
# install.sh SRC VARIANT: install Facegate from the source folder SRC into a virtual environment.
#
# The build stage of Dockerfile.edge and Dockerfile.central runs it; tests/system/images/test_docker_images.py runs
# it into a temporary folder. VARIANT is the pip extra that brings ONNX Runtime: `cpu` (onnxruntime)
# or `gpu` (onnxruntime-gpu, for a CUDA 12 / cuDNN 9 base image).
#
# Environment:
#   FACEGATE_VENV   the virtual environment, created when absent (default /opt/facegate)
#   PYTHON          the interpreter that creates it (default python3)
#
# hnswlib is compiled from source here, always (--no-binary: neither an index wheel nor one from a
# cache decides its flags). HNSWLIB_NO_NATIVE=1 keeps `-march=native` out of that build, so the
# image runs on any x86-64 CPU instead of only on CPUs like the build machine's (SIGILL elsewhere).
# check_install.py then refuses an extension that records a CPU-specific `-march` anyway.
set -eu

usage="usage: install.sh SRC cpu|gpu"
src=${1:?$usage}
variant=${2:?$usage}
venv=${FACEGATE_VENV:-/opt/facegate}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)

case "$variant" in
    cpu | gpu) ;;
    *)
        echo "install.sh: VARIANT must be cpu or gpu, not '$variant'" >&2
        exit 2
        ;;
esac
if [ ! -f "$src/pyproject.toml" ]; then
    echo "install.sh: $src has no pyproject.toml: give the folder holding Facegate's source" >&2
    exit 2
fi

export HNSWLIB_NO_NATIVE=1
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
echo "install.sh: installing ${src}[${variant}] into ${venv}"
"$venv/bin/python" -m pip install --no-cache-dir --no-binary=hnswlib "${src}[${variant}]"
"$venv/bin/python" "$here/check_install.py" packages "$variant"
"$venv/bin/python" "$here/check_install.py" portable
