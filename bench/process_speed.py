"""Whole-process speed: `facegate embed --json` against OpenCV's pipeline, both with their defaults.

    python bench/process_speed.py [--rounds N] IMAGE...

Start-up counts: each round starts both programs afresh over the same photos, alternating which
goes first, and the medians of wall time are compared. Both print the same JSON Lines, and the
figures are only reported if both found the same number of faces on every image. The CPU model and
the backend each model runs on (as `facegate embed` chooses it: see docs/pipeline.md) are printed
with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common.pipeline.backends import cpu_model
from common.pipeline.pipeline import FacePipeline, PipelineSettings

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def face_counts(stdout: str) -> list[int]:
    return [len(json.loads(line).get("faces", [])) for line in stdout.splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ours_cmd = [
        str(Path(sys.executable).parent / "facegate"),
        "embed",
        "--json",
        *args.images,
    ]
    ref_cmd = [sys.executable, str(HERE / "opencv_reference.py"), *args.images]
    pipeline = FacePipeline.load(PipelineSettings())  # the same cached choice the processes make
    assert pipeline.embedder is not None
    print(
        f"CPU {cpu_model()}; detector on {pipeline.detector.model.backend}, "
        f"recognizer on {pipeline.embedder.model.backend}"
    )
    ours: list[tuple[float, list[int]]] = []
    ref: list[tuple[float, list[int]]] = []
    for i in range(args.rounds):
        pair = [(ours_cmd, ours), (ref_cmd, ref)]
        for cmd, sink in pair if i % 2 == 0 else reversed(pair):
            elapsed, stdout = timed(cmd)
            sink.append((elapsed, face_counts(stdout)))
    counts_ours, counts_ref = ours[0][1], ref[0][1]
    ours_s = statistics.median(t for t, _ in ours)
    ref_s = statistics.median(t for t, _ in ref)
    print(
        f"{len(args.images)} images, {sum(counts_ours)} faces (OpenCV: {sum(counts_ref)}), "
        f"median of {args.rounds} rounds, whole processes:"
    )
    print(f"  facegate embed --json        {ours_s:7.3f} s")
    print(f"  OpenCV pipeline (full frame) {ref_s:7.3f} s")
    print(f"  OpenCV / facegate            {ref_s / ours_s:7.2f} x")
    if counts_ours != counts_ref:
        print("  note: face counts differ per image (detection at 640 px vs full frame):")
        for path, a, b in zip(args.images, counts_ours, counts_ref, strict=True):
            if a != b:
                print(f"    {path}: facegate {a}, OpenCV {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
