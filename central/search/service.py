"""The search service: a photo's face against the people's templates and the events' faces.

The photo goes through the enrollment analysis (decode under the photo limits, detect, quality gate,
embed; one face): a refused photo is 422 with the gate's reason. People: every template of the
recognizer's model (enrollment's in-memory template matrix), each person's best score, the best
`people` of them. Events: pgvector's HNSW index over `event_embeddings` (central/db/vectors.py), at
least the threshold (default: the recognizer's match threshold), restricted to the key's sites and to
`site` when given. Operators and up (a face search is a sensitive query); every search is audited
(`search.photo`: the photo's sha256, the site, what was found; never the photo or its embedding).
Without pgvector: 503 `vector_search_off` saying what to install.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from central import audit
from central.db.pool import AsyncPool
from central.db.vectors import INSTALL_HINT, vector_search_on
from central.enrollment.analysis import Rejection, analyse_photo, sha256_hex
from central.enrollment.service import EnrollmentService
from central.errors import InvalidInput, Unavailable
from central.principal import Principal, Scope, require, require_scope
from central.search import repository as repo
from central.search.schemas import PersonHit, SearchResult

log = logging.getLogger("central.search")


class SearchService:
    def __init__(self, pool: AsyncPool, enrollment: EnrollmentService) -> None:
        self.pool, self.enrollment = pool, enrollment

    def require_searcher(self, principal: Principal, site: str | None) -> None:
        """Forbidden unless an operator key (allowed on `site` when given); routes check it first."""
        require_scope(principal, Scope.OPERATOR)
        if site is not None:
            require(principal, Scope.OPERATOR, site)

    async def search(
        self,
        principal: Principal,
        photo: bytes,
        *,
        site: str | None,
        people: int,
        events: int,
        threshold: float | None,
    ) -> SearchResult:
        self.require_searcher(principal, site)
        async with self.pool.connection() as conn:
            if not await vector_search_on(conn):
                raise Unavailable(f"search by photo is off: {INSTALL_HINT}", code="vector_search_off")
        enrollment = self.enrollment
        face = await enrollment.run_inference(
            analyse_photo, enrollment.pipeline, photo, enrollment.settings.image
        )
        if isinstance(face, Rejection):
            raise InvalidInput(f"no face to search for: {face.message}", code=face.reason)
        cut = enrollment.pipeline.threshold if threshold is None else threshold
        sites = [site] if site is not None else (list(principal.sites) or None)
        async with self.pool.connection() as conn:
            found_people = await self._people(conn, face.model_id, face.embedding, people, cut)
            found_events = await repo.similar_events(
                conn,
                face.embedding.tolist(),
                model_id=face.model_id,
                sites=sites,
                threshold=cut,
                limit=events,
            )
            details = {
                "photo_sha256": sha256_hex(photo),
                "site": site,
                "people": [str(p.person_id) for p in found_people if p.match],
                "events": len(found_events),
            }
            await audit.record(
                conn, principal, "search.photo", "search", details["photo_sha256"], details=details
            )
        log.info("search", extra={"people": len(found_people), "events": len(found_events)})
        return SearchResult(
            model_id=face.model_id,
            threshold=cut,
            quality=face.quality,
            people=found_people,
            events=found_events,
        )

    async def _people(
        self,
        conn: AsyncConnection[Any],
        model_id: str,
        embedding: np.ndarray[Any, Any],
        limit: int,
        cut: float,
    ) -> list[PersonHit]:
        snapshot = await self.enrollment.index.current(conn, model_id, int(embedding.shape[0]))
        if not snapshot.ids:
            return []
        scores = snapshot.matrix @ embedding
        best = np.full(len(snapshot.person_codes), -2.0, dtype=np.float32)
        np.maximum.at(best, snapshot.codes, scores)
        order = np.argsort(-best)[:limit]
        by_code = {code: person for person, code in snapshot.person_codes.items()}
        chosen = [(by_code[int(c)], float(best[c])) for c in order]
        known = await repo.names(conn, [p for p, _ in chosen])
        return [
            PersonHit(person_id=p, external_id=known[p][0], display_name=known[p][1], score=s, match=s >= cut)
            for p, s in chosen
            if p in known
        ]
