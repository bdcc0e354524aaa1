"""The opencohort web app: assembles each area's router under its own prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from opencohort import __version__
from opencohort.registry import open_registry
from opencohort.registry.routes import router as registry_router
from opencohort.web.errors import install_error_handlers
from opencohort.web.settings import Settings

REGISTRY_PREFIX = "/registry/v1"


def create_app(settings: Settings) -> FastAPI:
    """Return the app for `settings`: the registry is opened (and migrated) at once.

    The open registry is ``app.state.registry``; it is closed when the app shuts down.
    """
    registry = open_registry(settings.registry_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        registry.close()

    app = FastAPI(
        title="opencohort",
        version=__version__,
        summary="Participant registry of a precision-medicine research cohort.",
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.token_secret = settings.secret_key.get_secret_value()
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(registry_router, prefix=REGISTRY_PREFIX)
    return app
