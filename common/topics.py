"""MQTT topics of contract version 1 (DESIGN.md): builders and a parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import FacegateError

PREFIX = "facegate/v1"
EDGE_KINDS = ("events", "status", "heartbeat", "receipts", "commands")
GALLERY_KINDS = ("manifest", "changes")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class TopicError(FacegateError):
    """A topic or a topic segment is not valid under the contract."""


def segment(value: str, what: str) -> str:
    """A site, edge or gallery id as a topic segment: 1-64 of letters, digits, '_', '.', '-' (the whole
    value: `fullmatch`, since `$` would let a trailing newline through into topics and ACL lines)."""
    if not _SEGMENT.fullmatch(value):
        raise TopicError(f"{what} {value!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return value


def edge_topic(site: str, edge: str, kind: str) -> str:
    """`facegate/v1/{site}/{edge}/{kind}` for kind in events, status, heartbeat, receipts, commands."""
    if kind not in EDGE_KINDS:
        raise TopicError(f"unknown edge topic kind {kind!r}")
    return f"{PREFIX}/{segment(site, 'site')}/{segment(edge, 'edge')}/{kind}"


def gallery_topic(gallery: str, kind: str) -> str:
    """`facegate/v1/galleries/{gallery}/{kind}` for kind in manifest, changes."""
    if kind not in GALLERY_KINDS:
        raise TopicError(f"unknown gallery topic kind {kind!r}")
    return f"{PREFIX}/galleries/{segment(gallery, 'gallery')}/{kind}"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: an edge's (site, edge set) or a gallery's (gallery set)."""

    kind: str
    site: str = ""
    edge: str = ""
    gallery: str = ""


def parse_topic(topic: str) -> Topic:
    """Parse a contract topic; raise TopicError for anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != PREFIX:
        raise TopicError(f"not a facegate/v1 topic: {topic!r}")
    _, _, first, second, kind = parts
    if first == "galleries":
        if kind not in GALLERY_KINDS:
            raise TopicError(f"unknown gallery topic kind in {topic!r}")
        return Topic(kind=kind, gallery=segment(second, "gallery"))
    if kind not in EDGE_KINDS:
        raise TopicError(f"unknown edge topic kind in {topic!r}")
    return Topic(kind=kind, site=segment(first, "site"), edge=segment(second, "edge"))
