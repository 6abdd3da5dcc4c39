"""`create_app(settings)`: the Litestar app. Builds nothing at import time; the lifespan does the I/O.

Routes get their domain's service by dependency injection: each handler declares it by name
(`people: NamedDependency[PeopleService]`), and `service_dependencies()` provides every name of
central/lifespan.py's `ROUTED` from `app.state`, where the lifespan put the services it built.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ControllerRouterHandler

from central.auth import routes as auth_routes
from central.clusters import routes as clusters_routes
from central.console.routes import console_router
from central.console.security import content_security_policy
from central.console.templating import environment, template_config
from central.corrections import routes as corrections_routes
from central.enrollment import routes as enrollment_routes
from central.events import routes as events_routes
from central.fleet import routes as fleet_routes
from central.galleries import routes as galleries_routes
from central.http import routes as ops
from central.http.errors import EXCEPTION_HANDLERS
from central.http.guards import authenticated, provide_principal
from central.http.middleware import InternalPortMiddleware, RequestContextMiddleware
from central.http.request import CentralRequest
from central.lifespan import ROUTED, central_lifespan
from central.live.routes import events_socket
from central.metrics import Metrics
from central.models import routes as models_routes
from central.notify import routes as notify_routes
from central.people import routes as people_routes
from central.retention import routes as retention_routes
from central.search import routes as search_routes
from central.settings import CentralSettings, check_secret_key, upload_body_bytes
from central.watch import routes as watch_routes

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
        *watch_routes.ROUTES,
        *notify_routes.ROUTES,
        *retention_routes.ROUTES,
        *corrections_routes.ROUTES,
        *clusters_routes.ROUTES,
    ]


def provide_from_state(name: str) -> Provide:
    """A dependency that hands a handler the service the lifespan stored in `app.state` under `name`."""

    def service(state: State) -> Any:
        return state[name]

    return Provide(service, sync_to_thread=False)


def service_dependencies() -> dict[str, Provide]:
    """One dependency per service handlers receive, named as the handlers' parameters are."""
    return {name: provide_from_state(name) for name in ROUTED}


VENDOR = "/console/static/vendor"
"""Where central serves the third-party assets it copied from the npm registry (make assets)."""


def docs_plugins() -> list[OpenAPIRenderPlugin]:
    """The API docs without a CDN: Swagger UI from central's own copy, the JSON and YAML documents."""
    return [
        SwaggerRenderPlugin(
            js_url=f"{VENDOR}/swagger-ui-bundle.js",
            css_url=f"{VENDOR}/swagger-ui.css",
            standalone_preset_js_url=f"{VENDOR}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{VENDOR}/favicon-32x32.png'>",
        ),
        JsonRenderPlugin(),
        YamlRenderPlugin(),
    ]


def create_app(settings: CentralSettings) -> Litestar:
    """The app for `settings`. Starting it (the lifespan) migrates, connects and loads the models.

    Body limits per route (docs/central-api.md, "Request bodies"): FACEGATE_MAX_BODY_BYTES (1 MiB) for
    every route but the two uploads; photos `upload_body_bytes(settings)`; the archive route has none
    here, its handler counts the streamed body against FACEGATE_MAX_ZIP_BYTES. Litestar counts the
    bytes received, so a chunked body without Content-Length meets the same limit.
    ConfigError for a FACEGATE_SECRET_KEY under 32 bytes."""
    check_secret_key(settings.secret_key)
    metrics = Metrics()
    photos = Router(
        "/",
        route_handlers=[*enrollment_routes.PHOTO_ROUTES, *search_routes.PHOTO_ROUTES],
        request_max_body_size=upload_body_bytes(settings),
    )
    api = Router(
        API_PREFIX,
        route_handlers=[*api_routes(), photos],
        guards=[authenticated],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        security=[{"bearer": []}],
    )
    console = console_router(
        content_security_policy(settings), upload_body_bytes(settings), settings.max_zip_bytes
    )
    return Litestar(
        route_handlers=[
            api,
            console,
            ops.health,
            ops.ready,
            ops.ready_ingest,
            ops.metrics,
            ops.signed_file,
            events_socket,
        ],
        template_config=template_config(environment()),
        lifespan=[central_lifespan(settings, metrics)],
        dependencies=service_dependencies(),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            DefineMiddleware(RequestContextMiddleware, metrics=metrics),
            *(
                [DefineMiddleware(InternalPortMiddleware, port=settings.metrics_port)]
                if settings.metrics_port
                else []
            ),
        ],
        openapi_config=OpenAPIConfig(
            title="Facegate central",
            version=VERSION,
            path="/schema",
            render_plugins=docs_plugins(),
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
        request_max_body_size=settings.max_body_bytes,
        request_class=CentralRequest,
        logging_config=None,
        debug=False,
    )
