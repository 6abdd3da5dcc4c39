"""`facegate bench ...`: benchmarks live in the package they measure; this only wires them in."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    from central.bench_ingest import register as register_ingest
    from edge.bench_match import register as register_match
    from edge.bench_outbox import register as register_outbox
    from edge.bench_pipeline import register as register_pipeline

    parser = sub.add_parser("bench", help="benchmarks (pipeline on an edge box)")
    bsub = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    register_pipeline(bsub)
    register_match(bsub)
    register_outbox(bsub)
    register_ingest(bsub)
