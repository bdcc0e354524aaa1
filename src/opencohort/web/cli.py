"""``opencohort registry serve``: run the web app with uvicorn on the program home's registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from opencohort.config import HOME_ENV, find_home
from opencohort.web.app import create_app
from opencohort.web.settings import Settings


def serve(
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the registry API (OpenAPI schema at /openapi.json) until interrupted."""
    settings = Settings(registry_url=find_home(home).registry_url)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
