"""Replaying a gallery's change log: which templates (and whose) it holds at a version.

Pure functions over change bodies (central/galleries/changes.py), in version order:
- `upserts` add template ids (adding one that is there already changes nothing);
- `deleted_templates` remove template ids;
- `deleted_people` remove every template of those people: a template upserted to a gallery belongs
  to its person, named by the body's `owners` map or, for bodies without one, by the template row;
- `sites` (a change of scope) leaves the templates as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def upserts_without_owner(bodies: Iterable[Mapping[str, Any]]) -> set[str]:
    """Upserted template ids whose body does not name their person (look those up in `templates`)."""
    missing: set[str] = set()
    for body in bodies:
        owners = body.get("owners") or {}
        missing.update(t for t in body.get("upserts", ()) if t not in owners)
    return missing


def replay(bodies: Iterable[Mapping[str, Any]], known_owners: Mapping[str, str]) -> dict[str, str | None]:
    """{template id: person id} held after applying `bodies` in order to an empty gallery.

    `known_owners` gives the person of upserts whose body has no `owners` entry; a template whose
    person is known from neither stays None (it cannot be removed by `deleted_people`, and its row no
    longer exists, so a snapshot holding it cannot be built). Time is linear in the log's size.
    """
    held: dict[str, str | None] = {}
    by_person: dict[str | None, set[str]] = {}
    for body in bodies:
        owners: Mapping[str, str] = body.get("owners") or {}
        for template in body.get("upserts", ()):
            _drop(held, by_person, template)
            person = owners.get(template) or known_owners.get(template)
            held[template] = person
            by_person.setdefault(person, set()).add(template)
        for template in body.get("deleted_templates", ()):
            _drop(held, by_person, template)
        for person in body.get("deleted_people", ()):
            for template in by_person.pop(person, set()):
                del held[template]
    return held


def _drop(held: dict[str, str | None], by_person: dict[str | None, set[str]], template: str) -> None:
    if template in held:
        by_person[held.pop(template)].discard(template)
