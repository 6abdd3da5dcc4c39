"""`facegate bench match`: the matcher on this box, hnswlib against exact numpy search, side by side.

Templates are clusters around identity centres, as real galleries are: each identity has several
templates at about the cosine similarity two photos of one person have (`--intra`, 0.7 by default;
the achieved mean is measured and printed). A template is the normalised centre plus Gaussian noise
of norm sqrt(1/intra - 1), so two templates of one identity have cosine about intra. Queries are
new noisy samples of known identities. For each size it reports the build time, p50/p99 latency of
a single-query `Matcher.match` with each index (queries alternate between them), recall@1 of
hnswlib against exact search, and a plain numpy argmax check of the exact index itself.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from common.embedding import l2_normalize
from edge.gallery.index import ExactIndex, Hit, HnswIndex, IndexSettings, VectorIndex
from edge.gallery.matcher import Matcher

THRESHOLD, MARGIN = 0.363, 0.05  # SFace's threshold; the latency does not depend on them


def register(sub: Any) -> None:
    parser = sub.add_parser("match", help="matcher latency and recall: hnswlib against exact search")
    parser.add_argument("--sizes", type=_sizes, default=[10_000, 100_000], help="templates, comma-separated")
    parser.add_argument("--dim", type=int, default=128, help="embedding size (default 128, SFace)")
    parser.add_argument("--per-identity", type=int, default=5, help="templates per identity (default 5)")
    parser.add_argument("--intra", type=float, default=0.7, help="target cosine within an identity")
    parser.add_argument("--queries", type=int, default=1000, help="single queries timed per index")
    parser.add_argument("--top-k", type=int, default=10, help="matcher top k (above --per-identity)")
    parser.add_argument("--m", type=int, default=IndexSettings().m, help="hnswlib M")
    parser.add_argument("--ef-construction", type=int, default=IndexSettings().ef_construction)
    parser.add_argument(
        "--ef-search",
        type=_ints,
        default=[IndexSettings().ef_search],
        help="hnswlib ef at search; several (64,256) are measured on one build, the first beside exact",
    )
    parser.add_argument("--threads", type=int, default=0, help="hnswlib build threads (0: every core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.set_defaults(handler=run)


def _ints(text: str) -> list[int]:
    """Comma-separated positive whole numbers; 1e6 is accepted for 1000000."""
    try:
        values = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers, e.g. 10000,100000") from err
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every number must be at least 1")
    return values


def _sizes(text: str) -> list[int]:
    sizes = _ints(text)
    if min(sizes) < 2:
        raise argparse.ArgumentTypeError("every size must be at least 2 templates")
    return sizes


class _IndexSearcher:
    """A bare index as the matcher's gallery: labels are template numbers, persons label // per_identity."""

    def __init__(self, index: VectorIndex, per_identity: int) -> None:
        self.index, self.per_identity = index, per_identity

    def negatives(self, person_id: str) -> NDArray[np.float32] | None:
        return None

    def search(self, vectors: NDArray[np.float32], k: int) -> list[list[Hit]]:
        labels, sims = self.index.search(l2_normalize(vectors), k)
        return [
            [
                Hit(str(label // self.per_identity), str(label), sim)
                for label, sim in zip(row, srow, strict=True)
            ]
            for row, srow in zip(labels.tolist(), sims.tolist(), strict=True)
        ]


def clusters(
    size: int, args: argparse.Namespace, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
    """`size` templates (template n belongs to identity n // per_identity), their centres, the noise scale."""
    identities = -(-size // args.per_identity)
    centres = l2_normalize(rng.standard_normal((identities, args.dim), dtype=np.float32))
    noise = float(np.sqrt((1.0 / args.intra - 1.0) / args.dim))  # per coordinate
    templates = np.empty((size, args.dim), dtype=np.float32)
    for start in range(0, size, 100_000):  # in chunks: no float64 or n x d temporaries of the whole
        stop = min(size, start + 100_000)
        chunk = centres[np.arange(start, stop) // args.per_identity]
        chunk += noise * rng.standard_normal(chunk.shape, dtype=np.float32)
        templates[start:stop] = l2_normalize(chunk)
    return templates, centres, noise


def intra_similarity(templates: NDArray[np.float32], per_identity: int, rng: np.random.Generator) -> float:
    """Mean cosine between two templates of one identity, over up to 2000 identities."""
    identities = len(templates) // per_identity
    if per_identity < 2 or identities == 0:
        return float("nan")
    picked = rng.choice(identities, size=min(identities, 2000), replace=False) * per_identity
    return float(np.mean(np.sum(templates[picked] * templates[picked + 1], axis=1)))


def _timed(matcher: Matcher, query: NDArray[np.float32]) -> float:
    start = time.perf_counter()
    matcher.match(query)
    return (time.perf_counter() - start) * 1000


def measure_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + size)
    templates, centres, noise = clusters(size, args, rng)
    intra = intra_similarity(templates, args.per_identity, rng)
    truth = rng.integers(0, len(centres), args.queries)
    queries = l2_normalize(centres[truth] + noise * rng.standard_normal((args.queries, args.dim), np.float32))
    labels, efs = np.arange(size, dtype=np.int64), args.ef_search
    settings = IndexSettings(
        m=args.m, ef_construction=args.ef_construction, ef_search=efs[0], threads=args.threads
    )
    start = time.perf_counter()
    hnsw = HnswIndex.build(labels, templates, settings)
    hnsw_build = time.perf_counter() - start
    start = time.perf_counter()
    exact = ExactIndex(labels, templates)  # owns `templates` from here on (no copy)
    exact_build = time.perf_counter() - start
    matchers = {
        name: Matcher(_IndexSearcher(index, args.per_identity), THRESHOLD, MARGIN, args.top_k)
        for name, index in (("exact", exact), ("hnsw", hnsw))
    }
    for matcher in matchers.values():  # warm-up
        matcher.match(queries[0])
    latency: dict[str, list[float]] = {"exact": [], "hnsw": []}
    for n, query in enumerate(queries):  # alternate which goes first, so drift hits both alike
        for name in ("exact", "hnsw") if n % 2 == 0 else ("hnsw", "exact"):
            latency[name].append(_timed(matchers[name], query))
    top_exact = exact.search(queries, 1)[0][:, 0]
    reference = np.concatenate(  # plain numpy, none of the index code
        [np.argmax(queries[n : n + 64] @ templates.T, axis=1) for n in range(0, len(queries), 64)]
    )
    sweep = []
    for ef in efs:  # the first ef's latencies are the side-by-side ones; the others are timed alone
        hnsw.ef_search = ef
        times = latency["hnsw"] if ef == efs[0] else [_timed(matchers["hnsw"], q) for q in queries]
        top = hnsw.search(queries, 1)[0][:, 0]
        sweep.append(
            {
                "ef_search": ef,
                **_percentiles(times),
                "recall_at_1": float(np.mean(top == top_exact)),
                "identified": float(np.mean(top // args.per_identity == truth)),
            }
        )
    return {
        "templates": size,
        "identities": len(centres),
        "intra_similarity": round(intra, 4),
        "queries": args.queries,
        "build_s": {"exact": round(exact_build, 4), "hnsw": round(hnsw_build, 3)},
        "latency_ms": {name: _percentiles(values) for name, values in latency.items()},
        "exact_over_hnsw_p50": round(
            statistics.median(latency["exact"]) / statistics.median(latency["hnsw"]), 2
        ),
        "recall_at_1": {"hnsw": sweep[0]["recall_at_1"], "exact": float(np.mean(top_exact == reference))},
        "identified": {  # the top-1 template's identity is the query's own
            "exact": float(np.mean(top_exact // args.per_identity == truth)),
            "hnsw": sweep[0]["identified"],
        },
        "ef_search_sweep": sweep,
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 4),
        "p99": round(float(np.percentile(values, 99)), 4),
    }


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.intra < 1.0 or args.per_identity < 1 or args.queries < 1:
        sys.stderr.write(
            "facegate bench match: --intra must be in (0, 1), --per-identity and --queries >= 1\n"
        )
        return 2
    figures: dict[str, Any] = {
        "dim": args.dim,
        "per_identity": args.per_identity,
        "target_intra": args.intra,
        "top_k": args.top_k,
        "hnsw": {"m": args.m, "ef_construction": args.ef_construction, "ef_search": args.ef_search[0]},
        "sizes": [],
    }
    for size in args.sizes:
        figures["sizes"].append(measure_size(size, args))
        gc.collect()  # the previous size's indexes go before the next is built
        if not args.json:
            _print_size(figures["sizes"][-1])
    if args.json:
        sys.stdout.write(msgspec.json.encode(figures).decode() + "\n")
    return 0


def _print_size(row: dict[str, Any]) -> None:
    lat, build, recall = row["latency_ms"], row["build_s"], row["recall_at_1"]
    print(
        f"{row['templates']} templates, {row['identities']} identities, "
        f"mean intra-identity cosine {row['intra_similarity']:.3f}, {row['queries']} queries"
    )
    print(f"  build          exact {build['exact']:9.3f} s   hnsw {build['hnsw']:9.3f} s")
    print(f"  match p50      exact {lat['exact']['p50']:9.3f} ms  hnsw {lat['hnsw']['p50']:9.3f} ms")
    print(f"  match p99      exact {lat['exact']['p99']:9.3f} ms  hnsw {lat['hnsw']['p99']:9.3f} ms")
    print(f"  exact / hnsw (p50)   {row['exact_over_hnsw_p50']:.1f} x")
    print(
        f"  recall@1       hnsw vs exact {recall['hnsw']:.4f}   exact vs numpy argmax {recall['exact']:.4f}"
    )
    print(f"  identified     exact {row['identified']['exact']:.4f}   hnsw {row['identified']['hnsw']:.4f}")
    for ef in row["ef_search_sweep"][1:]:
        print(
            f"  hnsw ef_search {ef['ef_search']:4}: p50 {ef['p50']:.3f} ms  p99 {ef['p99']:.3f} ms  "
            f"recall@1 {ef['recall_at_1']:.4f}  identified {ef['identified']:.4f}"
        )
