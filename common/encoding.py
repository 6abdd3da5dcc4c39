"""Base64 in the two forms our stored and sent formats use, in one place.

- Standard base64 with padding: the salts and digests of Mosquitto's `$7$` password hashes and of API key
  hashes (their stored formats: changing a byte here would lock every edge and key out).
- URL-safe base64 without padding: keyset cursors and token parts.
"""

from __future__ import annotations

import base64
import binascii


class EncodingError(ValueError):
    """The text is not valid base64 of the expected form."""


def b64(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def b64_decode(text: str) -> bytes:
    """Strict standard base64 (padding required, no stray characters); EncodingError otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise EncodingError(str(err)) from err


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """URL-safe base64, padding optional; EncodingError otherwise."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise EncodingError(str(err)) from err
