"""The opencohort web app: assembles each area's router under its own prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from functools import partial

from anyio import to_thread
from fastapi import FastAPI

from opencohort import __version__
from opencohort.registry import open_registry, summary
from opencohort.registry.routes import router as registry_router
from opencohort.web.errors import install_error_handlers
from opencohort.web.settings import Settings

REGISTRY_PREFIX = "/registry/v1"


def create_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    """Return the app for `settings`: the registry is opened (and migrated, unless `migrate`
    is False) at once.

    The open registry is ``app.state.registry``; it is closed when the app shuts down. The
    app runs at most ``settings.threads`` requests at once, with as many database
    connections, so a busy server queues requests instead of timing out on the pool.
    """
    registry = open_registry(settings.registry_url, migrate=migrate,
                             pool_size=settings.threads)  # fmt: skip

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        # derive today's statuses before the first request, not during it
        await to_thread.run_sync(partial(summary, registry, as_of=date.today()))
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


def app_from_environment() -> FastAPI:
    """Return the app for the ``OPENCOHORT_*`` settings of the environment, without migrating
    (the factory each ``registry serve --workers`` process calls; the parent migrates)."""
    return create_app(Settings(), migrate=False)
