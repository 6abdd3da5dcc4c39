"""ASGI entry point for uvicorn (`uvicorn --factory central.asgi:app`): reads the environment when called."""

from __future__ import annotations

import logging
import os

from litestar import Litestar

from central.app import create_app
from central.settings import CentralSettings
from common.log import setup_logging


def app() -> Litestar:
    if not logging.getLogger().handlers:  # a uvicorn worker process: configure as `facegate` does
        setup_logging(os.environ.get("FACEGATE_LOG_LEVEL", "info"))
    return create_app(CentralSettings.from_env(os.environ))
