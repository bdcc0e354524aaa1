"""The web app: every area's HTTP API assembled in one FastAPI application."""

from opencohort.web.app import REGISTRY_PREFIX, create_app
from opencohort.web.settings import Settings

__all__ = ["REGISTRY_PREFIX", "Settings", "create_app"]
