#!/usr/bin/env bash
# `make demo`, for now: verify real photos fetched from pinned registry packages (../shared/DATA.md).
# Later issues grow this into the whole system (central, broker, storage, two edges).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "== fetching pinned sample photos (face_recognition 1.3.0 sdist, scikit-image, matplotlib)"
declare -A photo
while IFS=$'\t' read -r name person path; do
    photo[$name]=$path
    printf '   %-20s %-16s %s\n' "$name" "$person" "$path"
done < <($BIN/python -m common.sample_faces)
echo
echo "== facegate verify: two different photos of Barack Obama"
$BIN/facegate verify "${photo[obama]}" "${photo[obama2]}"
echo
echo "== facegate verify: Barack Obama and Joe Biden"
$BIN/facegate verify "${photo[obama]}" "${photo[biden]}"
echo
echo "== facegate verify --json: Barack Obama and Grace Hopper"
$BIN/facegate verify --json "${photo[obama3]}" "${photo[grace_hopper]}"
