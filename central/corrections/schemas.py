"""Request and response bodies of `/api/v1/events/{id}/corrections`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from central.people.schemas import MAX_PERSON_GALLERIES
from central.schemas import ExternalId, Name, Slug, whole

CorrectionAction = Literal["not_person", "is_person", "new_person"]
Note = Annotated[str, msgspec.Meta(max_length=500, pattern=whole(r"[^\x00-\x08\x0b-\x1f\x7f]*"))]


class NewPerson(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The person `new_person` creates (as POST /people does)."""

    external_id: ExternalId
    display_name: Name = ""
    galleries: Annotated[list[Slug], msgspec.Meta(max_length=MAX_PERSON_GALLERIES)] = []


class CorrectionCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What an operator says about an event.

    - `not_person`: the event's person is wrong. The face becomes a negative example of that person
      (`negative`, default true), so edges stop matching this face to them; `person_id` may say who
      it is instead.
    - `is_person`: the face is `person_id` (an unknown face, or a wrong match).
    - `new_person`: the face is a person not yet known: `new_person` creates them.
    `add_template`: the event's crop is enrolled for the person it is of (through the photo quality
    gate and duplicate check); the answer says whether it was accepted."""

    action: CorrectionAction
    person_id: UUID | None = None
    new_person: NewPerson | None = None
    negative: bool = True
    add_template: bool = False
    note: Note = ""


class CorrectionRead(msgspec.Struct, frozen=True, kw_only=True):
    """A stored correction. `wrong_person_id`: who the event was of before (not_person). `person_id`: who
    it is of now (null: nobody known). `negative_id`: the negative example made (null when none: not
    asked, or the event carries no embedding). `template_status`: `accepted`, the photo gate's reason
    for refusing the crop (`low_quality`, `no_face`, `duplicate_person`, ...), `no_crop`, or null when
    no template was asked."""

    id: int
    event_id: UUID
    action: CorrectionAction
    wrong_person_id: UUID | None
    person_id: UUID | None
    negative_id: UUID | None
    template_id: UUID | None
    template_status: str | None
    note: str
    created_by: str
    created_at: datetime


class CorrectionList(msgspec.Struct, frozen=True):
    items: list[CorrectionRead]
