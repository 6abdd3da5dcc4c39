"""Topic names, topic filters (`+`, `#`) and shared subscriptions (`$share/<group>/<filter>`)."""

from __future__ import annotations

SHARE_PREFIX = "$share/"


class TopicError(ValueError):
    """A topic name or filter MQTT does not allow."""


def check_topic(topic: str) -> str:
    """A topic name a client may publish to: not empty, no wildcards."""
    if not topic or "+" in topic or "#" in topic:
        raise TopicError(f"topic name {topic!r} is empty or holds a wildcard")
    return topic


def check_filter(topic_filter: str) -> str:
    """A topic filter: `+` only as a whole level, `#` only as the whole last level."""
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        bad_hash = "#" in level and (level != "#" or i != len(levels) - 1)
        if bad_hash or ("+" in level and level != "+"):
            raise TopicError(f"topic filter {topic_filter!r} is not valid")
    if not topic_filter:
        raise TopicError("a topic filter is empty")
    return topic_filter


def split_shared(wire: str) -> tuple[str | None, str]:
    """(group, filter) of a filter as subscribed: group None for an ordinary subscription."""
    if not wire.startswith(SHARE_PREFIX):
        return None, check_filter(wire)
    group, _, topic_filter = wire[len(SHARE_PREFIX) :].partition("/")
    if not group or "+" in group or "#" in group or not topic_filter:
        raise TopicError(f"shared subscription {wire!r} must be $share/<group>/<filter>")
    return group, check_filter(topic_filter)


def matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches `topic_filter`; a filter starting with a wildcard skips `$` topics."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels, parts = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True  # also the parent level: a/# matches a
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(levels) == len(parts)
