"""Who a face is: the gallery's nearest entries grouped by person, then a threshold and a margin.

A person scores their best hit among the top k (with `person_match="mean"` the gallery already
returns one hit per person). The best person is matched when their score reaches `threshold` and
beats the second-best *person* by at least `margin`; otherwise the face is unknown, and `reason`
says why. When every one of the k hits is the same person, the search is widened once (8·k) so
that the second-best person, and with it the margin, is real rather than missing.

Negative examples (a face an operator said is *not* P, gallery-change/1.1) veto a candidate: P is
vetoed when max cos(face, P's negatives) >= P's score - `negative_margin`. The next person in the
ranking is then the candidate, and must pass the threshold and beat the person after them by `margin`
(vetoed ones are left out); otherwise the face is unknown with reason "vetoed".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from edge.gallery.index import Hit

MatchReason = Literal["matched", "below_threshold", "ambiguous", "empty_gallery", "vetoed"]
WIDEN = 8


class Searcher(Protocol):
    """What the matcher needs of a gallery (edge.gallery.cache.Gallery is one)."""

    def search(self, vectors: NDArray[np.float32], k: int) -> list[list[Hit]]: ...

    def negatives(self, person_id: str) -> NDArray[np.float32] | None: ...


@dataclass(frozen=True, slots=True)
class Match:
    person_id: str | None  # None: unknown (see reason)
    score: float  # the best person's similarity (0.0 for an empty gallery)
    second: float | None  # the second-best person's similarity; None when no other person was found
    reason: MatchReason


class Matcher:
    """Decides matches against a gallery; thread-safe as long as the gallery's search is."""

    def __init__(
        self,
        gallery: Searcher,
        threshold: float,
        margin: float,
        top_k: int = 5,
        negative_margin: float = 0.05,
    ) -> None:
        if top_k < 1 or margin < 0:
            raise ValueError("top_k must be at least 1 and margin at least 0")
        self.gallery, self.threshold, self.margin, self.top_k = gallery, threshold, margin, top_k
        self.negative_margin = negative_margin

    def match(self, vector: NDArray[np.float32]) -> Match:
        """The decision for one embedding (any length; normalised by the gallery)."""
        return self.match_batch(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]

    def match_batch(self, vectors: NDArray[np.float32]) -> list[Match]:
        """The decisions for n embeddings (n x d), in order, from one search."""
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        results = self.gallery.search(queries, self.top_k)
        narrow = [n for n, hits in enumerate(results) if len(hits) == self.top_k and _one_person(hits)]
        if narrow:
            for n, hits in zip(narrow, self.gallery.search(queries[narrow], self.top_k * WIDEN), strict=True):
                results[n] = hits
        return [self._decide(hits, query) for hits, query in zip(results, queries, strict=True)]

    def _decide(self, hits: Sequence[Hit], query: NDArray[np.float32]) -> Match:
        match = decide(hits, self.threshold, self.margin)
        if match.person_id is None or self.gallery.negatives(match.person_id) is None:
            return match  # the common case: no negatives in the way
        unit = query / max(float(np.linalg.norm(query)), 1e-12)

        def vetoed(person: str, score: float) -> bool:
            negatives = self.gallery.negatives(person)
            return negatives is not None and float(np.max(negatives @ unit)) >= score - self.negative_margin

        return decide(hits, self.threshold, self.margin, vetoed)


def decide(
    hits: Sequence[Hit],
    threshold: float,
    margin: float,
    vetoed: Callable[[str, float], bool] | None = None,
) -> Match:
    """Group hits by person (each person's best similarity), leave out the persons `vetoed` says
    (in rank order, until the first one that is not), then apply threshold and margin."""
    best: dict[str, float] = {}
    for hit in hits:
        best[hit.person_id] = max(hit.similarity, best.get(hit.person_id, -2.0))
    if not best:
        return Match(None, 0.0, None, "empty_gallery")
    ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)
    skipped = 0
    while vetoed is not None and skipped < len(ranked) and vetoed(*ranked[skipped]):
        skipped += 1
    if skipped == len(ranked):
        return Match(None, ranked[0][1], None, "vetoed")
    person, score = ranked[skipped]
    rest = ranked[skipped + 1 :]
    second = rest[0][1] if rest else None
    if score < threshold:
        return Match(None, score, second, "vetoed" if skipped else "below_threshold")
    if second is not None and score - second < margin:
        return Match(None, score, second, "vetoed" if skipped else "ambiguous")
    return Match(person, score, second, "matched")


def _one_person(hits: Sequence[Hit]) -> bool:
    return len({hit.person_id for hit in hits}) == 1
