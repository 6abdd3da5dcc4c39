"""The corrections service: what an operator says about an event, and what follows from it.

A correction never rewrites the event: `events` keeps the edge's decision, `event_corrections` gets a
row (who, when, what) and the audit log an `event.correct` entry, in one transaction. From then on the
event is of the correction's person for everything that reads `event_embeddings` (search, clusters,
erase). `not_person` also stores the face's embedding as a negative example of the wrong person (at most
`negatives_per_person` each, the oldest dropped) and appends it to their galleries' change logs, so
edges receive it in the next delta (gallery-change/1.1) and veto that person for faces like it
(edge/gallery/matcher.py). `add_template` enrolls the event's crop for the right person through
enrollment (the photo quality gate and duplicate check), after the correction committed: a refused
crop leaves the correction in place and says why (`template_status`).
"""

from __future__ import annotations

import logging
from uuid import UUID

import anyio.to_thread

from central import audit
from central.corrections import repository as repo
from central.corrections.schemas import CorrectionCreate, CorrectionList, CorrectionRead
from central.db.pool import AsyncPool
from central.enrollment.service import EnrollmentService
from central.errors import InvalidInput, NotFound
from central.galleries.service import GalleryService
from central.people.schemas import PersonCreate
from central.people.service import PeopleService
from central.principal import Principal, Scope, require
from central.storage import ObjectStore, StorageError

log = logging.getLogger("central.corrections")
NEGATIVES_PER_PERSON = 50


class CorrectionService:
    def __init__(  # noqa: PLR0917  # one argument per thing corrections need (central/lifespan.py)
        self,
        pool: AsyncPool,
        store: ObjectStore,
        people: PeopleService,
        galleries: GalleryService,
        enrollment: EnrollmentService,
        negatives_per_person: int = NEGATIVES_PER_PERSON,
    ) -> None:
        self.pool, self.store, self.people = pool, store, people
        self.galleries, self.enrollment = galleries, enrollment
        self.negatives_per_person = max(1, negatives_per_person)

    async def list_for(self, principal: Principal, event_id: UUID) -> CorrectionList:
        async with self.pool.connection() as conn:
            event = await repo.event(conn, event_id)
            if event is None:
                raise NotFound(f"no event {event_id}", code="event_not_found")
            require(principal, Scope.VIEWER, event.site_id)
            return CorrectionList(await repo.list_corrections(conn, event_id))

    async def correct(self, principal: Principal, event_id: UUID, data: CorrectionCreate) -> CorrectionRead:
        """Record the correction (see the module doc); NotFound, Forbidden, InvalidInput."""
        async with self.pool.connection() as conn:
            event = await repo.event(conn, event_id)
        if event is None:
            raise NotFound(f"no event {event_id}", code="event_not_found")
        require(principal, Scope.OPERATOR, event.site_id)
        if event.erased:
            raise InvalidInput(
                f"event {event_id} is of an erased person: nothing to correct", code="event_erased"
            )
        person = await self._person(principal, data, event.person_id)
        correction = await self._record(principal, event, data, person)
        if data.add_template and person is not None:
            correction = await self._template(principal, correction, person, event.crop_key)
        return correction

    async def _person(
        self, principal: Principal, data: CorrectionCreate, current: UUID | None
    ) -> UUID | None:
        """Who the event is of after the correction (checked or created)."""
        if data.action == "not_person" and current is None:
            raise InvalidInput(
                "the event is of an unknown face: there is no person to say it is not; use is_person or "
                "new_person",
                code="event_unknown",
            )
        if data.action == "new_person":
            if data.new_person is None or data.person_id is not None:
                raise InvalidInput("new_person needs `new_person` (external_id, ...) and no `person_id`")
            new = data.new_person
            created = await self.people.create(
                principal, PersonCreate(new.external_id, new.display_name, {}, new.galleries)
            )
            return created.id
        if data.new_person is not None:
            raise InvalidInput(f"`new_person` goes only with the action new_person, not {data.action}")
        if data.action == "is_person" and data.person_id is None:
            raise InvalidInput("is_person needs `person_id`: who the face is")
        if data.person_id is not None:
            if data.person_id == current and data.action == "not_person":
                raise InvalidInput("`person_id` is the person the event is said not to be")
            await self.people.get(data.person_id)  # NotFound person_not_found
        return data.person_id

    async def _record(
        self, principal: Principal, event: repo.CorrectedEvent, data: CorrectionCreate, person: UUID | None
    ) -> CorrectionRead:
        wrong = event.person_id if data.action == "not_person" else None
        async with self.pool.connection() as conn:
            negative: UUID | None = None
            dropped: list[UUID] = []
            versions: dict[str, int] = {}
            if wrong is not None and data.negative and event.embedding is not None and event.model_id:
                await self.people.lock(conn, wrong, share=True)
                negative, dropped = await repo.add_negative(
                    conn,
                    wrong,
                    model_id=event.model_id,
                    embedding=event.embedding,
                    event_id=event.id,
                    cap=self.negatives_per_person,
                )
                versions = await self.galleries.record_person_change(
                    conn,
                    wrong,
                    negatives=[negative],
                    deleted_negatives=dropped,
                    negatives_model=event.model_id,
                )
            correction = await repo.insert_correction(
                conn,
                event.id,
                action=data.action,
                wrong=wrong,
                person=person,
                negative=negative,
                note=data.note,
                actor=audit.actor(principal),
            )
            await repo.attribute(conn, event.id, person)
            details = {
                "action": data.action,
                "wrong_person_id": str(wrong) if wrong else None,
                "person_id": str(person) if person else None,
                "negative_id": str(negative) if negative else None,
                "negatives_dropped": len(dropped),
                "gallery_versions": versions,
            }
            await audit.record(conn, principal, "event.correct", "event", event.id, details=details)
        log.info("event_corrected", extra={"event": str(event.id), "action": data.action})
        return correction

    async def _template(
        self, principal: Principal, correction: CorrectionRead, person: UUID, crop_key: str | None
    ) -> CorrectionRead:
        """Enroll the event's crop for `person` (the photo path: quality gate, duplicate check)."""
        template, status = None, "no_crop"
        if crop_key is not None:
            try:
                crop = await anyio.to_thread.run_sync(self.store.get, crop_key)
            except StorageError as err:
                log.warning("correction_crop_unreadable", extra={"key": crop_key, "error": str(err)})
            else:
                result = await self.enrollment.enroll_photo(
                    principal, person, f"event-{correction.event_id}.jpg", crop
                )
                template, status = result.template_id, result.reason or result.status
        async with self.pool.connection() as conn:
            return await repo.set_template(conn, correction.id, template, status)
