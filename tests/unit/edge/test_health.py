"""The edge's /healthz, /readyz and /metrics endpoint, and its durable sequence numbers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.delivery.sequence import Sequences
from edge.ops.health import HealthServer
from edge.ops.metrics import EdgeMetrics


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


@pytest.fixture
def served() -> Iterator[tuple[HealthServer, EdgeMetrics, dict[str, bool]]]:
    metrics = EdgeMetrics()
    checks = {"models": True, "cameras": False, "broker": True}
    server = HealthServer("127.0.0.1", 0, metrics.registry, lambda: dict(checks))
    server.start()
    yield server, metrics, checks
    server.stop()


def test_health_readyz_follows_checks(served: tuple[HealthServer, EdgeMetrics, dict[str, bool]]) -> None:
    server, _, checks = served
    base = f"http://127.0.0.1:{server.port}"
    assert _get(f"{base}/healthz")[0] == 200
    status, body = _get(f"{base}/readyz")
    assert status == 503 and json.loads(body)["checks"]["cameras"] is False
    checks["cameras"] = True
    status, body = _get(f"{base}/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    assert _get(f"{base}/nope")[0] == 404


def test_health_metrics_expose_counters_and_live_gauges(
    served: tuple[HealthServer, EdgeMetrics, dict[str, bool]],
) -> None:
    server, metrics, _ = served
    metrics.frames.labels(camera="door").inc(3)
    metrics.live(lambda: [("facegate_edge_outbox_backlog", "Rows waiting", {}, 42.0)])
    status, body = _get(f"http://127.0.0.1:{server.port}/metrics")
    text = body.decode()
    assert status == 200
    assert 'facegate_edge_frames_total{camera="door"} 3.0' in text
    assert "facegate_edge_outbox_backlog 42.0" in text


def test_sequences_continue_after_reopen(tmp_path: Path) -> None:
    seqs = Sequences(tmp_path / "seq.db")
    assert [seqs.next("a"), seqs.next("a"), seqs.next("b")] == [1, 2, 1]
    seqs.close()
    again = Sequences(tmp_path / "seq.db")
    assert again.next("a") == 3 and again.next("b") == 2
    again.close()
