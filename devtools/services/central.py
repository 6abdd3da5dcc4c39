"""Central served by a real uvicorn server on a free port, in a thread of the calling process.

For tests and benchmarks that need real HTTP (schemathesis fuzzing, presigned URLs, the enroll CLI, the
console): `serve(settings)` is a context manager yielding the base URL; leaving it shuts the server down
(lifespan shutdown runs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from central.app import create_app
from central.settings import CentralSettings
from devtools.services.ports import free_port

START_TIMEOUT_S = 60.0


@contextmanager
def serve(settings: CentralSettings, start_timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"central-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"central did not start on port {port} (see the log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
