"""MQTT reason codes with a meaning of their own for our clients."""

from __future__ import annotations

LOGIN_REFUSED = frozenset({134, 135, 138, 140})
"""CONNACK reasons that retrying with the same credentials cannot fix: bad user name or password, not
authorized, banned, bad authentication method."""
