"""Argument types shared by several commands."""

from __future__ import annotations

import argparse


def detect_size(text: str) -> int:
    """--detect-size: 0 (the full frame) or a positive number of pixels."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from err
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (the full frame) or a positive number of pixels")
    return value
