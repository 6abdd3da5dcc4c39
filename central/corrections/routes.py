"""`/api/v1/events/{id}/corrections`: correct an event (operators of its site), list its corrections
(viewers). The rules are in central/corrections/service.py; docs/operator-loop.md shows the loop."""

from __future__ import annotations

from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from central.corrections.schemas import CorrectionCreate, CorrectionList, CorrectionRead
from central.corrections.service import CorrectionService
from central.principal import Principal, Scope

TAGS = ["corrections"]


@post("/events/{event_id:uuid}/corrections", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def correct_event(
    event_id: FromPath[UUID],
    data: JSONBody[CorrectionCreate],
    principal: NamedDependency[Principal],
    corrections: NamedDependency[CorrectionService],
) -> CorrectionRead:
    """Say what the event really shows: `not_person` (a wrong match: the face becomes a negative example
    the edges learn from), `is_person`, or `new_person`; `add_template` enrolls the crop."""
    return await corrections.correct(principal, event_id, data)


@get("/events/{event_id:uuid}/corrections", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_corrections(
    event_id: FromPath[UUID],
    principal: NamedDependency[Principal],
    corrections: NamedDependency[CorrectionService],
) -> CorrectionList:
    """The event's corrections, oldest first (its own decision is the event's)."""
    return await corrections.list_for(principal, event_id)


ROUTES: list[ControllerRouterHandler] = [correct_event, list_corrections]
