"""`create_app(settings)`: the Litestar app. Builds nothing at import time; the lifespan does the I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ControllerRouterHandler

from central.auth import routes as auth_routes
from central.enrollment import routes as enrollment_routes
from central.events import routes as events_routes
from central.fleet import routes as fleet_routes
from central.galleries import routes as galleries_routes
from central.http import ops
from central.http.errors import EXCEPTION_HANDLERS
from central.http.guards import authenticated, provide_principal
from central.http.metrics import Metrics
from central.http.middleware import RequestContextMiddleware
from central.live.socket import events_socket
from central.models import routes as models_routes
from central.people import routes as people_routes
from central.runtime import Runtime
from central.settings import CentralSettings

API_PREFIX = "/api/v1"
VERSION = "1.0.0"


def api_routes() -> list[ControllerRouterHandler]:
    return [
        *auth_routes.ROUTES,
        *people_routes.ROUTES,
        *enrollment_routes.ROUTES,
        *galleries_routes.ROUTES,
        *fleet_routes.ROUTES,
        *events_routes.ROUTES,
        *models_routes.ROUTES,
    ]


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def create_app(settings: CentralSettings) -> Litestar:
    """The app for `settings`. Starting it (the lifespan) migrates, connects and loads the models."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, metrics)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    api = Router(
        API_PREFIX,
        route_handlers=api_routes(),
        guards=[authenticated],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        security=[{"bearer": []}],
    )
    return Litestar(
        route_handlers=[api, ops.health, ops.ready, ops.metrics, ops.signed_file, events_socket],
        lifespan=[lifespan],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[DefineMiddleware(RequestContextMiddleware, metrics=metrics)],
        openapi_config=OpenAPIConfig(
            title="Facegate central",
            version=VERSION,
            path="/schema",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key (fg_<prefix>_<secret>), an edge credential or a token",
                    )
                }
            ),
        ),
        request_max_body_size=settings.max_photo_bytes * settings.max_photos_per_request + 1024 * 1024,
        logging_config=None,
        debug=False,
    )
