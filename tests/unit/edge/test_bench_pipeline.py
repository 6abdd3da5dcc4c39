"""`facegate bench pipeline` runs and reports every figure (timings are not asserted: machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from demo.sample_faces import SamplePhoto

FACEGATE = str(Path(sys.executable).parent / "facegate")


def test_bench_pipeline_reports_stages_model_and_reference(
    samples: dict[str, SamplePhoto], models_env: dict[str, str]
) -> None:
    images = [str(samples[n].path) for n in ("obama", "biden", "grace_hopper")]
    proc = subprocess.run(
        [FACEGATE, "bench", "pipeline", "--repeat", "1", "--json", *images],
        capture_output=True,
        text=True,
        env=models_env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["images"] == 3 and figures["faces"] == 3 and figures["detect_size"] == 640
    stages = figures["ms_per_pass"]
    assert all(stages[k] > 0 for k in ("decode", "detect", "align", "embed", "model"))
    # the model time is part of the pipeline time, so the ratio can never drop below 1
    assert figures["pipeline_over_model"] >= 1.0
    assert figures["pipeline_ms"] >= stages["model"]
    assert figures["opencv_reference_ms"] > 0


def test_bench_pipeline_human_output(samples: dict[str, SamplePhoto], models_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [FACEGATE, "bench", "pipeline", "--repeat", "1", "--no-reference", str(samples["obama"].path)],
        capture_output=True,
        text=True,
        env=models_env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pipeline / bare model" in proc.stdout and "OpenCV" not in proc.stdout
