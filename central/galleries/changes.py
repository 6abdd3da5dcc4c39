"""The bodies of galleries' gap-free version logs (appended by central/galleries/repository.py).

A change row's `change` is `{"upserts": [template ids], "deleted_templates": [template ids],
"deleted_people": [person ids]}` and, for a change of scope, `"sites": [site ids]`; a correction adds
`"negatives": [negative ids]` and `"deleted_negatives": [negative ids]` (person_negatives rows).
Upserts also name their person in `"owners": {template id: person id}`, so a replay can apply
`deleted_people` to templates whose rows were deleted since (central/galleries/replay.py); bodies
without it still replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID


def change_body(
    upserts: Sequence[UUID] = (),
    deleted_templates: Sequence[UUID] = (),
    deleted_people: Sequence[UUID] = (),
    sites: Sequence[str] | None = None,
    *,
    owners: Mapping[UUID, UUID] | None = None,
    negatives: Sequence[UUID] = (),
    deleted_negatives: Sequence[UUID] = (),
) -> dict[str, Any]:
    """A change row's body; `owners` maps upserted template ids to their person ids."""
    body: dict[str, Any] = {
        "upserts": [str(t) for t in upserts],
        "deleted_templates": [str(t) for t in deleted_templates],
        "deleted_people": [str(p) for p in deleted_people],
    }
    if sites is not None:
        body["sites"] = sorted(sites)
    if negatives or deleted_negatives:
        body["negatives"] = [str(n) for n in negatives]
        body["deleted_negatives"] = [str(n) for n in deleted_negatives]
    if owners:
        body["owners"] = {str(t): str(owners[t]) for t in upserts if t in owners}
    return body
