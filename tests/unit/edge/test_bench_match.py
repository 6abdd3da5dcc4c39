"""`facegate bench match` runs and reports every figure (timings are not asserted: machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FACEGATE = str(Path(sys.executable).parent / "facegate")


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACEGATE, "bench", "match", "--sizes", "2000", "--queries", "50", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bench_match_tiny_size_reports_latency_recall_and_clusters() -> None:
    proc = run_bench("--json", "--ef-search", "64,16")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["dim"] == 128 and figures["hnsw"]["m"] > 0
    (row,) = figures["sizes"]
    assert row["templates"] == 2000 and row["identities"] == 400 and row["queries"] == 50
    assert 0.6 <= row["intra_similarity"] <= 0.8
    for name in ("exact", "hnsw"):
        assert row["build_s"][name] >= 0
        assert 0 < row["latency_ms"][name]["p50"] <= row["latency_ms"][name]["p99"]
    recall = row["recall_at_1"]
    assert 0.0 <= recall["hnsw"] <= 1.0
    assert recall["exact"] == 1.0  # the exact index agrees with a plain numpy argmax on every query
    assert [ef["ef_search"] for ef in row["ef_search_sweep"]] == [64, 16]
    assert all(0.0 <= ef["recall_at_1"] <= 1.0 and ef["p50"] > 0 for ef in row["ef_search_sweep"])
    assert row["ef_search_sweep"][0]["recall_at_1"] == recall["hnsw"]


def test_bench_match_human_output_names_both_indexes() -> None:
    proc = run_bench()
    assert proc.returncode == 0, proc.stderr
    assert "recall@1" in proc.stdout and "hnsw" in proc.stdout and "exact" in proc.stdout
    assert "mean intra-identity cosine" in proc.stdout


def test_bench_match_bad_sizes_is_a_usage_error() -> None:
    proc = subprocess.run(
        [FACEGATE, "bench", "match", "--sizes", "ten"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "--sizes" in proc.stderr
