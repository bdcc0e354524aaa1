"""``opencohort registry serve``: run the web app with uvicorn on the program home's registry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from opencohort.config import HOME_ENV, find_home
from opencohort.registry import open_registry
from opencohort.web.app import create_app
from opencohort.web.settings import Settings


def serve(
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each with its own threads).")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = True,
) -> None:
    """Serve the registry API (OpenAPI schema at /openapi.json) until interrupted.

    Settings come from ``OPENCOHORT_*`` variables (see ``web.Settings``); the registry is the
    program home's. With more than one worker the schema is migrated once, here, and each
    worker process builds its own app (``web.app.app_from_environment``).
    """
    settings = Settings(registry_url=find_home(home).registry_url)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                    access_log=access_log)  # fmt: skip
        return
    open_registry(settings.registry_url).close()
    os.environ["OPENCOHORT_REGISTRY_URL"] = settings.registry_url
    uvicorn.run("opencohort.web.app:app_from_environment", factory=True, workers=workers,
                host=host, port=port, log_level="info", access_log=access_log)  # fmt: skip
