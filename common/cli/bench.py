"""`facegate bench ...`: each benchmark lives in the package it measures and registers itself under the
`facegate.bench` entry points (pipeline, match and outbox in `edge`, ingest in `central`), so an
installed edge box can measure itself. Benchmarks that span both sides live in `bench/`."""

from __future__ import annotations

from typing import Any

BENCH_GROUP = "facegate.bench"


def register(sub: Any) -> None:
    from common.cli import registered, requested

    parser = sub.add_parser(
        "bench", help="benchmarks (pipeline, match, outbox on an edge box; ingest on central)"
    )
    bsub = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    for register_benchmark in registered(BENCH_GROUP, requested(1)):
        register_benchmark(bsub)
